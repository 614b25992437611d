"""A minimal LZ4 frame writer in pure Python, for batches librdkafka will
not produce: it sends LZ4 uncompressed to a broker that does not advertise
FindCoordinator, so the broker's LZ4 path needs hand-built input.

The blocks are real LZ4 block format, holding one literal-only sequence
(legal LZ4: the last sequence of a block has no match). No compression
ratio, but every byte goes through an LZ4 decoder on the way back.

```
frame = magic 0x184D2204 (LE) | FLG | BD | HC | blocks | end mark 0x00000000
FLG   = 0x60: version 01, blocks independent, no checksums, no content size
BD    = 0x40: max block size 64 KiB
HC    = (xxh32(FLG BD, seed 0) >> 8) & 0xFF
block = size:u32 LE (high bit clear = compressed) | token | extra lengths | literals
```

Kafka uses this standard frame for magic-2 batches (KIP-57).
"""

import struct

_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M = 0xFFFFFFFF
BLOCK_MAX = 64 * 1024
# A literal-only block is its input plus a token and length bytes (one per
# 255 literals); both the block and its content must fit BLOCK_MAX.
CHUNK = BLOCK_MAX - 512


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M


def xxh32(data: bytes, seed: int = 0) -> int:
    n = len(data)
    i = 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M, (seed + _P2) & _M, seed & _M, (seed - _P1) & _M]
        while i + 16 <= n:
            for k in range(4):
                (lane,) = struct.unpack_from("<I", data, i + 4 * k)
                v[k] = (_rotl((v[k] + lane * _P2) & _M, 13) * _P1) & _M
            i += 16
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 4 <= n:
        (w,) = struct.unpack_from("<I", data, i)
        h = (_rotl((h + w * _P3) & _M, 17) * _P4) & _M
        i += 4
    while i < n:
        h = (_rotl((h + data[i] * _P5) & _M, 11) * _P1) & _M
        i += 1
    h ^= h >> 15
    h = (h * _P2) & _M
    h ^= h >> 13
    h = (h * _P3) & _M
    h ^= h >> 16
    return h


assert xxh32(b"") == 0x02CC5D05, "xxh32 check value failed"
assert xxh32(b"a") == 0x550D7456, "xxh32 check value failed"


def _literal_block(chunk: bytes) -> bytes:
    n = len(chunk)
    if n < 15:
        return bytes([n << 4]) + chunk
    rest = n - 15
    ext = b"\xff" * (rest // 255) + bytes([rest % 255])
    return bytes([0xF0]) + ext + chunk


def compress(data: bytes) -> bytes:
    flg, bd = 0x60, 0x40
    hc = (xxh32(bytes([flg, bd])) >> 8) & 0xFF
    out = [struct.pack("<I", 0x184D2204), bytes([flg, bd, hc])]
    for pos in range(0, len(data), CHUNK):
        block = _literal_block(data[pos:pos + CHUNK])
        assert len(block) <= BLOCK_MAX
        out.append(struct.pack("<I", len(block)) + block)
    out.append(struct.pack("<I", 0))
    return b"".join(out)
