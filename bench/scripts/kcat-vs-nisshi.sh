#!/usr/bin/env bash
# Sluice against Nisshi side by side, kcat (librdkafka) as the client, in
# one run: for each round, each broker is started fresh on an empty store,
# the same records are produced with `kcat -P` from one file and read back
# from the beginning with `kcat -C`; wall time, kcat's CPU (/usr/bin/time)
# and the broker's CPU (/proc/<pid>/stat around each phase) per phase, then
# the Sluice / Nisshi ratios of the round. Optionally (SLUICE_BENCH=path)
# the same fresh-broker rotation runs `sluice-bench` producer-only on each.
# A benchmark, not a test: results go to docs/benchmarks.md.
#
#   bench/scripts/kcat-vs-nisshi.sh OUT_DIR [records] [value_bytes] [rounds]
#
# NISSHI_BIN: the nisshi binary (built apart, nothing of it committed; see
#   docs/benchmarks.md), run with its in-memory engine.
# BROKERS: which to run, in order, each round (default "sluice-fsync nisshi";
#   also "sluice-page_cache").
# SLUICE_BENCH / BENCH_ARGS: a sluice-bench binary and the arguments after
#   `run` (default: messaging with this value size, 10 s, producer only).
# PERF=1: `perf record -F 499` of the Sluice broker during its round-1
#   produce and consume phases (OUT_DIR/perf-<broker>-<phase>.txt: self
#   time per symbol). Needs linux-perf.
# KCAT_LIBRDKAFKA_DIR: a directory holding another librdkafka.so.1 for kcat
#   (LD_LIBRARY_PATH). Debian's librdkafka 2.0.2 fails Nisshi 0.8.1's
#   ApiVersions v3 answer ("Read underflow"); the librdkafka 2.16.0 bundled
#   in the confluent-kafka wheel (/work/venv) talks to both, and the same
#   one is then used for both brokers.
# Needs kcat (apt-get install kcat) and a release build of sluice.
# Everything listens on 127.0.0.1 and is killed by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
SLUICE_BIN=${SLUICE_BIN:-$PWD/target/release/sluice}
work=$(mktemp -d)
if [ "${PERF:-0}" = 1 ]; then
  # Debian's perf 6.1 reads no symbols from a binary with Rust 1.95's debug
  # info; without the debug sections it reads the symbol table.
  objcopy --strip-debug "$SLUICE_BIN" "$work/sluice"
  SLUICE_BIN=$work/sluice
fi
source scripts/lib/nodes.sh

out=${1:?usage: kcat-vs-nisshi.sh OUT_DIR [records] [value_bytes] [rounds]}
records=${2:-500000}
value_bytes=${3:-1024}
rounds=${4:-2}
nisshi=${NISSHI_BIN:?NISSHI_BIN: path to the nisshi binary}
brokers=${BROKERS:-sluice-fsync nisshi}
bench=${SLUICE_BENCH:-}
bench_args=${BENCH_ARGS:-messaging --no-ceiling --set run.duration_s=10 --set run.warmup_s=2 --set records.value_bytes=$value_bytes --set consumer.connections=0 --set consumer.readback=false}
mkdir -p "$out"
if [ -n "${KCAT_LIBRDKAFKA_DIR:-}" ]; then export LD_LIBRARY_PATH=$KCAT_LIBRDKAFKA_DIR; fi
broker=
stop_broker() {
  if [ -n "$broker" ]; then kill -9 "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; fi
  broker=
}
cleanup() { stop_broker; sluice_kill_all; rm -rf "$work"; }
trap cleanup EXIT

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, USER_HZ = 100
now() { date +%s.%N; }

# fresh NAME: starts broker NAME on an empty store; sets broker, bootstrap.
fresh() {
  stop_broker
  rm -rf "$work/data"
  case $1 in
    sluice-*)
      printf 'durability = "%s"\n' "${1#sluice-}" > "$work/sluice.toml"
      rm -f "$work/$1.log" # its old "listening on" line would name the old port
      broker_start "$work/$1.log" --config "$work/sluice.toml" --data-dir "$work/data" --admin-listen 127.0.0.1:0
      broker=$BROKER_PID
      bootstrap=127.0.0.1:$BROKER_PORT
      ;;
    nisshi)
      local port
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
      "$nisshi" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >"$work/nisshi.log" 2>&1 &
      broker=$!
      bootstrap=127.0.0.1:$port
      local deadline=$((SECONDS + 30))
      until (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "nisshi did not listen" >&2; tail "$work/nisshi.log" >&2; exit 1; }
        sleep 0.1
      done
      ;;
    *) echo "unknown broker $1" >&2; exit 1 ;;
  esac
  # The same topic on both: one partition, created before the clock runs.
  "$SLUICE" topic create side --partitions 1 --bootstrap "$bootstrap" >/dev/null
}

