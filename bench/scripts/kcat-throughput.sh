#!/usr/bin/env bash
# One-node produce and fetch throughput of `sluice` with a real Kafka client
# (kcat, librdkafka), beside the loopback TCP ceiling (iperf3) measured in
# the same run. A benchmark, not a test: results go to docs/benchmarks.md.
#
#   bench/scripts/kcat-throughput.sh [records] [record_bytes] [durability]
#
# Needs: kcat and iperf3 (apt-get install kcat iperf3), a release build of
# sluice (cargo build --release --bin sluice). Everything listens on
# 127.0.0.1 and is killed by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
SLUICE_BIN=${SLUICE_BIN:-$PWD/target/release/sluice}
source scripts/lib/nodes.sh

records=${1:-500000}
record_bytes=${2:-1024}
durability=${3:-fsync}
work=$(mktemp -d)
cleanup() { sluice_kill_all; rm -rf "$work"; }
trap cleanup EXIT

now() { date +%s.%N; }
rate() { # bytes seconds -> MiB/s
  python3 -c "import sys; b,s=float(sys.argv[1]),float(sys.argv[2]); print(f'{b/s/1048576:.1f}')" "$1" "$2"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)"
echo "sluice: $(git rev-parse --short HEAD), durability=$durability, $records records x $record_bytes B"

# 1. Loopback ceiling.
iperf3 -s -B 127.0.0.1 -p 15201 -1 >/dev/null 2>&1 & NODES_PIDS+=($!)
sleep 0.5
ceiling=$(iperf3 -c 127.0.0.1 -p 15201 -t 5 -J | python3 -c "import json,sys; print(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/8/1048576)")
printf 'loopback ceiling (iperf3, 1 stream, 5 s): %.1f MiB/s\n' "$ceiling"

# 2. Input: one record per line (kcat splits on newlines).
python3 bench/scripts/records.py "$records" "$((record_bytes - 1))" > "$work/records.txt"
payload=$((records * (record_bytes - 1)))

# 3. Broker.
printf 'durability = "%s"\n' "$durability" > "$work/sluice.toml"
broker_start "$work/broker.log" --config "$work/sluice.toml" --data-dir "$work/data"
bootstrap=127.0.0.1:$BROKER_PORT

# 4. Produce (acks=all, no compression, 1 partition).
t0=$(now)
kcat -P -b "$bootstrap" -t bench -p 0 -z none \
  -X linger.ms=5 -X batch.size=1048576 -X queue.buffering.max.kbytes=1048576 \
  -X request.required.acks=-1 -l "$work/records.txt"
t1=$(now)
produce_s=$(python3 -c "print($t1-$t0)")
produce=$(rate "$payload" "$produce_s")
echo "produce: ${records} records in ${produce_s}s = ${produce} MiB/s of values"

# 5. Fetch everything back.
t0=$(now)
consumed=$(kcat -C -b "$bootstrap" -t bench -p 0 -o beginning -e -q -f '%o\n' -X fetch.max.bytes=52428800 -X fetch.message.max.bytes=10485760 | wc -l)
t1=$(now)
fetch_s=$(python3 -c "print($t1-$t0)")
fetch=$(rate "$payload" "$fetch_s")
echo "fetch: ${consumed} records in ${fetch_s}s = ${fetch} MiB/s of values"
python3 -c "c=$ceiling; print(f'ratios to loopback: produce {$produce/c:.2f}, fetch {$fetch/c:.2f}')"
[ "$consumed" -eq "$records" ] || { echo "consumed $consumed of $records" >&2; exit 1; }
