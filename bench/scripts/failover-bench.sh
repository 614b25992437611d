#!/usr/bin/env bash
# Produce unavailability after kill -9 of a partition leader, measured by
# sluice-bench itself: the messaging scenario in its planned shape (three
# nodes of `sluice dev-cluster`, replication factor 3, min.insync.replicas
# 2, acks=all with idempotence, 1 KiB records) in an open loop at RATE
# records/s; KILL_AT
# seconds into the measured window the leader of partition 0 is killed
# with SIGKILL. The open loop measures each record from when it was due,
# so the record due just after the kill waits for the whole failover: the
# run's maximum produce latency is the time until acks=all produce succeeds
# again (the bench's own client, sluice-client, finds the new leader).
# Repeats ROUNDS times, a fresh cluster each. A benchmark, not a test:
# results go to docs/benchmarks.md with this command.
#
#   bench/scripts/failover-bench.sh OUT_DIR
#
# Binaries: $SLUICE_BIN and $BENCH_BIN, default target/release/{sluice,sluice-bench}.
# Every node listens on 127.0.0.1 on ports the OS picks; each cluster is
# stopped by PID (SIGINT, then the nodes by their PIDs) when its round ends.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:?usage: failover-bench.sh OUT_DIR}
sluice=${SLUICE_BIN:-$PWD/target/release/sluice}
bench=${BENCH_BIN:-$PWD/target/release/sluice-bench}
rounds=${ROUNDS:-5}
rate=${RATE:-2000}
kill_at=${KILL_AT:-8}
duration=${DURATION:-20}
mkdir -p "$out"
work=$(mktemp -d)
cluster_pid=""
node_pids=()
stop_cluster() {
  [ -n "$cluster_pid" ] && kill -INT "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null || true
  for p in "${node_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  cluster_pid=""
  node_pids=()
}
trap 'stop_cluster; rm -rf "$work"' EXIT

echo "machine: $(nproc) cores, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); sluice $(git rev-parse --short HEAD)" | tee "$out/machine.txt"

for round in $(seq 1 "$rounds"); do
  dir="$work/round-$round"
  "$sluice" dev-cluster --base-port 0 --dir "$dir" > "$dir.out" 2>&1 &
  cluster_pid=$!
  for _ in $(seq 300); do grep -q '^bootstrap:' "$dir.out" && break; sleep 0.2; done
  bootstrap=$(awk '/^bootstrap:/{print $2}' "$dir.out")
  [ -n "$bootstrap" ] || { cat "$dir.out" >&2; exit 1; }
  declare -A pid_of=()
  while read -r id pid; do pid_of[$id]=$pid; node_pids+=("$pid"); done < <(
    awk '$1 == "node" && $3 == "pid" {print $2, $4}' "$dir.out")

  "$bench" run bench/scenarios/messaging.toml --bootstrap "$bootstrap" --ceiling-secs 1 \
    --set run.duration_s="$duration" --set run.warmup_s=2 --set run.rate="$rate" \
    --set producer.acks=all --set producer.idempotent=true --set topic.replication_factor=3 \
    --set topic.configs.min.insync.replicas=2 \
    --json "$out/round-$round.json" 2> "$out/round-$round.txt" &
  bench_pid=$!
  # The measured window starts once the first progress line is out (after
  # the ceiling, the topic's creation and the warm-up).
  for _ in $(seq 600); do grep -q '^\[messaging' "$out/round-$round.txt" 2>/dev/null && break; sleep 0.1; done
  sleep "$kill_at"
  leader=$("$sluice" topic describe bench-messaging --bootstrap "$bootstrap" --output json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["partitions"][0]["leader"])')
  kill -9 "${pid_of[$leader]}"
  echo "round $round: killed node $leader (pid ${pid_of[$leader]})" | tee -a "$out/kills.txt"
  wait "$bench_pid"
  python3 - "$out/round-$round.json" "$round" <<'EOF'
import json, sys
result = json.load(open(sys.argv[1]))
r, l = result["produce"], result["produce"]["latency"]
print(f"round {sys.argv[2]}: produce max {l['max_ms'] / 1000:.2f} s (p99.9 {l['p999_ms']:.1f} ms, "
      f"p50 {l['p50_ms']:.2f} ms), {r['records_acked']} acked, {r['errors']} errors, "
      f"{result['readback']['records']} read back")
EOF
  stop_cluster
done
