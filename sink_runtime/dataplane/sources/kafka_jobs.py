"""What crosses between the Kafka source's event loop and its consumer's owner thread.

The loop hands the owner thread one of the jobs below (each with its one-shot reply,
owner_thread.Reply) and reads a `ConsumerView`, the snapshot the owner thread publishes
whole (owner_thread.Shared). Nothing else is shared: the consumer handle, the offset ledger,
the stash and the waiting acks belong to the worker only the owner thread holds
(sources/kafka_worker.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sink_runtime.dataplane.protocols import SourceBatch
from sink_runtime.dataplane.sources.offset_ledger import Partition, ReadToken
from sink_runtime.dataplane.sources.owner_thread import Job

# The Kafka source logs under one name, whichever of its modules writes the line.
SOURCE_LOGGER = "sink_runtime.dataplane.sources.kafka"


class KafkaSourceError(RuntimeError):
    """The consumer hit an error it cannot recover from (librdkafka says fatal)."""


@dataclass(eq=False)
class Start(Job[None]):
    """Create the consumer with `settings` (librdkafka's, without callbacks) and subscribe."""

    settings: dict[str, Any]


@dataclass(eq=False)
class Read(Job[SourceBatch]):
    """A batch of up to `max_messages` records, gathering for at most `timeout_s`."""

    max_messages: int
    timeout_s: float


@dataclass(eq=False)
class Handled(Job[int]):
    """The batch `token` names was handled: commit it; the reply is the number of handled
    records the commit it joined confirmed, given once that commit is answered."""

    token: ReadToken


@dataclass(eq=False)
class ServeEvents(Job[None]):
    """Serve the rebalance and commit callbacks queued in the consumer, keeping up to `limit`
    records that arrive for the next read."""

    limit: int


@dataclass(eq=False)
class Close(Job[None]):
    """Commit what is handled, wait a little for the answer, and close the consumer."""


@dataclass(eq=False)
class TransactionOffsets(Job[tuple[dict[Partition, int], object]]):
    """For a transaction about to commit the batch `token` names: the offsets it may carry
    (OffsetLedger.next_ends) and the consumer's group metadata, which fences a member that
    lost its partitions."""

    token: ReadToken


@dataclass(eq=False)
class CommittedInTransaction(Job[int]):
    """The transaction carrying `offsets` for the batch `token` names committed: count the
    batch handled and committed; the reply is how many handled records that confirmed."""

    token: ReadToken
    offsets: dict[Partition, int]


ConsumerJob = (
    Start | Read | Handled | ServeEvents | Close | TransactionOffsets | CommittedInTransaction
)


@dataclass(frozen=True, slots=True)
class ConsumerView:
    """What the event loop may know of the owner thread's state (published whole)."""

    open: bool = False  # a consumer handle exists
    connected: bool = False  # a broker answered last time one was asked
    refused: str | None = None  # why the brokers refuse this consumer, until it connects
    commit_sent: float | None = None  # when the oldest commit awaiting its answer was sent
    # Tenures by partition: a fresh mapping in each snapshot, never changed once published.
    owned: Mapping[Partition, int] = field(default_factory=dict)
    last_consume: float = 0.0  # monotonic time of the last consume() return
    recheck: bool = False  # a commit was refused as from an evicted member


__all__ = [
    "SOURCE_LOGGER",
    "Close",
    "ConsumerJob",
    "ConsumerView",
    "Handled",
    "KafkaSourceError",
    "Read",
    "ServeEvents",
    "Start",
]
