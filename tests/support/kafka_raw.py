"""Records written to a Kafka broker byte for byte: a minimal Produce (v3) client.

For the records a normal client refuses to write but a broker stores and delivers: header
names that are not valid UTF-8 (librdkafka and the Java client only take text names) and
timestamps anywhere in the int64 range. One record per request (a v3 Produce carries exactly
one record batch, and one record per batch keeps every timestamp delta 0), uncompressed,
acks=all, to a broker that leads the partition (the test tier's single broker).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

_PRODUCE = 0
_PRODUCE_VERSION = 3
_ACKS_ALL = -1
_MAGIC = 2
_NO_PRODUCER = (-1, -1, -1)  # producer id, epoch, base sequence: not idempotent
_CASTAGNOLI = 0x82F63B78


class RawProduceError(RuntimeError):
    """The broker refused the record (its error code) or the answer was not understood."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as it goes on the wire: every field raw bytes, headers in order."""

    value: bytes | None = b""
    key: bytes | None = None
    headers: Sequence[tuple[bytes, bytes | None]] = field(default_factory=tuple)
    timestamp_ms: int = 0


@lru_cache(maxsize=1)
def _crc_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _CASTAGNOLI if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


def crc32c(data: bytes) -> int:
    table = _crc_table()
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _varint(n: int) -> bytes:
    """Zig-zag base-128 varint (Kafka's record fields)."""
    z = (n << 1) ^ (n >> 63)
    z &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _bytes_field(data: bytes | None) -> bytes:
    return _varint(-1) if data is None else _varint(len(data)) + data


def _record(rec: RawRecord) -> bytes:
    body = b"".join(
        [
            b"\x00",  # attributes
            _varint(0),  # timestamp delta: the batch carries the timestamp
            _varint(0),  # offset delta
            _bytes_field(rec.key),
            _bytes_field(rec.value),
            _varint(len(rec.headers)),
            *(_bytes_field(name) + _bytes_field(value) for name, value in rec.headers),
        ]
    )
    return _varint(len(body)) + body


def record_batch(rec: RawRecord) -> bytes:
    """One uncompressed v2 record batch holding `rec` (CreateTime = its timestamp)."""
    after_crc = (
        struct.pack(">hiqq", 0, 0, rec.timestamp_ms, rec.timestamp_ms)
        + struct.pack(">qhi", *_NO_PRODUCER)
        + struct.pack(">i", 1)
        + _record(rec)
    )
    after_length = struct.pack(">ibI", -1, _MAGIC, crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _produce_request(correlation: int, topic: str, partition: int, batch: bytes) -> bytes:
    header = struct.pack(">hhi", _PRODUCE, _PRODUCE_VERSION, correlation) + _string("raw-test")
    body = (
        struct.pack(">h", -1)  # no transactional id
        + struct.pack(">hi", _ACKS_ALL, 30_000)
        + struct.pack(">i", 1)
        + _string(topic)
        + struct.pack(">i", 1)
        + struct.pack(">i", partition)
        + struct.pack(">i", len(batch))
        + batch
    )
    message = header + body
    return struct.pack(">i", len(message)) + message


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RawProduceError("the broker closed the connection")
        data += chunk
    return bytes(data)


def _base_offset(answer: bytes, correlation: int) -> int:
    """The offset the broker gave the record, from a v3 Produce response."""
    got, topics = struct.unpack_from(">ii", answer, 0)
    if got != correlation or topics != 1:
        raise RawProduceError(f"unexpected Produce response {answer[:64]!r}")
    (name_len,) = struct.unpack_from(">h", answer, 8)
    pos = 10 + name_len
    (parts,) = struct.unpack_from(">i", answer, pos)
    if parts != 1:
        raise RawProduceError(f"unexpected Produce response {answer[:64]!r}")
    _, error, offset = struct.unpack_from(">ihq", answer, pos + 4)
    if error:
        raise RawProduceError(f"the broker refused the record: Kafka error code {error}")
    return int(offset)


def produce_raw(
    bootstrap: str, topic: str, records: Sequence[RawRecord], partition: int = 0
) -> list[int]:
    """Write `records` in order to `topic`[`partition`]; the offset of each."""
    host, _, port = bootstrap.rpartition(":")
    offsets = []
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        for correlation, rec in enumerate(records, start=1):
            sock.sendall(_produce_request(correlation, topic, partition, record_batch(rec)))
            (size,) = struct.unpack(">i", _read_exactly(sock, 4))
            offsets.append(_base_offset(_read_exactly(sock, size), correlation))
    return offsets


__all__ = ["RawProduceError", "RawRecord", "crc32c", "produce_raw", "record_batch"]
