#!/usr/bin/env bash
# Measures controller failover on three local nodes: kill -9 the active
# controller, then time (a) until a surviving node names a new controller
# and (b) until a CreateTopics through a surviving node succeeds. Repeats
# ROUNDS times (the killed node restarts between rounds). Prints one line
# per round and the raw numbers; nothing is asserted.
#
#   SLUICE_BIN=target/release/sluice ROUNDS=10 scripts/controller-failover.sh
set -euo pipefail
BIN=${SLUICE_BIN:-target/release/sluice}
ROUNDS=${ROUNDS:-10}
BASE=${BASE_PORT:-19400}
ROOT=$(mktemp -d)
declare -A PID
VOTERS="1@127.0.0.1:$((BASE+11)),2@127.0.0.1:$((BASE+12)),3@127.0.0.1:$((BASE+13))"

start() {
  local i=$1
  "$BIN" serve --node-id "$i" --data-dir "$ROOT/d$i" --listen "127.0.0.1:$((BASE+i))" \
    --controller-listen "127.0.0.1:$((BASE+10+i))" --controller-voters "$VOTERS" --admin-listen 127.0.0.1:0 \
    >"$ROOT/log$i" 2>&1 &
  PID[$i]=$!
}
cleanup() { for i in "${!PID[@]}"; do kill -9 "${PID[$i]}" 2>/dev/null || true; done; rm -rf "$ROOT"; }
trap cleanup EXIT

controller_of() {
  "$BIN" cluster info --bootstrap "127.0.0.1:$((BASE+$1))" --output json --timeout 1 2>/dev/null \
    | sed -n 's/.*"controller_id":\([-0-9]*\).*/\1/p'
}
wait_listening() { until grep -q "listening on" "$ROOT/log$1" 2>/dev/null; do sleep 0.05; done; }
now_ms() { date +%s%3N; }

for i in 1 2 3; do start "$i"; done
for i in 1 2 3; do wait_listening "$i"; done

elect=(); write=()
for round in $(seq 1 "$ROUNDS"); do
  leader=""
  until [[ -n "$leader" && "$leader" -gt 0 ]]; do leader=$(controller_of 1 || true); done
  other=$(( leader % 3 + 1 ))
  kill -9 "${PID[$leader]}"; t0=$(now_ms)
  while true; do
    c=$(controller_of "$other" || true)
    [[ -n "$c" && "$c" -gt 0 && "$c" -ne "$leader" ]] && break
    sleep 0.01
  done
  t1=$(now_ms)
  until "$BIN" topic create "failover-$round" --partitions 1 --bootstrap "127.0.0.1:$((BASE+other))" --timeout 5 >/dev/null 2>&1; do
    sleep 0.01
  done
  t2=$(now_ms)
  elect+=($((t1-t0))); write+=($((t2-t0)))
  echo "round $round: killed controller $leader; new controller $c after $((t1-t0)) ms; first metadata write after $((t2-t0)) ms"
  : >"$ROOT/log$leader"; start "$leader"; wait_listening "$leader"
done
echo "election_ms: ${elect[*]}"
echo "first_write_ms: ${write[*]}"
