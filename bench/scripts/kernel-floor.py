#!/usr/bin/env python3
"""What the kernel charges per byte on this machine for the two things the
broker cannot avoid, measured without the broker (a benchmark aid, not a
test; results in docs/benchmarks.md, "Broker cost"):

  pwrite  RATE_MIB_S  1 MiB + 61 B `pwrite`s into 64 MiB preallocated files,
                      keeping the newest 32 (2 GiB, as the messaging
                      scenario's retention), at RATE MiB/s (0 = as fast as
                      possible): CPU-s of the writer per GiB.
  send    sendfile|write  1 GiB file (in page cache) sent three times over
                      loopback TCP in 1 MiB pieces, by sendfile or by
                      send from a mapping: CPU-s of the sender per GiB.
  firsttouch [GIB]    GIB (default 2) written in 1 MiB pieces into a new
                      file, then written over, then the file removed:
                      CPU-s per GiB of page-cache pages first touched
                      against pages already cached. On a VM whose host
                      backs guest memory lazily (and takes freed pages
                      back), the first figure carries the host's work.

  bench/scripts/kernel-floor.py pwrite DIR RATE_MIB_S [GIB]
  bench/scripts/kernel-floor.py send DIR sendfile|write
  bench/scripts/kernel-floor.py firsttouch DIR [GIB]
"""
import mmap
import os
import resource
import socket
import sys
import time


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pwrite(d, rate, gib):
    buf = os.urandom((1 << 20) + 61)
    seg, files, fd, pos, n, written, spent = 64 << 20, [], None, 0, 0, 0, 0.0
    start = time.time()
    while written < gib * (1 << 30):
        if rate > 0:
            time.sleep(max(0.0, start + written / (rate * (1 << 20)) - time.time()))
        t0 = cpu()
        if fd is None or pos + len(buf) > seg:
            if fd is not None:
                os.close(fd)
            p = os.path.join(d, f"floor-{n:06d}")
            n += 1
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            os.posix_fallocate(fd, 0, seg)
            files.append(p)
            pos = 0
            while len(files) > 32:
                os.unlink(files.pop(0))
        os.pwrite(fd, buf, pos)
        pos += len(buf)
        written += len(buf)
        spent += cpu() - t0
    os.close(fd)
    for p in files:
        os.unlink(p)
    print(f"pwrite at {rate or 'max'} MiB/s: {spent / (written / (1 << 30)):.3f} CPU-s/GiB")


def send(d, mode):
    path = os.path.join(d, "floor-send")
    with open(path, "wb") as f:
        for _ in range(1024):
            f.write(os.urandom(1 << 20))
    size = os.path.getsize(path)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    pid = os.fork()
    if pid == 0:
        c = socket.create_connection(srv.getsockname())
        buf = bytearray(1 << 20)
        while c.recv_into(buf):
            pass
        os._exit(0)
    s, _ = srv.accept()
    fd = os.open(path, os.O_RDONLY)
    view = memoryview(mmap.mmap(fd, 0, prot=mmap.PROT_READ))
    t0 = cpu()
    for _ in range(3):
        for off in range(0, size, 1 << 20):
            n = min(1 << 20, size - off)
            if mode == "sendfile":
                sent = 0
                while sent < n:
                    sent += os.sendfile(s.fileno(), fd, off + sent, n - sent)
            else:
                s.sendall(view[off:off + n])
    spent = cpu() - t0
    s.close()
    os.waitpid(pid, 0)
    os.unlink(path)
    print(f"send by {mode}: {spent / (3 * size / (1 << 30)):.3f} CPU-s/GiB (sender)")


def first_touch(d, gib):
    path = os.path.join(d, "floor-first-touch")
    buf = os.urandom(1 << 20)
    pieces = max(1, int(gib * 1024))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for label in ("first write", "written over"):
            t0 = cpu()
            for i in range(pieces):
                os.pwrite(fd, buf, i << 20)
            print(f"{label}: {(cpu() - t0) / (pieces / 1024):.3f} CPU-s/GiB")
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "pwrite":
        pwrite(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 3.0)
    elif len(sys.argv) == 4 and sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3])
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "firsttouch":
        first_touch(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 2.0)
    else:
        sys.exit(__doc__)
