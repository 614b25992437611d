#!/usr/bin/env bash
# The bench's own CPU cost per record (producers + tailing consumer, all of
# sluice-bench through sluice-client), counted in instructions rather than
# timed, so that the shared, noisy 2-core machine still gives a figure:
# sluice-bench runs under `valgrind --tool=callgrind` (user-space
# instructions, the same for the same work whatever else the machine does)
# against a broker run normally, for a fixed number of records
# (`run.records`), the given builds alternated ROUNDS times. Instructions
# per acknowledged record is the figure; kernel time is not counted.
# Under callgrind the bench runs ~50x slower, so an open-loop scenario
# needs a rate it can keep (metrics: `--set run.rate=2000`, still ~1 record
# per zstd batch) and a closed loop makes fuller batches than at full
# speed: compare builds with each other, not with timed runs.
# A benchmark, not a test: results go to docs/benchmarks.md.
#
#   SLUICE_BIN=… BENCHES="base=/path/sluice-bench new=/path/sluice-bench" \
#     bench/scripts/bench-cost-callgrind.sh OUT_DIR SCENARIO RECORDS [--set k=v ...]
#
# Everything listens on 127.0.0.1; the broker is killed by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
SLUICE_BIN=${SLUICE_BIN:-$PWD/target/release/sluice}
source scripts/lib/nodes.sh

out=${1:?usage: bench-cost-callgrind.sh OUT_DIR SCENARIO RECORDS [--set k=v ...]}
scenario=${2:?scenario}
records=${3:?records}
shift 3
benches=${BENCHES:?BENCHES="name=path ..."}
rounds=${ROUNDS:-2}
mkdir -p "$out"
work=$(mktemp -d)
cleanup() { sluice_kill_all; rm -rf "$work"; }
trap cleanup EXIT

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); scenario $scenario, $records records $*" | tee "$out/machine.txt"

for round in $(seq 1 "$rounds"); do
  for entry in $benches; do
    name=${entry%%=*}
    bin=${entry#*=}
    label="$name-r$round"
    rm -rf "$work/data"
    # A log per run: broker_start reads the port from it.
    broker_start "$out/$label.broker.log" --data-dir "$work/data" --admin-listen 127.0.0.1:0
    valgrind --tool=callgrind --callgrind-out-file="$out/$label.cg" \
      "$bin" run "$scenario" --bootstrap "127.0.0.1:$BROKER_PORT" --no-ceiling \
      --set run.records="$records" --set run.warmup_s=0 --set run.duration_s=3600 \
      --set consumer.readback=false "$@" --json "$out/$label.json" 2> "$out/$label.txt"
    kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true
    python3 - "$out/$label.cg" "$out/$label.json" "$label" <<'EOF' | tee -a "$out/summary.txt"
import json, re, sys
text = open(sys.argv[1]).read()
ir = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
acked = json.load(open(sys.argv[2]))["produce"]["records_acked"]
print(f"{sys.argv[3]}: {ir} instructions, {acked} records acked, "
      f"{ir / acked:.0f} instructions per acked record")
EOF
  done
done
