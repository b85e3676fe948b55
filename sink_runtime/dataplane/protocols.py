"""What the forwarder needs from a source and from a sink, and nothing more.

Every source (Kafka, generator, JSON-lines file) and every sink (user-defined over gRPC,
Kafka, log, blackhole) implements one of these two protocols, so the forwarder's routing,
retry and commit logic is written once and tested once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, TypeAlias, overload

from sink_runtime.types import Datum, Response

# The vocabulary the forwarder, the sinks, the metrics and the CLI share.

# The role a sink plays in one data plane; also the `sink` label of per-sink metrics.
SinkRole: TypeAlias = Literal["primary", "fallback", "on_success", "serve"]
PRIMARY: Final = "primary"
FALLBACK: Final = "fallback"
ON_SUCCESS: Final = "on_success"
SERVE: Final = "serve"

# Why a message left the primary sink's path unwritten: the `reason` label of
# udsink_fallback_total and udsink_dropped_total.
RouteReason: TypeAlias = Literal["retries-exhausted", "max-deliveries", "fallback-status"]
RETRIES_EXHAUSTED: Final = "retries-exhausted"  # FAILURE past the retry budget
MAX_DELIVERIES: Final = "max-deliveries"  # NACKed up to its delivery bound
FALLBACK_STATUS: Final = "fallback-status"  # the primary answered FALLBACK
# The reasons onFailure applies to (fallback-status always goes to the fallback sink).
FAILURE_REASONS: Final[tuple[RouteReason, ...]] = (RETRIES_EXHAUSTED, MAX_DELIVERIES)


def exhausted(role: SinkRole) -> str:
    """The `reason` a secondary sink's messages are dropped for when its retries ran out
    with onExhausted=log (`fallback-exhausted`, ...)."""
    return f"{role}-exhausted"


@dataclass(slots=True)
class SourceBatch:
    """Datums read together; `token` is the source's own bookkeeping, handed back to ack()."""

    datums: list[Datum]
    token: object = None


class Source(Protocol):
    async def start(self) -> None: ...

    async def read(self, max_messages: int, timeout_s: float) -> SourceBatch:
        """Up to max_messages datums, waiting at most timeout_s; may be empty."""
        ...

    async def ack(self, batch: SourceBatch) -> int:
        """Every datum of `batch` reached a terminal outcome: make that durable (commit).

        Returns how many handled messages this made durable, for `udsink_acked_total` (0 when
        the commit failed: they are redelivered, or a later commit covers them). Must not raise
        for a partition that was revoked meanwhile: its datums will be redelivered to the new
        owner, which is at-least-once.
        """
        ...

    async def still_owned(self, datums: list[Datum], batch: SourceBatch) -> list[Datum]:
        """Those of `datums` (read in `batch`) this reader may still deliver.

        A consumer-group member drops the datums of partitions it lost since the read: the
        new owner delivers them, and a late delivery from here would overtake its writes.
        """
        ...

    @property
    def exhausted(self) -> bool:
        """True when a finite source has nothing more to give (generator count reached)."""
        ...

    def is_ready(self) -> bool: ...

    async def close(self) -> None: ...


class AllSucceeded(Sequence[Response]):
    """A sink's answer when every result is SUCCESS, in compact form: the result ids.

    Equivalent to `[Response.ok(i) for i in ids]` (and reads as that sequence), but lets the
    forwarder check the usual answer with one list comparison instead of per-datum objects:
    when `ids` equals the batch's ids, in order, each datum has exactly one SUCCESS. Any other
    `ids` goes through the full contract check like every other answer.
    """

    __slots__ = ("ids",)

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> Response: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Response]: ...

    def __getitem__(self, index: int | slice) -> Response | Sequence[Response]:
        if isinstance(index, slice):
            return AllSucceeded(self.ids[index])
        return Response.ok(self.ids[index])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AllSucceeded):
            return self.ids == other.ids
        if isinstance(other, list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which are unhashable

    def __repr__(self) -> str:
        return f"AllSucceeded({self.ids!r})"


class SinkError(Exception):
    """The sink could not take the batch at all (stream broken, producer down, ...).

    The forwarder treats every datum of the batch as FAILURE with this message.
    """


class BatchMustRestart(Exception):
    """Everything written for the batch so far is void (its transaction was aborted): the
    forwarder starts the batch again from its first write. Only the exactly-once path raises
    it; the message says why."""


# Commits a transaction with the source offsets it consumed: (offsets by (topic, partition),
# the consumer's group metadata) -> None, or BatchMustRestart.
CommitWith: TypeAlias = Callable[[Mapping[tuple[str, int], int], object], Awaitable[None]]


class TransactionalSource(Protocol):
    """A source whose offsets can be committed inside a sink's transaction (Kafka)."""

    async def commit_with(
        self, batch: SourceBatch, delivered: Sequence[Datum], commit: CommitWith
    ) -> int:
        """Commit the offsets of `batch` through `commit` (with the records written for the
        `delivered` datums), then count the batch handled; how many records that made
        durable. Raises BatchMustRestart when `commit` did, or when a delivered datum's
        partition changed owner meanwhile. Never commits on its own."""
        ...


class Transaction(Protocol):
    """The exactly-once sink's transaction, as the forwarder drives it."""

    async def begin(self) -> None: ...

    async def commit(
        self, offsets: Mapping[tuple[str, int], int], group_metadata: object
    ) -> None: ...

    async def abort(self) -> None: ...


class Sink(Protocol):
    name: str

    async def start(self) -> None: ...

    async def write(self, datums: Sequence[Datum]) -> Sequence[Response]:
        """One response per datum (the forwarder checks that), or SinkError.

        A sink whose every result is SUCCESS may answer `AllSucceeded(ids)` instead.
        """
        ...

    def is_ready(self) -> bool: ...

    async def reset(self) -> None:
        """Forget per-connection state after a contract violation: the next write starts on a
        fresh stream, so answers out of step with batches are never read as later answers."""
        ...

    async def close(self) -> None: ...
