#!/usr/bin/env python3
"""The disk's own fdatasync tail, without a broker (docs/benchmarks.md,
"The disk's own fdatasync tail").

    python3 bench/scripts/fsync-tail.py --seconds 15 --mb-per-s 400 --rounds 2 --dir /path/on/the/data/disk

Writes `--mb-per-s` in 512 KiB `pwrite`s, each followed by an
`fdatasync` (one group-commit round of one partition), paced to the rate,
in two layouts alternated `--rounds` times:

- `falloc`: 1 GiB files reserved with `fallocate` 64 MiB at a time, as
  Sluice reserves its segments (unwritten extents: each sync also writes
  the extents it converted);
- `zeroed`: one 1 GiB file written with zeros and synced beforehand, then
  overwritten in place (written extents: a sync writes data only).

Prints per layout the syncs' p50 / p99 / p99.9 / max, how many a second
took over 2 ms, and how many over 5 ms. A broker whose produce answers
wait for fdatasync cannot have a latency tail below the one this shows.
Not a test: numbers only. Files go to a temporary directory under `--dir`
and are removed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

WRITE_BYTES = 512 * 1024
FILE_BYTES = 1 << 30
RESERVE_STEP = 64 << 20


def run(layout: str, seconds: float, rate: float, d: str) -> str:
    buf = os.urandom(WRITE_BYTES)
    files: list[str] = []

    def new_file() -> int:
        path = f"{d}/seg{len(files)}.dat"
        files.append(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        if layout == "zeroed":
            zeros = bytes(8 << 20)
            for off in range(0, FILE_BYTES, len(zeros)):
                os.pwrite(fd, zeros, off)
            os.fdatasync(fd)
        return fd

    fd = new_file()
    pos, reserved = 0, FILE_BYTES if layout == "zeroed" else 0
    lat: list[float] = []
    start = time.monotonic()
    written = 0
    while time.monotonic() - start < seconds:
        if pos + WRITE_BYTES > FILE_BYTES:
            if layout == "zeroed":
                pos = 0
            else:
                os.close(fd)
                fd = new_file()
                pos, reserved = 0, 0
        if pos + WRITE_BYTES > reserved:
            reserved += RESERVE_STEP
            os.posix_fallocate(fd, 0, reserved)
        os.pwrite(fd, buf, pos)
        pos += WRITE_BYTES
        written += WRITE_BYTES
        before = time.monotonic()
        os.fdatasync(fd)
        lat.append(time.monotonic() - before)
        ahead = written / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    elapsed = time.monotonic() - start
    os.close(fd)
    for path in files:
        os.unlink(path)
    lat.sort()
    n = len(lat)

    def ms(q: float) -> float:
        return lat[min(n - 1, int(q * n))] * 1e3

    over_2 = sum(x > 2e-3 for x in lat)
    over_5 = sum(x > 5e-3 for x in lat)
    return (
        f"{layout:7s} {n} syncs, {written / elapsed / 1e6:.0f} MB/s: p50 {ms(0.5):.2f} p99 {ms(0.99):.2f} "
        f"p99.9 {ms(0.999):.2f} max {lat[-1] * 1e3:.2f} ms; over 2 ms {over_2 / elapsed:.2f}/s, over 5 ms {over_5}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--mb-per-s", type=float, default=400.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        for r in range(args.rounds):
            for layout in ("falloc", "zeroed"):
                print(f"r{r + 1} {run(layout, args.seconds, args.mb_per_s * 1e6, d)}", flush=True)


if __name__ == "__main__":
    main()
