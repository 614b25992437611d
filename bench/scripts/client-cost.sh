#!/usr/bin/env bash
# Client CPU cost, librdkafka against sluice-client, in one run against one
# broker: the same records (count, value size, 1 partition, acks=1, no
# compression) produced by kcat and by sluice-bench (one or more builds of
# it), each followed by the same CPU accounting — client CPU-seconds from
# /usr/bin/time (kcat) or the bench's own /proc/self (sluice-bench, JSON
# `cost`), broker CPU-seconds from /proc/<pid>/stat around each phase.
# A benchmark, not a test: results go to docs/benchmarks.md.
#
#   bench/scripts/client-cost.sh OUT_DIR [records] [value_bytes] [durability]
#
# BENCHES="name=path ..." picks the sluice-bench builds (default: this
# tree's release build, "sluice-bench=target/release/sluice-bench").
# Needs kcat (apt-get install kcat) and a release build of sluice.
# Everything listens on 127.0.0.1 and is killed by PID on exit.
#
# What each client does per record is not identical: kcat reads a line
# from a file and copies it into librdkafka; sluice-bench generates the
# value (a stamp and filler) and hands it over as `Bytes`. Both include
# their input side in their CPU time.
set -euo pipefail
cd "$(dirname "$0")/../.."
SLUICE_BIN=${SLUICE_BIN:-$PWD/target/release/sluice}
source scripts/lib/nodes.sh

out=${1:?usage: client-cost.sh OUT_DIR [records] [value_bytes] [durability]}
records=${2:-500000}
value_bytes=${3:-1024}
durability=${4:-fsync}
benches=${BENCHES:-sluice-bench=$PWD/target/release/sluice-bench}
mkdir -p "$out"
work=$(mktemp -d)
cleanup() { sluice_kill_all; rm -rf "$work"; }
trap cleanup EXIT

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, USER_HZ = 100

{
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "git: $(git rev-parse --short HEAD), durability=$durability, $records records x $value_bytes B values, 1 partition, acks=1, no compression"
} | tee "$out/summary.txt"

python3 bench/scripts/records.py "$records" "$value_bytes" > "$work/records.txt"

printf 'durability = "%s"\n' "$durability" > "$work/sluice.toml"
# Each client gets a fresh broker on an empty data dir: a broker that
# already holds the earlier clients' data spends more CPU per GiB
# (up to 4x in one run), which would be charged to whoever came last.
broker=
fresh_broker() { # name
  if [ -n "$broker" ]; then kill -9 "$broker"; wait "$broker" 2>/dev/null || true; fi
  rm -rf "$work/data"
  broker_start "$work/broker-$1.log" --config "$work/sluice.toml" --data-dir "$work/data"
  broker=$BROKER_PID
  bootstrap=127.0.0.1:$BROKER_PORT
}

row() { # name wall_s client_cpu_s broker_cpu_s records
  python3 - "$@" "$value_bytes" <<'PY' | tee -a "$out/summary.txt"
import sys
name, wall, client, broker, n, vb = sys.argv[1], *map(float, sys.argv[2:])
gib = n * vb / 2**30
print(f"{name:<22} wall {wall:7.2f} s  {n / wall:10.0f} rec/s  {n * vb / wall / 2**20:7.1f} MiB/s  "
      f"client {client:6.2f} CPU-s = {client / gib:6.3f} /GiB {client / n * 1e6:6.3f} /M rec  "
      f"broker {broker:6.2f} CPU-s = {broker / gib:6.3f} /GiB {broker / n * 1e6:6.3f} /M rec")
PY
}

# kcat (librdkafka): acks=1, linger 5 ms, 1 MiB batches, like the scenario.
fresh_broker kcat
"$SLUICE" topic create kcat-cost --partitions 1 --bootstrap "$bootstrap" >/dev/null
b0=$(ticks "$broker")
/usr/bin/time -f "%e %U %S" -o "$work/kcat.time" \
  kcat -P -b "$bootstrap" -t kcat-cost -p 0 -z none \
  -X linger.ms=5 -X batch.size=1048576 -X queue.buffering.max.kbytes=1048576 \
  -X request.required.acks=1 -X enable.idempotence=false -l "$work/records.txt"
b1=$(ticks "$broker")
read -r wall user sys < "$work/kcat.time"
row kcat "$wall" "$(python3 -c "print($user + $sys)")" "$(python3 -c "print(($b1 - $b0) / 100)")" "$records"

# sluice-bench builds: the messaging scenario with a record quota, no
# tailing consumer, no read-back, no ceiling.
for entry in $benches; do
  name=${entry%%=*}; bin=${entry#*=}
  fresh_broker "$name"
  b0=$(ticks "$broker")
  "$bin" run messaging --bootstrap "$bootstrap" --broker-pid "$broker" --no-ceiling \
    --set run.records="$records" --set run.duration_s=600 --set run.warmup_s=0 --set run.drain_s=0 \
    --set records.value_bytes="$value_bytes" --set consumer.connections=0 --set consumer.readback=false \
    --set topic.name="cost-$name" --json "$out/$name.json" 2> "$out/$name.log"
  b1=$(ticks "$broker")
  python3 - "$out/$name.json" > "$work/bench.vals" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p, c = r["produce"], r["cpu"]["run"]
print(p["records_acked"] / max(p["records_per_s"], 1e-9), c["bench_cpu_s"], p["records_acked"])
PY
  read -r wall client acked < "$work/bench.vals"
  [ "$acked" -eq "$records" ] || echo "$name: $acked of $records acknowledged" | tee -a "$out/summary.txt"
  row "$name" "$wall" "$client" "$(python3 -c "print(($b1 - $b0) / 100)")" "$records"
done
