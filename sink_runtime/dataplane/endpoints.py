"""What the forwarder needs from a source and from a sink, and nothing more.

Every source (Kafka, generator, JSON-lines file) and every sink (user-defined over gRPC,
Kafka, log, blackhole) implements one of these two protocols, so the forwarder's routing,
retry and commit logic is written once and tested once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sink_runtime.types import Datum, Response


@dataclass(slots=True)
class SourceBatch:
    """Datums read together; `token` is the source's own bookkeeping, handed back to ack()."""

    datums: list[Datum]
    token: object = None
    # Partition (or shard) of each datum by id, for per-partition ordering and metrics.
    partitions: dict[str, int] = field(default_factory=dict)


class Source(Protocol):
    async def start(self) -> None: ...

    async def read(self, max_messages: int, timeout_s: float) -> SourceBatch:
        """Up to max_messages datums, waiting at most timeout_s; may be empty."""
        ...

    async def ack(self, batch: SourceBatch) -> None:
        """Every datum of `batch` reached a terminal outcome: make that durable (commit).

        Must not raise for a partition that was revoked meanwhile: its datums will be
        redelivered to the new owner, which is at-least-once.
        """
        ...

    @property
    def exhausted(self) -> bool:
        """True when a finite source has nothing more to give (generator count reached)."""
        ...

    def is_ready(self) -> bool: ...

    async def close(self) -> None: ...


class SinkError(Exception):
    """The sink could not take the batch at all (stream broken, producer down, ...).

    The forwarder treats every datum of the batch as FAILURE with this message.
    """


class Sink(Protocol):
    name: str

    async def start(self) -> None: ...

    async def write(self, datums: Sequence[Datum]) -> Sequence[Response]:
        """One response per datum (the forwarder checks that), or SinkError."""
        ...

    def is_ready(self) -> bool: ...

    async def close(self) -> None: ...
