"""One Kafka transaction per batch: the exactly-once path of a Kafka-to-Kafka data plane.

With `sink.exactlyOnce`, the data plane's Kafka sinks (the primary and any Kafka fallback,
onSuccess or serve sink, which validation requires to share the primary's connection) produce
through one transactional producer, owned here. The forwarder opens a transaction before a
batch's first write, and once every datum reached its outcome it commits the source offsets the
batch consumed inside that transaction (`send_offsets_to_transaction` with the consumer's group
metadata), then commits it: the batch's records in every output topic and the source offsets
become visible together, or not at all.

Failure rules (librdkafka's error classes):
- retriable (a coordinator moving, a timeout): the same call is repeated until the deadline;
- abortable (a record the broker refused, a group generation that moved on because this member
  was evicted or the partitions rebalanced): the transaction is aborted and the batch starts
  again from its first write (`BatchMustRestart`); the forwarder drops the datums of partitions
  this member no longer owns, so the new owner writes them;
- fatal (this producer was fenced by a newer one with the same transactional id): the producer
  is recreated (`init_transactions` fences whatever used the id before) and the batch starts
  again.

The transactional id is stable for one data-plane instance (`transactional_id`): a restarted
instance fences its predecessor at once and aborts the transaction it left open, instead of
readers waiting `transaction.timeout.ms` for the coordinator to abort it. A zombie with a
different id (a replaced pod) is fenced by the group generation its offsets carry.

All producer calls run on the one thread here; the Kafka sinks run their produce calls on it
too, so nothing touches the producer concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from sink_runtime.dataplane.protocols import BatchMustRestart

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
# librdkafka's own default; a transaction left open by a crashed instance with another id
# blocks read_committed readers of its partitions for this long at most.
TRANSACTION_TIMEOUT_MS: Final = 60_000
# How long one transactional call (init, offsets, commit) may keep being retried.
CALL_DEADLINE_S: Final = 30.0
# An abort waits for the records still in flight, which librdkafka may hold until their
# message timeout (seen after a record the broker refused): this much longer than that.
ABORT_GRACE_S: Final = 10.0
# The environment variable naming this instance in its transactional id (default: the host
# name, which is the pod name in Kubernetes and survives container restarts).
INSTANCE_ENV: Final = "UDSINK_INSTANCE_ID"


def transactional_id(namespace: str, name: str) -> str:
    """The id of this data plane's transactional producer (module doc)."""
    instance = os.environ.get(INSTANCE_ENV) or socket.gethostname()
    return f"udsink.{namespace}.{name}.{instance}"


def needs_abort(err: object) -> bool:
    """Whether a produce-time error means the open transaction cannot commit."""
    if not isinstance(err, KafkaError):
        return False
    return bool(err.txn_requires_abort() or err.fatal() or err.code() == KafkaError._STATE)


class KafkaTransaction:
    """The transactional producer of one data plane, and its transaction (module doc)."""

    def __init__(self, transactional_id: str) -> None:
        self.transactional_id = transactional_id
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-transaction")
        self.producer: Any = None
        self._settings: dict[str, Any] = {}
        self._open = False
        self._starting = asyncio.Lock()

    async def start(self, settings: Mapping[str, Any]) -> None:
        """Create the producer from the first sink's settings (the others share them)."""
        async with self._starting:
            if self.producer is not None:
                return
            timeout = str(TRANSACTION_TIMEOUT_MS)
            self._settings = {"transaction.timeout.ms": timeout, **settings}
            self._settings["transactional.id"] = self.transactional_id
            await self.run(self._create)

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.thread, fn, *args)

    def _create(self) -> None:
        """A producer with this id; `init_transactions` fences any older one and aborts the
        transaction it left open."""
        producer = Producer(self._settings)
        self._retrying(lambda timeout: producer.init_transactions(timeout), "initialising")
        self.producer = producer
        self._open = False
        logger.info("kafka transaction: producer %s ready", self.transactional_id)

    def recreate(self) -> None:
        """A new producer after a fatal error (on the producer thread)."""
        self._open = False
        self._create()

    # --- one batch ---

    async def begin(self) -> None:
        await self.run(self._begin)

    def _begin(self) -> None:
        if self._open:
            # The last transaction's abort did not finish (the brokers were away): it must,
            # before another transaction can begin.
            self._abort()
            if self._open:
                raise BatchMustRestart("the previous transaction is not aborted yet")
        try:
            self.producer.begin_transaction()
        except KafkaException as exc:
            self._failed(exc.args[0] if exc.args else exc, "beginning")
        self._open = True

    async def commit(self, offsets: Mapping[tuple[str, int], int], group_metadata: object) -> None:
        """Commit the open transaction with `offsets` of the source's group; raises
        BatchMustRestart when it was aborted instead."""
        await self.run(self._commit, dict(offsets), group_metadata)

    def _commit(self, offsets: dict[tuple[str, int], int], group_metadata: object) -> None:
        producer = self.producer
        if offsets:
            positions = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
            self._retrying(
                lambda timeout: producer.send_offsets_to_transaction(
                    positions, group_metadata, timeout
                ),
                "sending the source offsets of",
            )
        self._retrying(lambda timeout: producer.commit_transaction(timeout), "committing")
        self._open = False

    async def abort(self) -> None:
        """Abort the open transaction, if any: nothing it wrote becomes visible."""
        await self.run(self._abort)

    def _abort(self) -> None:
        """Abort the open transaction; when the abort cannot finish yet, it stays open and
        the next abort (or begin) finishes it."""
        if not self._open or self.producer is None:
            return
        message_timeout_s = int(self._settings.get("message.timeout.ms", 30_000)) / 1000
        try:
            self._retrying(
                lambda timeout: self.producer.abort_transaction(timeout),
                "aborting",
                deadline_s=message_timeout_s + ABORT_GRACE_S,
            )
        except BatchMustRestart as exc:
            logger.warning("kafka transaction: %s; trying again before the next batch", exc)
            return
        self._open = False

    async def close(self) -> None:
        if self.producer is not None:
            await self.abort()
        self.thread.shutdown(wait=False)
        self.producer = None

    # --- errors ---

    def _retrying(
        self, call: Callable[[float], object], what: str, *, deadline_s: float = CALL_DEADLINE_S
    ) -> None:
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                call(max(1.0, deadline - time.monotonic()))
                return
            except KafkaException as exc:
                err = exc.args[0] if exc.args else exc
                if isinstance(err, KafkaError) and err.retriable() and time.monotonic() < deadline:
                    continue
                self._failed(err, what)

    def _failed(self, err: object, what: str) -> None:
        """Settle a failed transactional call (module doc): always raises BatchMustRestart."""
        text = f"{err.name()}: {err.str()}" if isinstance(err, KafkaError) else str(err)
        failed = f"{what} the transaction failed: {text}"
        if what == "initialising":
            raise BatchMustRestart(f"producer {self.transactional_id}: {failed}")
        if isinstance(err, KafkaError) and err.fatal():
            logger.error(
                "kafka transaction: %s; recreating the producer %s", failed, self.transactional_id
            )
            self.recreate()
            raise BatchMustRestart(f"{failed} (fatal: the producer was recreated)")
        if what != "aborting":
            self._abort()
        raise BatchMustRestart(f"{failed} (aborted)")


__all__ = ["INSTANCE_ENV", "KafkaTransaction", "needs_abort", "transactional_id"]
