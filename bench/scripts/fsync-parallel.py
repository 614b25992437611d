#!/usr/bin/env python3
"""How many threads should sync one group-commit round? (docs/benchmarks.md,
"Group commit on a sync crew").

    python3 bench/scripts/fsync-parallel.py --files 9 --rounds 300 --dir /path/on/the/data/disk

Each round writes 4 000 bytes at the end of every one of `--files`
preallocated files (as one append per partition does) and then
`fdatasync`s them all: one after another on this thread, or shared by k
threads that claim files from the round until none is left. It prints the
round time (p50, p90, mean) for one thread, 2, 4 and one thread per file.
Threads are started per round (Python), so the last line also carries the
cost of starting `--files` threads: what a thread per file costs is
overstated, what k threads gain over one is not. Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=9)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        fds = [os.open(f"{d}/f{i}", os.O_RDWR | os.O_CREAT) for i in range(args.files)]
        for fd in fds:
            os.posix_fallocate(fd, 0, 64 << 20)
        record = os.urandom(4000)

        def sync_round(r: int, threads: int) -> None:
            for fd in fds:
                os.pwrite(fd, record, r * len(record))
            if threads == 1:
                for fd in fds:
                    os.fdatasync(fd)
                return
            claimed = iter(fds)
            lock = threading.Lock()

            def claim_and_sync() -> None:
                while True:
                    with lock:
                        fd = next(claimed, None)
                    if fd is None:
                        return
                    os.fdatasync(fd)

            crew = [threading.Thread(target=claim_and_sync) for _ in range(threads)]
            for t in crew:
                t.start()
            for t in crew:
                t.join()

        r = 0
        for threads in sorted({1, 2, 4, args.files}):
            took = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                sync_round(r, threads)
                took.append(time.perf_counter() - started)
                r += 1
            took.sort()
            print(
                f"files={args.files} threads={threads:<4} round p50 {took[len(took) // 2] * 1e3:.2f} ms"
                f"  p90 {took[int(len(took) * 0.9)] * 1e3:.2f}  mean {statistics.mean(took) * 1e3:.2f}"
            )
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    main()
