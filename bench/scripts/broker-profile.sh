#!/usr/bin/env bash
# Where the broker spends its CPU on a scenario (default messaging: 1
# partition, 1 KiB, acks=1, one tailing consumer, then the read-back):
# `perf record` of a fresh one-node `sluice` broker for PERF_SECS seconds
# in the middle of a sluice-bench run, then the top entries of `perf
# report` (self time per symbol; with children in OUT_DIR/children.txt).
# A benchmark aid, not a test: quote the tables in docs/benchmarks.md.
#
#   bench/scripts/broker-profile.sh OUT_DIR [fsync|page_cache] [duration_s] [-- extra sluice-bench args]
#
# Env: SLUICE_BIN, BENCH_BIN (default target/release/{sluice,sluice-bench}),
# SCENARIO (default messaging), PERF_SECS (default 8), PERF_DELAY (seconds
# after the bench starts, default 8), or PERF_AT=readback: start when the
# bench begins its read-back from the start (it says so on stderr), so
# the profile is the fetch path alone. A read-back of 2 GiB lasts ~1.5 s:
# give the topic more (`--set topic.configs.retention.bytes=...`) and a
# PERF_SECS shorter than the read-back. Needs `perf` (Debian: apt-get
# install linux-perf).
# Everything listens on 127.0.0.1 and is killed by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: broker-profile.sh OUT_DIR [fsync|page_cache] [duration_s] [-- args]}
shift
durability=${1:-fsync}
[ $# -gt 0 ] && shift
duration=${1:-20}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
extra=("$@")
case "${PERF_AT:-}" in
  "" | readback) ;;
  *) echo "PERF_AT=$PERF_AT: only 'readback' is known" >&2; exit 2 ;;
esac
bench=${BENCH_BIN:-$PWD/target/release/sluice-bench}
mkdir -p "$out"
work=$(mktemp -d)
# Debian's perf 6.1 finds no symbols in a binary with Rust 1.95's debug
# info ("cannot get elf header"); without the debug sections it reads the
# symbol table (and .eh_frame, enough for --call-graph dwarf).
objcopy --strip-debug "${SLUICE_BIN:-$PWD/target/release/sluice}" "$work/sluice"
SLUICE_BIN=$work/sluice
source scripts/lib/nodes.sh
perf_pid=
cleanup() {
  [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null
  sluice_kill_all
  rm -rf "$work"
}
trap cleanup EXIT

printf 'durability = "%s"\n"log.retention.check.interval.ms" = 1000\n' "$durability" > "$work/sluice.toml"
broker_start "$work/broker.log" --config "$work/sluice.toml" --data-dir "$work/data"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $SLUICE_BIN; durability=$durability" | tee "$out/summary.txt"
"$bench" run "${SCENARIO:-messaging}" --bootstrap "127.0.0.1:$BROKER_PORT" --broker-pid "$BROKER_PID" --no-ceiling \
  --set run.duration_s="$duration" --json "$out/bench.json" "${extra[@]}" 2> "$out/bench.log" &
bench_pid=$!
case "${PERF_AT:-}" in
  readback)
    until grep -q '^reading back' "$out/bench.log"; do
      kill -0 "$bench_pid" 2>/dev/null || { echo "the bench ended without a read-back (consumer.readback=false?)" >&2; exit 1; }
      sleep 0.02
    done ;;
  *) sleep "${PERF_DELAY:-8}" ;;
esac
perf record -q -F 499 --call-graph dwarf,16384 -p "$BROKER_PID" -o "$out/perf.data" -- sleep "${PERF_SECS:-8}" 2>/dev/null &
perf_pid=$!
wait "$perf_pid" || true
perf_pid=
wait "$bench_pid" || echo "bench failed" >&2
grep -E '^(produce|readback|cpu|per broker|cost) ' -A1 "$out/bench.log" | tee -a "$out/summary.txt"
perf report -i "$out/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
  grep -v '^#' | grep -v '^$' | sed -n 1,40p | tee -a "$out/summary.txt"
perf report -i "$out/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
  grep -v '^#' | grep -v '^$' | sed -n 1,60p > "$out/children.txt"