# phase NAME ROUND PHASE CMD...: runs CMD under /usr/bin/time, prints one row.
phase() {
  local name=$1 round=$2 what=$3
  shift 3
  local b0 b1 t0 t1 perf_pid=
  if [ "${PERF:-0}" = 1 ] && [ "$round" = 1 ] && [[ $name == sluice-* ]]; then
    perf record -F 499 -p "$broker" -o "$work/perf.data" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.5
  fi
  b0=$(ticks "$broker")
  t0=$(now)
  /usr/bin/time -f "%U %S" -o "$work/time" "$@"
  t1=$(now)
  b1=$(ticks "$broker")
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
    perf report -i "$work/perf.data" --no-children --sort symbol --percent-limit 0.7 --stdio 2>/dev/null \
      | grep -E '^ +[0-9]' > "$out/perf-$name-$what.txt" || true
  fi
  read -r user sys < "$work/time"
  python3 - "$name" "$round" "$what" "$t0" "$t1" "$user" "$sys" "$b0" "$b1" "$records" "$value_bytes" <<'PY' | tee -a "$out/rows.txt"
import sys
name, rnd, what = sys.argv[1:4]
t0, t1, user, sys_, b0, b1, n, vb = map(float, sys.argv[4:])
wall, client, broker = t1 - t0, user + sys_, (b1 - b0) / 100
m = n / 1e6
print(f"{name:<18} r{rnd} {what:<8} wall {wall:6.2f} s {n / wall:10.0f} rec/s {n * vb / wall / 2**20:7.1f} MiB/s  "
      f"kcat {client:5.2f} CPU-s ({client / m:5.3f}/M rec)  broker {broker:5.2f} CPU-s ({broker / m:5.3f}/M rec, "
      f"{n * vb / 2**30 / broker if broker else float('inf'):5.2f} GiB/CPU-s)")
PY
}

{
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "sluice: $(git rev-parse --short HEAD); nisshi: $("$nisshi" --version 2>/dev/null | head -n 1)"
  echo "kcat: $(kcat -V 2>&1 | grep -o 'librdkafka [0-9.]*' | head -n 1); $records records x $value_bytes B values (+ newline), 1 partition, acks=all, no compression"
} | tee "$out/summary.txt"
python3 bench/scripts/records.py "$records" "$value_bytes" > "$work/records.txt"
: > "$out/rows.txt"

for round in $(seq 1 "$rounds"); do
  for name in $brokers; do
    fresh "$name"
    phase "$name" "$round" produce kcat -P -b "$bootstrap" -t side -p 0 -z none \
      -X linger.ms=5 -X batch.size=1048576 -X queue.buffering.max.kbytes=1048576 \
      -X request.required.acks=-1 -X enable.idempotence=false -l "$work/records.txt"
    # Offsets only, so kcat's formatting does not dominate; exits at the end.
    phase "$name" "$round" consume sh -c "kcat -C -b '$bootstrap' -t side -p 0 -o beginning -e -q -f '%o\n' \
      -X fetch.max.bytes=52428800 -X fetch.message.max.bytes=10485760 -X queued.max.messages.kbytes=1048576 -X queued.min.messages=10000000 \
      | wc -l > '$work/consumed'"
    consumed=$(cat "$work/consumed")
    [ "$consumed" -eq "$records" ] || echo "$name r$round: consumed $consumed of $records" | tee -a "$out/rows.txt"
    if [ -n "$bench" ]; then
      fresh "$name"
      # shellcheck disable=SC2086
      "$bench" run $bench_args --bootstrap "$bootstrap" --broker-pid "$broker" \
        --json "$out/bench-$name-r$round.json" 2> "$out/bench-$name-r$round.log" || echo "$name: sluice-bench failed" >&2
      grep -E "^(produce|cpu|cost) *:" "$out/bench-$name-r$round.log" | sed "s/^/$name r$round bench: /" | tee -a "$out/rows.txt"
    fi
  done
done
stop_broker

# Ratios per round: the first sluice-* broker over nisshi, same phase.
python3 - "$out/rows.txt" <<'PY' | tee -a "$out/summary.txt"
import re, sys, collections
rate = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    m = re.match(r"(\S+)\s+r(\d+) (produce|consume)\s+wall\s+\S+ s\s+(\d+) rec/s", line)
    if m:
        rate[(m[2], m[3])][m[1]] = float(m[4])
for (rnd, what), by in sorted(rate.items()):
    for name, r in by.items():
        if name.startswith("sluice") and "nisshi" in by:
            print(f"round {rnd} {what:<8} {name} / nisshi = {r / by['nisshi']:.2f}")
PY
