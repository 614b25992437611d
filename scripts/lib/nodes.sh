# Sourced by the benchmark and measurement scripts (bench/scripts/*.sh,
# scripts/*-failover.sh): starts `sluice serve` processes on 127.0.0.1,
# waits (bounded) for their "listening on" line, and kills them by PID.
#
#   one broker:     broker_start LOG [serve args...]   → BROKER_PID, BROKER_PORT
#   a 3-voter cluster (ports NODES_BASE+i for Kafka, NODES_BASE+10+i for the
#   controller; data NODES_ROOT/d<i>, log NODES_ROOT/log<i>):
#                   node_start I [serve args...]        → NODE_PID[I]
#                   node_wait_listening I
#                   controller_of I                     (the controller node I names)
#   cleanup:        sluice_kill_all                     (every PID started here)
#
# The binary is $SLUICE_BIN (default target/release/sluice). A start waits at
# most $NODES_START_TIMEOUT_S (60) seconds; a cluster node listens only
# once a quorum of voters runs and it is unfenced.

SLUICE=${SLUICE_BIN:-target/release/sluice}
NODES_START_TIMEOUT_S=${NODES_START_TIMEOUT_S:-60}
NODES_PIDS=()
declare -A NODE_PID=()

# wait_listening LOG: prints the port of LOG's first "listening on
# 127.0.0.1:PORT" line; fails after NODES_START_TIMEOUT_S seconds.
wait_listening() {
  local log=$1 port deadline=$((SECONDS + NODES_START_TIMEOUT_S))
  while ((SECONDS < deadline)); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" 2>/dev/null | head -n 1 | grep -o '[0-9]*$' || true)
    [[ -n "$port" ]] && { echo "$port"; return 0; }
    sleep 0.05
  done
  echo "no 'listening on' line in $log within ${NODES_START_TIMEOUT_S}s:" >&2
  tail -n 20 "$log" >&2 || true
  return 1
}

# broker_start LOG [serve args...]: one broker on an ephemeral port, its
# stderr in LOG; sets BROKER_PID and BROKER_PORT. LOG is emptied before the
# broker starts: the shell's own truncation runs in the child, after this
# function may already read LOG, and would let an earlier broker's
# "listening on" line name the port.
broker_start() {
  local log=$1
  shift
  : >"$log"
  "$SLUICE" serve --listen 127.0.0.1:0 "$@" 2>"$log" &
  BROKER_PID=$!
  NODES_PIDS+=("$BROKER_PID")
  BROKER_PORT=$(wait_listening "$log")
}

# node_start I [serve args...]: node I (1..3) of the three-voter cluster
# under NODES_ROOT with ports from NODES_BASE; its log starts empty.
node_start() {
  local i=$1
  shift
  local voters="1@127.0.0.1:$((NODES_BASE + 11)),2@127.0.0.1:$((NODES_BASE + 12)),3@127.0.0.1:$((NODES_BASE + 13))"
  # Emptied here, not by the redirection below (which runs in the child):
  # a restarted node's old "listening on" line must not be read as new.
  : >"$NODES_ROOT/log$i"
  "$SLUICE" serve --node-id "$i" --data-dir "$NODES_ROOT/d$i" --listen "127.0.0.1:$((NODES_BASE + i))" \
    --controller-listen "127.0.0.1:$((NODES_BASE + 10 + i))" --controller-voters "$voters" \
    --admin-listen 127.0.0.1:0 "$@" >"$NODES_ROOT/log$i" 2>&1 &
  NODE_PID[$i]=$!
  NODES_PIDS+=("${NODE_PID[$i]}")
}

node_wait_listening() { wait_listening "$NODES_ROOT/log$1" >/dev/null; }

# cluster_info I: `sluice cluster info` as JSON through node I (empty if
# it does not answer within a second).
cluster_info() {
  "$SLUICE" cluster info --bootstrap "127.0.0.1:$((NODES_BASE + $1))" --output json --timeout 1 2>/dev/null || true
}

controller_of() { cluster_info "$1" | sed -n 's/.*"controller_id":\([-0-9]*\).*/\1/p'; }

sluice_kill_all() {
  local p
  for p in "${NODES_PIDS[@]}"; do
    kill -9 "$p" 2>/dev/null || true
    # Reaped here, so bash prints no "Killed" line for the job.
    wait "$p" 2>/dev/null || true
  done
}
