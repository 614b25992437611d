#!/usr/bin/env python3
"""Writes COUNT lines of VALUE_BYTES printable bytes each to stdout: the
input kcat produces from (one record per line), and the same values for
every client a script compares. Deterministic (seed 7), so runs compare.

    bench/scripts/records.py COUNT VALUE_BYTES > records.txt
"""

import random
import string
import sys

n, size = int(sys.argv[1]), int(sys.argv[2])
alphabet = (string.ascii_letters + string.digits).encode()
rnd = random.Random(7)
block = bytes(rnd.choice(alphabet) for _ in range(size * 64))
out = sys.stdout.buffer
for i in range(n):
    start = (i * 131) % (len(block) - size)
    out.write(block[start:start + size] + b"\n")
