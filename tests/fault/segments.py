"""Reads a partition's records straight from a replica's segment files
(``<data>/<topic>-<partition>/<20-digit base offset>.log``), without the
broker: the fault checker compares what every replica holds on disk.

Only uncompressed RecordBatch v2 is decoded (the checker's producer sends
``compression.type=none``). A batch whose CRC-32C does not match, or a
zero/short header (the preallocated tail of the active segment), ends the
segment: that is where the broker's own recovery would cut it.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

# One CRC-32C for the Python tests: the interop suite's wire helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))
from kafka_wire import crc32c  # noqa: E402

# baseOffset(8) batchLength(4): what precedes the length-counted part.
LOG_OVERHEAD = 12
# Up to and including recordsCount.
BATCH_HEADER = 61


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    shift = 0
    value = 0
    while True:
        b = buf[at]
        at += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return (value >> 1) ^ -(value & 1), at


def batches(data: bytes, check_crc: bool = True):
    """Yields (base_offset, leader_epoch, producer_id, base_sequence,
    [(offset, key, value)]) for each whole, valid batch of a segment."""
    at = 0
    while at + BATCH_HEADER <= len(data):
        base, length, epoch, magic, crc = struct.unpack_from(">qiibI", data, at)
        end = at + LOG_OVERHEAD + length
        if length <= 0 or magic != 2 or end > len(data):
            return
        if check_crc and crc32c(data[at + 21:end]) != crc:
            return
        attributes, last_delta = struct.unpack_from(">hi", data, at + 21)
        producer_id, producer_epoch, base_sequence, count = struct.unpack_from(">qhii", data, at + 43)
        records = []
        if attributes & 0x20:  # control batch (transactions): no user records
            yield base, epoch, producer_id, base_sequence, records
            at = end
            continue
        if attributes & 0x07:
            raise ValueError(f"compressed batch at offset {base}: the checker produces uncompressed")
        r = at + BATCH_HEADER
        for _ in range(count):
            length_r, r = _varint(data, r)
            body_end = r + length_r
            r += 1  # attributes
            _, r = _varint(data, r)  # timestamp delta
            offset_delta, r = _varint(data, r)
            key_len, r = _varint(data, r)
            key = None if key_len < 0 else data[r:r + key_len]
            r += max(key_len, 0)
            value_len, r = _varint(data, r)
            value = None if value_len < 0 else data[r:r + value_len]
            records.append((base + offset_delta, key, value))
            r = body_end
        yield base, epoch, producer_id, base_sequence, records
        at = end


def read_partition(partition_dir: Path) -> dict[int, bytes | None]:
    """offset → value for every record in the partition's segments."""
    out: dict[int, bytes | None] = {}
    if not partition_dir.is_dir():
        return out
    for seg in sorted(partition_dir.glob("*.log")):
        data = seg.read_bytes()
        for _, _, _, _, records in batches(data):
            for offset, _, value in records:
                out[offset] = value
    return out
