#!/usr/bin/env bash
# The CPU cost of the per-request metrics, counted in instructions rather
# than timed, so that a shared, noisy machine still gives a figure: the
# broker runs under `valgrind --tool=callgrind` (which counts every
# user-space instruction it executes, the same for the same work whatever
# else the machine does), once as shipped and once built with the
# `request-metrics-off` feature, alternating ROUNDS times; sluice-bench
# sends the same fixed number of records each time (`run.records`).
# Instructions per acknowledged record, on vs off, is the figure (kernel
# time is not counted, so the metrics' share of the whole CPU is smaller
# still). A benchmark, not a test: results go to docs/benchmarks.md.
#
#   cargo build --release -p sluice-broker --bin sluice -p sluice-bench --bin sluice-bench
#   CARGO_TARGET_DIR=OTHER cargo build --release -p sluice-broker --bin sluice --features request-metrics-off
#   ON_BIN=target/release/sluice OFF_BIN=OTHER/release/sluice BENCH_BIN=target/release/sluice-bench \
#     bench/scripts/metrics-cost-callgrind.sh OUT_DIR SCENARIO RECORDS [--set k=v ...]
#
# The broker listens on 127.0.0.1 on a port it picks; it is stopped by PID
# (SIGTERM) after each run, which is when callgrind writes its counts.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:?usage: metrics-cost-callgrind.sh OUT_DIR SCENARIO RECORDS [--set k=v ...]}
scenario=${2:?scenario}
records=${3:?records}
shift 3
on=${ON_BIN:?ON_BIN: the broker as shipped}
off=${OFF_BIN:?OFF_BIN: the broker built with --features request-metrics-off}
bench=${BENCH_BIN:-$PWD/target/release/sluice-bench}
rounds=${ROUNDS:-2}
mkdir -p "$out"
broker_pid=""
trap '[ -n "$broker_pid" ] && kill -9 "$broker_pid" 2>/dev/null; true' EXIT

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); sluice $(git rev-parse --short HEAD); scenario $scenario, $records records $*" | tee "$out/machine.txt"

one_run() {
  local label=$1 bin=$2 dir
  shift 2
  dir=$(mktemp -d)
  valgrind --tool=callgrind --callgrind-out-file="$out/$label.cg" \
    "$bin" serve --data-dir "$dir/data" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    > "$out/$label.log" 2>&1 &
  broker_pid=$!
  local port=""
  for _ in $(seq 1200); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$out/$label.log" 2>/dev/null | head -1 | cut -d: -f2) || true
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { tail "$out/$label.log" >&2; exit 1; }
  "$bench" run "bench/scenarios/$scenario.toml" --bootstrap "127.0.0.1:$port" --no-ceiling \
    --set run.records="$records" --set run.warmup_s=0 --set run.duration_s=3600 "$@" \
    --json "$out/$label.json" 2> "$out/$label.txt"
  kill -TERM "$broker_pid"
  wait "$broker_pid" || true
  broker_pid=""
  rm -rf "$dir"
  python3 - "$out/$label.cg" "$out/$label.json" "$label" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
ir = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
result = json.load(open(sys.argv[2]))
acked = result["produce"]["records_acked"]
read = result["readback"]["records"]
print(f"{sys.argv[3]}: {ir} instructions, {acked} records acked, {read} read back, "
      f"{ir / acked:.0f} instructions per acked record")
EOF
}

for round in $(seq 1 "$rounds"); do
  one_run "on-$round" "$on" "$@" | tee -a "$out/summary.txt"
  one_run "off-$round" "$off" "$@" | tee -a "$out/summary.txt"
done
