#!/usr/bin/env bash
# Runs sluice-bench scenarios against a fresh one-node `sluice` broker and
# keeps each JSON result. A benchmark, not a test: results go to
# docs/benchmarks.md with this command line.
#
#   bench/scripts/run-scenarios.sh OUT_DIR [scenario ...] [-- extra sluice-bench args]
#
# Default scenarios: messaging metrics counters config leases. The broker
# runs with its default durability (fsync per acknowledged batch) unless
# DURABILITY=page_cache is set, and checks retention every second so the
# scenarios' small retention deletes segments during the run (and the
# cleaner of the compacted ones, config and leases, runs every second).
# The cleaner's key map is Kafka's default, 128 MiB, not Sluice's 16 MiB:
# one leases partition holds more keys than 16 MiB maps (see leases.toml).
# sluice-bench gets the broker's data directory, so it samples the
# topic's log on disk.
#
# Binaries: $SLUICE_BIN and $BENCH_BIN, default target/release/{sluice,sluice-bench}
# (build with `cargo build --release --bin sluice --bin sluice-bench`).
# Everything listens on 127.0.0.1 and the broker is killed by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
SLUICE_BIN=${SLUICE_BIN:-$PWD/target/release/sluice}
source scripts/lib/nodes.sh

out=${1:?usage: run-scenarios.sh OUT_DIR [scenario ...] [-- args]}
shift
scenarios=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do scenarios+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
extra=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(messaging metrics counters config leases)

bench=${BENCH_BIN:-$PWD/target/release/sluice-bench}
durability=${DURABILITY:-fsync}
mkdir -p "$out"
work=$(mktemp -d)
cleanup() { sluice_kill_all; rm -rf "$work"; }
trap cleanup EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), disk $(df -h "$work" | awk 'NR==2{print $1, $2}')" | tee "$out/machine.txt"
echo "sluice: $(git rev-parse --short HEAD), durability=$durability" | tee -a "$out/machine.txt"

for s in "${scenarios[@]}"; do
  rm -rf "$work/data"
  printf 'durability = "%s"\n"log.retention.check.interval.ms" = 1000\n"log.cleaner.dedupe.buffer.size" = 134217728\n' \
    "$durability" > "$work/sluice.toml"
  # An ephemeral admin port: the default (9644) may be another broker's.
  broker_start "$work/broker.log" --config "$work/sluice.toml" --data-dir "$work/data" --admin-listen 127.0.0.1:0
  echo "== $s against 127.0.0.1:$BROKER_PORT"
  "$bench" run "$s" --bootstrap "127.0.0.1:$BROKER_PORT" --ceiling-dir "$work" --broker-pid "$BROKER_PID" --data-dir "$work/data" \
    --json "$out/$s.json" "${extra[@]}" 2> >(tee "$out/$s.log" >&2) || echo "$s failed" >&2
  kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true
done
