#!/usr/bin/env bash
# Measures broker fencing on three local nodes: kill -9 a broker that is
# not the active controller, then time until a surviving node's Metadata
# no longer lists it. Fencing and the moves of its leaderships are one
# atomic metadata record, so that Metadata answer already names the new
# leaders. Then the killed node restarts, and the time until it listens
# (it listens only once unfenced) is measured too. Repeats ROUNDS times;
# prints one line per round and the raw numbers; nothing is asserted.
#
#   SLUICE_BIN=target/release/sluice ROUNDS=5 SESSION_MS=9000 scripts/broker-failover.sh
#
# SESSION_MS sets broker.session.timeout.ms (Kafka's default 9000 when
# unset); HEARTBEAT_MS sets broker.heartbeat.interval.ms (default 2000).
set -euo pipefail
source "$(dirname "$0")/lib/nodes.sh"
ROUNDS=${ROUNDS:-5}
NODES_BASE=${BASE_PORT:-19500}
NODES_ROOT=$(mktemp -d)
CONFIG="$NODES_ROOT/liveness.toml"
: >"$CONFIG"
[[ -n "${SESSION_MS:-}" ]] && echo "\"broker.session.timeout.ms\" = $SESSION_MS" >>"$CONFIG"
[[ -n "${HEARTBEAT_MS:-}" ]] && echo "\"broker.heartbeat.interval.ms\" = $HEARTBEAT_MS" >>"$CONFIG"

start() { node_start "$1" --config "$CONFIG"; }
cleanup() { sluice_kill_all; rm -rf "$NODES_ROOT"; }
trap cleanup EXIT

lists() { cluster_info "$1" | grep -q "\"node_id\":$2[,}]"; }
now_ms() { date +%s%3N; }

for i in 1 2 3; do start "$i"; done
for i in 1 2 3; do node_wait_listening "$i"; done
"$SLUICE" topic create t --partitions 6 --replication-factor 3 --bootstrap "127.0.0.1:$((NODES_BASE+1))" >/dev/null

fence=(); rejoin=()
for round in $(seq 1 "$ROUNDS"); do
  controller=""
  until [[ -n "$controller" && "$controller" -gt 0 ]]; do controller=$(controller_of 1); done
  victim=$(( controller % 3 + 1 ))
  until lists "$controller" "$victim"; do sleep 0.05; done
  kill -9 "${NODE_PID[$victim]}"; t0=$(now_ms)
  while lists "$controller" "$victim"; do sleep 0.02; done
  t1=$(now_ms)
  start "$victim"; node_wait_listening "$victim"
  t2=$(now_ms)
  fence+=($((t1-t0))); rejoin+=($((t2-t1)))
  echo "round $round: killed broker $victim; fenced, leaderships moved after $((t1-t0)) ms; restarted and unfenced in $((t2-t1)) ms"
done
echo "fenced_ms: ${fence[*]}"
echo "restart_unfenced_ms: ${rejoin[*]}"
