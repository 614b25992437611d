#!/usr/bin/env python3
"""What writing into new page cache costs on this machine, against
writing into page cache that is freed and reused (docs/benchmarks.md,
"1 000 partitions: the page cache, not the partitions").

    python3 bench/scripts/page-cache-growth.py --files 1000 --gib 8 --cap-mib 2 --dir /path/on/the/data/disk

Writes `--gib` GiB in 64 KiB `pwrite`s round-robin over `--files`
files (reserved with `fallocate` as they grow, as Sluice reserves
segments), twice: `growing` (every file keeps what it was given, so the
page cache grows by the whole amount, as 1 000 partitions that never
reach their retention do) and `recycled` (a file is truncated to zero
whenever it reaches `--cap-mib`, so the page cache stays near
files x cap and freed pages are written again, as one partition whose
retention deletes old segments does). Prints the process's CPU-seconds
(user + system) per GiB written for each. No fdatasync: the kernel's
write path alone. Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

WRITE_BYTES = 64 * 1024
RESERVE_STEP = 4 << 20


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(mode: str, files: int, total: int, cap: int, d: str) -> str:
    buf = os.urandom(WRITE_BYTES)
    fds = [os.open(f"{d}/{mode}{i}.dat", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644) for i in range(files)]
    pos = [0] * files
    reserved = [0] * files
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    written, i = 0, 0
    while written < total:
        fd = fds[i]
        if mode == "recycled" and pos[i] + WRITE_BYTES > cap:
            os.ftruncate(fd, 0)
            pos[i], reserved[i] = 0, 0
        if pos[i] + WRITE_BYTES > reserved[i]:
            reserved[i] += RESERVE_STEP
            os.posix_fallocate(fd, 0, reserved[i])
        os.pwrite(fd, buf, pos[i])
        pos[i] += WRITE_BYTES
        written += WRITE_BYTES
        i = (i + 1) % files
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
    for n, fd in enumerate(fds):
        os.close(fd)
        os.unlink(f"{d}/{mode}{n}.dat")
    gib = written / (1 << 30)
    return f"{mode:8s} {gib:.1f} GiB over {files} files in {wall:.1f} s: {cpu:.2f} CPU-s, {cpu / gib:.3f} CPU-s per GiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--gib", type=float, default=8.0)
    ap.add_argument("--cap-mib", type=int, default=2)
    ap.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temporary one)")
    args = ap.parse_args()
    total = int(args.gib * (1 << 30))
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        for mode in ("growing", "recycled", "growing"):
            print(run(mode, args.files, total, args.cap_mib << 20, d), flush=True)
            os.sync()
            time.sleep(2)


if __name__ == "__main__":
    main()
