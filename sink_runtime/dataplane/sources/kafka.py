"""KafkaSource: a consumer-group member that turns records into Datums and commits only acks.

Separate from the forwarder because everything librdkafka-specific lives here.

Threading: one thread owns the consumer handle (`owner_thread.OwnerThread`). Every call into
it (reads, commits, the rebalance and commit callbacks those calls trigger, close) runs
there, one at a time, and no lock is ever held across a call into the handle. confluent-kafka
serialises calls on one handle behind a running callback, so a second thread calling in (a
commit thread) can deadlock against a rebalance callback that waits for it; with one owner it
cannot. What lives where:
- `kafka_worker.ConsumerWorker` holds the handle and everything only the owner thread touches
  (the offset ledger, the stash, the waiting acks); only the owner thread holds it.
- The event loop hands that thread typed jobs with one-shot replies (`kafka_jobs`: Start,
  Read, Handled, ServeEvents, Close) and reads a `ConsumerView`, the snapshot the thread
  publishes whole (readiness facts, tenures, the oldest commit's age), plus `stalled_for()`.
- The decisions are pure modules, tested broker-free: `offset_ledger` (what may be committed
  or delivered), `read_buffer` (batching, the byte budget, the stash), `commit_coalescer`
  (when a commit is due, which ack waits for which answer), `lag` (when lag is refreshed),
  `ownership` (which datums may still be delivered). Records become Datums in
  `kafka_convert` (with `kafka_record` and its C twin).
The design leaves room to move the owner into a process of its own: its jobs are plain data.

Guarantees and choices:
- What was read, handled and committed is kept by the offset ledger (`offset_ledger.py`, its
  module doc has the rules): records are counted per tenure (one uninterrupted ownership of a
  partition), a commit never passes the first record read in the tenure and not handled, and
  records returned before their partition's current tenure began are not delivered (each
  consume() call's records carry the ledger generation at its return).
- Rebalance (eager or cooperative): a revocation first commits what is handled, then the
  partition's tenure ends; its records in flight are not delivered after it (`still_owned()`:
  a last-write-wins sink would otherwise go backwards) and never committed by this member. A
  partition that comes back, to this member or another, is read again from the group's
  committed offset, so what was read and dropped is delivered then. A lost partition (the
  session expired, the member was evicted) ends the same way, without the commit.
- `ack(batch)` marks the batch handled and returns once the commit it joined was answered by
  the broker (at most `COMMIT_WAIT_S` later, or at once when no commit can be made), with the
  number of handled records that commit confirmed; records a commit confirms after their
  acks were answered (a retry, a commit made at a revocation) are counted in `acked` by the
  source itself, so each handled record committed is counted once. Commits are
  asynchronous: the owner thread never waits on the broker, and the answer is served by its
  next consume() (commit answers are queued ahead of fetched records; measured). Acked
  batches are committed together at most every `COMMIT_INTERVAL_S`, one commit at a time: a
  commit per batch would cost a broker round trip per batch. A refused or failed commit is
  logged (partitions and offsets) and counted in `commit_failures`, and offered again after
  `COMMIT_RETRY_S`; while the brokers are unreachable no commit is attempted, and the first
  one after they answer again covers everything handled meanwhile.
- Readiness is the consumer's real state: not ready while brokers are unreachable, while a
  commit has waited for its answer longer than `SLOW_COMMIT_S`, or before the first answer.
  Liveness: `stalled_for()` is how long the owner thread has been inside one job without a
  sign of life (the data plane's /livez watchdog reads it); every call it makes into the
  consumer is bounded (consume slices, look-ups with timeouts, asynchronous commits).
- Lag is reported for every assigned partition from the broker's offsets (high watermark minus
  the group's committed offset), refreshed every `LAG_REFRESH_S`, also while no batch flows.
- A batch closes at `max_messages` records or once its values reach `batch_max_bytes` (a
  larger record makes a batch of one); records consumed beyond it are read first next time.
  Large values are consumed a few at a time (as many as the budget takes at the size seen
  last), so what the process holds stays near two batches plus librdkafka's prefetch
  (docs/operations.md, "Memory").
- Datum: id `<topic>:<partition>:<offset>`; keys from the key headers when `keysFromHeaders`
  and well formed, else the record key as the single key, else no keys (malformed key
  headers are counted in `malformed_key_headers`); event time from the record timestamp
  (the read time when the record has none or a negative one; a timestamp after
  9999-12-31T23:59:59.999Z is clamped to it, counted in `records_altered`); value `b""` for a
  null value.
- Every record a broker delivers ends in the batch: one that cannot be converted (its
  headers unreadable: confluent-kafka raises for a header name that is not valid UTF-8) is
  delivered with its value, record key and event time, and instead of its headers the reason
  in header `x-udsink-source-error` (counted in `records_altered`), so the sink and the
  failure policy decide and the partition keeps moving. A failure of the batch itself (a fatal
  consumer error) puts every record consumed for it back to be read first next time.
- Headers are text: values are decoded as UTF-8, with invalid bytes replaced by U+FFFD (the
  gRPC contract carries strings); a key header that is not valid UTF-8 makes the key headers
  malformed. A null header value becomes "". Kafka allows repeated header names; the Datum
  keeps the last value of each name (like the Java client's `lastHeader`). The record key is
  decoded the same way, so binary keys are not preserved byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from sink_runtime.config import DEFAULT_BATCH_MAX_BYTES, KafkaSourceConfig
from sink_runtime.dataplane.kafka_settings import consumer_settings
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import BatchMustRestart, CommitWith, SourceBatch
from sink_runtime.dataplane.sources.kafka_jobs import (
    SOURCE_LOGGER,
    Close,
    CommittedInTransaction,
    ConsumerJob,
    ConsumerView,
    Handled,
    KafkaSourceError,
    Read,
    ServeEvents,
    Start,
    TransactionOffsets,
)
from sink_runtime.dataplane.sources.kafka_worker import ConsumerWorker
from sink_runtime.dataplane.sources.lag import LAG_REFRESH_S
from sink_runtime.dataplane.sources.offset_ledger import Partition, ReadToken
from sink_runtime.dataplane.sources.owner_thread import OwnerThread, Shared
from sink_runtime.dataplane.sources.ownership import kept_owned, partition_of, ranges
from sink_runtime.dataplane.sources.read_buffer import STASH_LIMIT
from sink_runtime.logs import batch_fields
from sink_runtime.types import Datum

logger = logging.getLogger(SOURCE_LOGGER)

# A batch is checked against rebalance events still queued in the consumer when the consumer
# was last polled longer ago than this (a long delivery).
FRESH_S = 1.0
# A commit waiting for its answer longer than this makes the source not ready.
SLOW_COMMIT_S = 2.0
# How long close() waits for the consumer thread to finish what it is doing (consumer.close()
# leaves the group, which waits on a coordinator) before leaving without it, and then for the
# thread to end.
CLOSE_WAIT_S = 5.0
CLOSE_JOIN_S = 1.0


def _stopped() -> KafkaSourceError:
    return KafkaSourceError("kafka source: the consumer thread has stopped")


class KafkaSource:
    """Reads `config.topics` as member of `config.consumer_group` (see the module doc).

    Runs on the event loop; all it keeps is the owner thread (to hand it jobs), the view that
    thread publishes, and whether close() was called.
    """

    def __init__(
        self,
        config: KafkaSourceConfig,
        *,
        metrics: Metrics,
        where: str = "source",
        batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._where = where
        self._view: Shared[ConsumerView] = Shared(ConsumerView())
        self._owner: OwnerThread[ConsumerJob] = OwnerThread(
            "kafka-source", _stopped, log=logger, label="kafka source"
        )
        # Handed to the owner thread at start(); nothing here keeps it.
        self._worker: ConsumerWorker | None = ConsumerWorker(
            config,
            metrics=metrics,
            where=where,
            batch_max_bytes=batch_max_bytes,
            inside=self._owner.inside,
            view=self._view,
        )
        self._closed = False

    # --- lifecycle ---

    async def start(self) -> None:
        """Create the consumer and join the group; returns without waiting for brokers."""
        worker, self._worker = self._worker, None
        if worker is None:
            raise KafkaSourceError("kafka source: start() called twice")
        settings: dict[str, Any] = consumer_settings(self.config, self._where)
        self._owner.start(worker)
        started = Start(settings)
        self._owner.submit(started)
        await started.reply.future

    async def close(self) -> None:
        """Leave the group, committing what is handled first.

        Acks still waiting are answered by the owner thread as its last act, never from here:
        a commit it may still be making answers them with what it confirmed.
        """
        if self._closed:
            return
        self._closed = True
        if self._view.get().open:
            # Queued after any read or commit still running: they end before the consumer.
            with contextlib.suppress(KafkaSourceError):
                closing = Close()
                self._owner.submit(closing)
                try:
                    await asyncio.wait_for(asyncio.shield(closing.reply.future), CLOSE_WAIT_S)
                except TimeoutError:
                    logger.warning(
                        "kafka source: the consumer is still busy after %.0fs (%s); leaving "
                        "without closing it: the group reassigns its partitions after the "
                        "session timeout, and nothing unhandled was committed",
                        CLOSE_WAIT_S,
                        self.not_ready_reason() or "a call into librdkafka",
                    )
        self._owner.stop()
        await self._owner.join(CLOSE_JOIN_S)

    def is_ready(self) -> bool:
        view = self._view.get()
        if not view.open or self._closed or not view.connected:
            return False
        return _commit_wait(view) < SLOW_COMMIT_S

    def not_ready_reason(self) -> str:
        """Why `is_ready()` is False, in words for /readyz ("" when ready)."""
        view = self._view.get()
        if not view.open or self._closed:
            return "kafka source not started"
        if not view.connected:
            refused = f": {view.refused}" if view.refused else ""
            return f"kafka brokers {','.join(self.config.brokers)} unreachable{refused}"
        waited = _commit_wait(view)
        if waited >= SLOW_COMMIT_S:
            return f"kafka commit waiting on the broker for {waited:.0f}s"
        return ""

    def refused_reason(self) -> str:
        """Why the brokers refuse this consumer while it is not connected ("" otherwise)."""
        view = self._view.get()
        if view.connected or self._closed:
            return ""
        return f"kafka source: {view.refused}" if view.refused else ""

    def stalled_for(self) -> float:
        """Seconds the consumer thread has been stuck inside one call (for /livez)."""
        return self._owner.stalled_for()

    @property
    def exhausted(self) -> bool:
        return False

    @property
    def assignment(self) -> frozenset[Partition]:
        """The partitions this member owns now (for logs and tests)."""
        return frozenset(self._view.get().owned)

    # --- reading ---

    async def read(self, max_messages: int, timeout_s: float) -> SourceBatch:
        if not self._view.get().open:
            raise KafkaSourceError("kafka source: read() before start() or after close()")
        reading = Read(max_messages, timeout_s)
        self._owner.submit(reading)
        return await reading.reply.future

    # --- ownership ---

    async def still_owned(self, datums: list[Datum], batch: SourceBatch) -> list[Datum]:
        """The datums of `batch` this member may still deliver (see the module doc).

        When the consumer has not been polled for `FRESH_S` (a long delivery), or a commit
        was refused as from an evicted member, rebalance events may wait unserved in its
        queue: they are served first, on the owner thread.
        """
        token = batch.token
        if not isinstance(token, ReadToken) or not datums:
            return datums
        view = self._view.get()
        stale = time.monotonic() - view.last_consume > FRESH_S
        if (stale or view.recheck) and view.open:
            with contextlib.suppress(KafkaSourceError):
                serving = ServeEvents(STASH_LIMIT)
                self._owner.submit(serving)
                await serving.reply.future
        kept, dropped = kept_owned(datums, token, self._view.get().owned)
        if dropped:
            logger.warning(
                "kafka source: not delivering %d message(s) of %s: revoked since they were read; "
                "whoever owns the partition now reads them again from the committed offset",
                len(dropped),
                ranges(dropped),
                extra=batch_fields(dropped),
            )
        return kept

    # --- acknowledging ---

    async def ack(self, batch: SourceBatch) -> int:
        """Mark `batch` handled and commit; how many handled records the commit it joined
        confirmed (module doc)."""
        token = _read_token(batch, "ack")
        if token is None:
            return 0  # an empty batch has nothing to commit
        if not self._view.get().open or self._closed:
            logger.warning(
                "kafka source: batch acked after close, not committed (it will be redelivered)",
                extra=batch_fields([d.id for d in batch.datums]),
            )
            return 0
        del batch  # not kept alive while the commit waits
        handled = Handled(token)
        try:
            self._owner.submit(handled)
        except KafkaSourceError:
            return 0
        return await handled.reply.future

    async def commit_with(
        self, batch: SourceBatch, delivered: Sequence[Datum], commit: CommitWith
    ) -> int:
        """Commit `batch`'s offsets through `commit` (a transaction holding the records written
        for `delivered`), then count the batch handled and committed (TransactionalSource).

        The partitions of the delivered datums must still be this member's, with nothing
        before the batch uncommitted: otherwise the transaction would carry records whose
        offsets it cannot commit, so BatchMustRestart (the forwarder starts the batch again,
        and delivers only what is still owned). Partitions lost before the delivery began had
        nothing written: their records go to the new owner, and their offsets are not ours.
        """
        token = _read_token(batch, "commit_with")
        if token is None:
            return 0
        if not self._view.get().open or self._closed:
            raise BatchMustRestart("kafka source: the consumer is gone; the batch is redelivered")
        try:
            asking = TransactionOffsets(token)
            self._owner.submit(asking)
            ends, group = await asking.reply.future
        except KafkaSourceError as err:
            raise BatchMustRestart(str(err)) from None
        written = {partition_of(d.id) for d in delivered}
        lost = written - set(ends)
        if lost:
            names = ", ".join(f"{t}[{p}]" for t, p in sorted(lost))
            raise BatchMustRestart(
                f"kafka source: {names} changed owner during the batch; its records go to "
                "the new owner"
            )
        offsets = {p: ends[p] for p in written}
        await commit(offsets, group)
        committed = CommittedInTransaction(token, offsets)
        try:
            self._owner.submit(committed)
            return await committed.reply.future
        except KafkaSourceError:
            return 0  # committed with the transaction; only the count is lost


def _read_token(batch: SourceBatch, caller: str) -> ReadToken | None:
    """The ledger's token of a batch this source read (None: an empty batch)."""
    token = batch.token
    if token is not None and not isinstance(token, ReadToken):
        raise TypeError(f"kafka source: {caller}() got a batch it did not read ({token!r})")
    return token


def _commit_wait(view: ConsumerView) -> float:
    """How long the oldest commit has waited for its answer (0 when none waits)."""
    sent = view.commit_sent
    return 0.0 if sent is None else max(0.0, time.monotonic() - sent)


__all__ = ["LAG_REFRESH_S", "KafkaSource", "KafkaSourceError"]
