#!/usr/bin/env bash
# Measures controller failover on three local nodes: kill -9 the active
# controller, then time (a) until a surviving node names a new controller
# and (b) until a CreateTopics through a surviving node succeeds. Repeats
# ROUNDS times (the killed node restarts between rounds). Prints one line
# per round and the raw numbers; nothing is asserted.
#
#   SLUICE_BIN=target/release/sluice ROUNDS=10 scripts/controller-failover.sh
set -euo pipefail
source "$(dirname "$0")/lib/nodes.sh"
ROUNDS=${ROUNDS:-10}
NODES_BASE=${BASE_PORT:-19400}
NODES_ROOT=$(mktemp -d)

cleanup() { sluice_kill_all; rm -rf "$NODES_ROOT"; }
trap cleanup EXIT

now_ms() { date +%s%3N; }

for i in 1 2 3; do node_start "$i"; done
for i in 1 2 3; do node_wait_listening "$i"; done

elect=(); write=()
for round in $(seq 1 "$ROUNDS"); do
  leader=""
  until [[ -n "$leader" && "$leader" -gt 0 ]]; do leader=$(controller_of 1 || true); done
  other=$(( leader % 3 + 1 ))
  kill -9 "${NODE_PID[$leader]}"; t0=$(now_ms)
  while true; do
    c=$(controller_of "$other" || true)
    [[ -n "$c" && "$c" -gt 0 && "$c" -ne "$leader" ]] && break
    sleep 0.01
  done
  t1=$(now_ms)
  until "$SLUICE" topic create "failover-$round" --partitions 1 --bootstrap "127.0.0.1:$((NODES_BASE+other))" --timeout 5 >/dev/null 2>&1; do
    sleep 0.01
  done
  t2=$(now_ms)
  elect+=($((t1-t0))); write+=($((t2-t0)))
  echo "round $round: killed controller $leader; new controller $c after $((t1-t0)) ms; first metadata write after $((t2-t0)) ms"
  node_start "$leader"; node_wait_listening "$leader"
done
echo "election_ms: ${elect[*]}"
echo "first_write_ms: ${write[*]}"
