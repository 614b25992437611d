#!/usr/bin/env bash
# Where sluice-bench (the sluice-client producer and the bench around it)
# spends its CPU: `perf record` of one sluice-bench run against a fresh
# broker — the messaging scenario with a record quota, no tailing consumer,
# no read-back, no ceiling, as bench/scripts/client-cost.sh runs it — then
# the top entries of `perf report` (self time per symbol, and per shared
# object). A benchmark aid, not a test: quote the tables in
# docs/benchmarks.md.
#
#   bench/scripts/client-profile.sh OUT_DIR [records] [value_bytes] [sluice-bench binary]
#
# Needs `perf` (Debian: apt-get install linux-perf) and a release build of
# sluice. Everything listens on 127.0.0.1 and is killed by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
SLUICE_BIN=${SLUICE_BIN:-$PWD/target/release/sluice}
source scripts/lib/nodes.sh

out=${1:?usage: client-profile.sh OUT_DIR [records] [value_bytes] [sluice-bench]}
records=${2:-500000}
value_bytes=${3:-1024}
bench=${4:-$PWD/target/release/sluice-bench}
mkdir -p "$out"
work=$(mktemp -d)
cleanup() { sluice_kill_all; rm -rf "$work"; }
trap cleanup EXIT

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $bench; $records x $value_bytes B" | tee "$out/summary.txt"
broker_start "$work/broker.log" --data-dir "$work/data"
# Debian's perf 6.1 finds no symbols in a binary with Rust 1.95's debug
# info ("cannot get elf header"); without the debug sections it reads the
# symbol table.
objcopy --strip-debug "$bench" "$work/sluice-bench"
perf record -q -F 999 -g -o "$out/perf.data" -- \
  "$work/sluice-bench" run messaging --bootstrap "127.0.0.1:$BROKER_PORT" --broker-pid "$BROKER_PID" --no-ceiling \
  --set run.records="$records" --set run.duration_s=600 --set run.warmup_s=0 --set run.drain_s=0 \
  --set records.value_bytes="$value_bytes" --set consumer.connections=0 --set consumer.readback=false \
  --json "$out/bench.json" 2> "$out/bench.log"
grep -E '^(produce|cost|cpu) ' "$out/bench.log" | tee -a "$out/summary.txt"
perf report -i "$out/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null |
  grep -v '^#' | grep -v '^$' | sed -n 1,8p | tee -a "$out/summary.txt"
perf report -i "$out/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
  grep -v '^#' | grep -v '^$' | sed -n 1,30p | tee -a "$out/summary.txt"
