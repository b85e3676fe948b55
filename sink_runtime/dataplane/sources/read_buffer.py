"""How the Kafka source gathers a batch: the byte budget, and the stash of records consumed
beyond a batch (read first next time).

Pure, no Kafka client: records are anything with a length (its value's bytes, as a
confluent-kafka Message has) and `topic()` / `partition()`. The source's owner thread is the
only user.
- A batch closes at `max_messages` records or once its values reach `max_bytes`; a larger
  record makes a batch of one, and what was consumed beyond the budget goes to the stash.
- Large values are consumed a few at a time: as many as the budget takes at the value size
  seen last (`ByteBudget`), so what the process holds stays near two batches plus
  librdkafka's prefetch.
- Records keep the chunk they were consumed in (`Chunk`: with the ledger generation at that
  consume's return), in the stash too.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sink_runtime.dataplane.sources.offset_ledger import Partition

# Records consumed while serving rebalance events are kept for the next read, up to this many.
STASH_LIMIT = 10_000


@dataclass(slots=True)
class Chunk:
    """The records one consume() call returned, with the ledger generation at its return."""

    generation: int
    messages: list[Any]


def count_of(chunks: Sequence[Chunk]) -> int:
    return sum(len(c.messages) for c in chunks)


def bytes_of(chunks: Sequence[Chunk]) -> int:
    return sum(sum(map(len, c.messages)) for c in chunks)


class Stash:
    """Records consumed and not yet in a batch, oldest first."""

    __slots__ = ("_chunks",)

    def __init__(self) -> None:
        self._chunks: list[Chunk] = []

    def __bool__(self) -> bool:
        return bool(self._chunks)

    @property
    def chunks(self) -> list[Chunk]:
        """The chunks held (a copy)."""
        return list(self._chunks)

    def take(self, max_messages: int) -> list[Chunk]:
        """Up to `max_messages` records, oldest first."""
        taken: list[Chunk] = []
        while self._chunks and max_messages > 0:
            chunk = self._chunks[0]
            if len(chunk.messages) <= max_messages:
                taken.append(self._chunks.pop(0))
                max_messages -= len(chunk.messages)
            else:
                taken.append(Chunk(chunk.generation, chunk.messages[:max_messages]))
                del chunk.messages[:max_messages]
                max_messages = 0
        return taken

    def put_back(self, chunks: Sequence[Chunk]) -> None:
        """Records to be read before those held (consumed before them)."""
        self._chunks[:0] = [c for c in chunks if c.messages]

    def add(self, chunk: Chunk) -> None:
        if chunk.messages:
            self._chunks.append(chunk)

    def room(self, limit: int, max_bytes: int) -> int:
        """How many more records to take in while serving events: up to `limit` and
        `STASH_LIMIT` in all, and at most one once the stash holds a batch's worth of bytes."""
        room = min(limit, STASH_LIMIT - count_of(self._chunks))
        if bytes_of(self._chunks) >= max_bytes:
            room = min(room, 1)
        return room

    def forget(self, partitions: Collection[Partition]) -> None:
        """Drop the records of `partitions` (their ownership ended)."""
        if not self._chunks:
            return
        out = set(partitions)
        for chunk in self._chunks:
            chunk.messages[:] = [m for m in chunk.messages if (m.topic(), m.partition()) not in out]
        self._chunks[:] = [c for c in self._chunks if c.messages]

    def clear(self) -> None:
        self._chunks.clear()


class ByteBudget:
    """The byte bound of a batch, and the value size seen last (to consume a few at a time)."""

    __slots__ = ("_record_bytes", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._record_bytes = 0  # value bytes per record in the last consume (0: not known)

    def want(self, left: int, size: int) -> int:
        """How many records to ask for: `left` fit the batch's count, `size` bytes are in it."""
        if self._record_bytes:
            return max(1, min(left, (self.max_bytes - size) // self._record_bytes))
        return left

    def seen(self, messages: Sequence[Any]) -> int:
        """A consume returned `messages` (not empty): their bytes."""
        grown = sum(map(len, messages))
        self._record_bytes = max(1, grown // len(messages))
        return grown


class Gathering:
    """One batch being gathered: the chunks so far (the stash's first), its count and bytes."""

    __slots__ = ("_budget", "_max_messages", "chunks", "count", "size")

    def __init__(self, max_messages: int, budget: ByteBudget, chunks: list[Chunk]) -> None:
        self._budget = budget
        self._max_messages = max_messages
        self.chunks = chunks
        self.count = count_of(chunks)
        self.size = bytes_of(chunks)

    @property
    def full(self) -> bool:
        return self.count >= self._max_messages or self.size >= self._budget.max_bytes

    def want(self) -> int:
        """How many records the next consume asks for."""
        return self._budget.want(self._max_messages - self.count, self.size)

    def add(self, chunk: Chunk) -> None:
        if chunk.messages:
            self.size += self._budget.seen(chunk.messages)
            self.count += len(chunk.messages)
            self.chunks.append(chunk)

    def close(self, stash: Stash) -> list[Chunk]:
        """The batch's chunks: the longest prefix within the byte budget (at least one record);
        the rest goes back to `stash`."""
        max_bytes = self._budget.max_bytes
        if self.size <= max_bytes or self.count <= 1:
            return self.chunks
        head, rest = within_bytes(self.chunks, max_bytes)
        stash.put_back(rest)
        return head


def within_bytes(chunks: list[Chunk], max_bytes: int) -> tuple[list[Chunk], list[Chunk]]:
    """The longest prefix of `chunks` whose values fit `max_bytes` (at least one record), and
    the rest."""
    size = 0
    for i, chunk in enumerate(chunks):
        for n, msg in enumerate(chunk.messages):
            size += len(msg)
            if size > max_bytes:
                cut = 1 if i == 0 and n == 0 else n
                rest = [Chunk(chunk.generation, chunk.messages[cut:]), *chunks[i + 1 :]]
                head = Chunk(chunk.generation, chunk.messages[:cut])
                return [*chunks[:i], *([head] if head.messages else [])], [
                    c for c in rest if c.messages
                ]
    return chunks, []


__all__ = [
    "STASH_LIMIT",
    "ByteBudget",
    "Chunk",
    "Gathering",
    "Stash",
    "bytes_of",
    "count_of",
    "within_bytes",
]
