#!/usr/bin/env bash
# The messaging scenario in its planned shape — three nodes, replication
# factor 3, min.insync.replicas 2, acks=all — against one node with
# replication factor 1 and acks=all, in the same session: closed loop (max
# throughput), then open loop at half of each one's max (latency). A
# benchmark, not a test: results go to docs/benchmarks.md with this command.
#
#   bench/scripts/cluster-messaging.sh OUT_DIR [-- extra sluice-bench args]
#
# Every node checks retention each second (as run-scenarios.sh's broker
# does) and each run warms up for WARMUP seconds (default 60) before its
# DURATION-second window (default 20): the scenario keeps 2 GiB per
# replica, so by then every node deletes segments and writes over their
# files, the steady state of a broker that keeps its retention. With the
# default five-minute check nothing is deleted during a run and the window
# measures the disk's first write of never-written blocks (120 K against
# 366 K records/s with three nodes, docs/benchmarks.md). The warm-up is
# long because the three nodes' page caches grow by ~7.5 GiB before they
# hold their retention, and on this VM a page first touched costs ~25x
# one written over (`kernel-floor.py firsttouch`): with 15 s the window
# still paid for it (171-206 K records/s against 458-463 K at 60 s,
# alternated: docs/benchmarks.md, "Three nodes at steady state").
#
# Binaries: $SLUICE_BIN and $BENCH_BIN, default target/release/{sluice,sluice-bench}.
# Every node listens on 127.0.0.1 on ports the OS picks; the cluster
# (`sluice dev-cluster`) and the single node are stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:?usage: cluster-messaging.sh OUT_DIR [-- args]}
shift
[ "${1:-}" = "--" ] && shift
extra=("$@")
sluice=${SLUICE_BIN:-$PWD/target/release/sluice}
bench=${BENCH_BIN:-$PWD/target/release/sluice-bench}
duration=${DURATION:-20}
warmup=${WARMUP:-60}
# Inherited by the single node and by every node dev-cluster starts.
export SLUICE_LOG_RETENTION_CHECK_INTERVAL_MS=1000
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/machine.txt"
echo "sluice: $(git rev-parse --short HEAD)" | tee -a "$out/machine.txt"

# $1 label, $2 bootstrap, $3 replication factor, rest: more --set
run() {
  local label=$1 bootstrap=$2 rf=$3
  shift 3
  "$bench" run bench/scenarios/messaging.toml --bootstrap "$bootstrap" \
    --set run.duration_s="$(( warmup + duration ))" --set run.warmup_s="$warmup" \
    --set producer.acks=all --set topic.replication_factor="$rf" \
    --set topic.configs.min.insync.replicas="$(( rf > 1 ? 2 : 1 ))" \
    "$@" "${extra[@]}" --json "$out/$label.json" 2> "$out/$label.txt"
  tail -n 12 "$out/$label.txt"
}

max_rate() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["produce"]["records_per_s"])' "$1"; }

# Three nodes.
"$sluice" dev-cluster --base-port 0 --dir "$work/cluster" > "$work/cluster.out" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q '^bootstrap:' "$work/cluster.out" && break; sleep 0.2; done
bootstrap=$(awk '/^bootstrap:/{print $2}' "$work/cluster.out")
[ -n "$bootstrap" ] || { cat "$work/cluster.out" >&2; exit 1; }
echo "== 3 nodes, RF 3, acks=all, closed loop ($bootstrap)"
run rf3-closed "$bootstrap" 3
half=$(python3 -c "print(int($(max_rate "$out/rf3-closed.json") / 2))")
echo "== 3 nodes, RF 3, acks=all, open loop at $half records/s"
run rf3-half "$bootstrap" 3 --set run.rate="$half"
kill -INT "${pids[0]}"; wait "${pids[0]}" || true; pids=()

# One node.
"$sluice" serve --data-dir "$work/single" --listen 127.0.0.1:0 --set admin.listen=127.0.0.1:0 2> "$work/single.log" &
pids+=($!)
port=
for _ in $(seq 100); do
  port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/single.log" | grep -o '[0-9]*$' || true)
  [ -n "$port" ] && break; sleep 0.1
done
[ -n "$port" ] || { cat "$work/single.log" >&2; exit 1; }
echo "== 1 node, RF 1, acks=all, closed loop"
run rf1-closed "127.0.0.1:$port" 1
half=$(python3 -c "print(int($(max_rate "$out/rf1-closed.json") / 2))")
echo "== 1 node, RF 1, acks=all, open loop at $half records/s"
run rf1-half "127.0.0.1:$port" 1 --set run.rate="$half"
