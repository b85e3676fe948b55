"""The Kafka source's consumer worker: everything the owner thread alone touches.

The consumer handle, the offset ledger, the stash, the commit coalescer (with the waiting
acks), the lag schedule and the connectivity facts live in one `ConsumerWorker`, which only
the owner thread holds and calls (owner_thread.OwnerThread): it performs the typed jobs of
kafka_jobs.py, serves the consumer's callbacks (they run inside its calls into the handle)
and publishes a `ConsumerView` for the event loop. The rules it keeps are in sources/kafka.py's
module doc; the decisions it applies are the pure modules' (offset_ledger, read_buffer,
commit_coalescer, lag, ownership).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace
from typing import Any, assert_never

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from sink_runtime.config import KafkaSourceConfig
from sink_runtime.dataplane.kafka_settings import (
    ErrorThrottle,
    LibrdkafkaLog,
    explain_failure,
    redacted,
)
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import SourceBatch
from sink_runtime.dataplane.sources.commit_coalescer import CommitCoalescer
from sink_runtime.dataplane.sources.kafka_convert import RecordConverter
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
from sink_runtime.dataplane.sources.kafka_record import ACCELERATED
from sink_runtime.dataplane.sources.lag import LAG_TIMEOUT_S, LagSchedule, partition_lag
from sink_runtime.dataplane.sources.offset_ledger import OffsetLedger, Partition, ReadToken
from sink_runtime.dataplane.sources.owner_thread import Inside, Reply, Shared
from sink_runtime.dataplane.sources.ownership import (
    ended_text,
    kept_unrefused,
    offsets_text,
    ranges,
)
from sink_runtime.dataplane.sources.read_buffer import (
    ByteBudget,
    Chunk,
    Gathering,
    Stash,
)
from sink_runtime.logs import batch_fields

logger = logging.getLogger(SOURCE_LOGGER)
rdkafka_logger = LibrdkafkaLog(logging.getLogger(f"{SOURCE_LOGGER}.librdkafka"))

# How long a read may spend checking broker reachability while not connected.
PROBE_TIMEOUT_S = 1.0
# A read consumes in slices this long, so a queued ack or close waits at most this.
READ_SLICE_S = 0.1
# How often the owner thread wakes while no job is queued (lag refresh).
IDLE_TICK_S = 0.5
# How much of close()'s wait its last commit may spend waiting for an answer.
CLOSE_COMMIT_WAIT_S = 3.0
# A consumer that has reached no broker for this long is replaced by a new one (measured: after
# a broker was killed and restarted during a lost-partitions event, the old librdkafka handle
# kept failing every metadata request while a fresh client connected at once).
RECREATE_AFTER_S = 45.0
# Likewise a consumer that lost its partitions (its group session expired) and was given no
# new assignment, not even an empty one, for this long (seen in the same fault runs: the
# group coordinator query stayed "suppressed" for minutes after the broker was back).
REJOIN_AFTER_S = 60.0

# Commit errors that mean this member is no longer in the group.
_EVICTED = frozenset(
    {
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.FENCED_INSTANCE_ID,
    }
)


class ConsumerWorker:
    """See the module doc. Every method runs on the owner thread."""

    def __init__(
        self,
        config: KafkaSourceConfig,
        *,
        metrics: Metrics,
        where: str,
        batch_max_bytes: int,
        inside: Inside,
        view: Shared[ConsumerView],
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._where = where
        self._inside = inside
        self._view = view
        self._errors = ErrorThrottle(logger)
        self.converter = RecordConverter(config, metrics, self._errors)
        self._consumer: Any = None
        self.ledger = OffsetLedger()
        self.stash = Stash()  # records consumed while serving events, read first
        self._budget = ByteBudget(batch_max_bytes)
        self._commits = CommitCoalescer()
        self._lag = LagSchedule()
        self._owned: dict[Partition, int] = {}  # the ledger's tenures
        self._connected = False
        self._unreachable_since: float | None = None
        self._lost_since: float | None = None
        self._settings: dict[str, Any] = {}
        # Why the brokers refuse this consumer (credentials, certificates), until it connects.
        self._refused: str | None = None

    # --- the owner thread's entry points (owner_thread.Worker) ---

    def perform(self, job: ConsumerJob) -> None:
        match job:
            case Read():
                job.reply.settle(self._read(job.max_messages, job.timeout_s))
            case Handled():
                self._handled(job.token, job.reply)
            case ServeEvents():
                self._serve_events(job.limit)
                job.reply.settle(None)
            case Start():
                self._start(job.settings)
                job.reply.settle(None)
            case Close():
                self._close_consumer()
                job.reply.settle(None)
            case TransactionOffsets():
                if self._consumer is None:
                    job.reply.fail(KafkaSourceError("kafka source: the consumer is gone"))
                else:
                    group = self._consumer.consumer_group_metadata()
                    job.reply.settle((self.ledger.next_ends(job.token), group))
            case CommittedInTransaction():
                job.reply.settle(self._committed_in_transaction(job.token, job.offsets))
            case _:
                assert_never(job)

    def idle(self) -> None:
        if self._consumer is not None:
            if self._commits.in_flight:
                self._serve_events(1)  # commit answers are queued ahead of the records
            self._commit_due()
            self._refresh_lag_when_due()

    def idle_wait(self) -> float:
        if self._consumer is None:
            return IDLE_TICK_S
        return self._commits.idle_wait(time.monotonic(), IDLE_TICK_S)

    def stopped(self) -> None:
        """The thread ends: acks still waiting are answered with 0 (not committed here; read
        again by whoever owns their partitions next)."""
        self._commits.settle_all()

    def _publish(self, **changes: Any) -> None:
        self._view.update(lambda view: replace(view, **changes))

    # --- lifecycle ---

    def _start(self, settings: dict[str, Any]) -> None:
        settings = settings | {
            "error_cb": self._on_error,
            "logger": rdkafka_logger,
            "on_commit": self._on_commit,
        }
        logger.info(
            "kafka source: joining group %s on %s for topics %s; records converted %s",
            self.config.consumer_group,
            ",".join(self.config.brokers),
            ",".join(self.config.topics),
            "in C (sources/_fastrecords.c)"
            if ACCELERATED
            else "in Python only (the C module was not built with this package)",
            extra={"settings": redacted(settings)},
        )
        self._settings = settings
        self._create(settings)

    def _create(self, settings: dict[str, Any]) -> None:
        consumer = Consumer(settings)
        consumer.subscribe(
            list(self.config.topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._consumer = consumer
        self._publish(open=True)
        self._probe(PROBE_TIMEOUT_S)

    def _recreate(self, why: str) -> None:
        """Replace a consumer that is stuck (RECREATE_AFTER_S, REJOIN_AFTER_S): what it read
        and did not commit is read again through the new one."""
        old, self._consumer = self._consumer, None
        self._publish(open=False)
        logger.warning(
            "kafka source: %s; replacing the consumer (new connections and a new group membership)",
            why,
        )
        self._forget(list(self._owned), "given up with the old consumer")
        self._give_up_commits()
        with contextlib.suppress(Exception):
            old.close()
        self._inside.beat()
        self._unreachable_since = time.monotonic()
        self._lost_since = None
        self._create(self._settings)

    def _close_consumer(self) -> None:
        self._commit_due(force=True)
        deadline = time.monotonic() + CLOSE_COMMIT_WAIT_S
        while self._commits.in_flight and time.monotonic() < deadline:
            self._consume(1, READ_SLICE_S)  # serves the answer; the record is not delivered
        consumer, self._consumer = self._consumer, None
        self._publish(open=False)
        self.stash.clear()
        self._give_up_commits()
        consumer.close()
        if self._owned:
            self._forget(list(self._owned), "left with the consumer")

    # --- reading ---

    def _consume(self, max_messages: int, timeout_s: float) -> Chunk:
        messages = self._consumer.consume(num_messages=max_messages, timeout=timeout_s)
        self._publish(last_consume=time.monotonic())
        self._inside.beat()
        # After the call: the rebalance callbacks it served count (the ledger's module doc).
        return Chunk(self.ledger.generation, messages)

    def _read(self, max_messages: int, timeout_s: float) -> SourceBatch:
        deadline = time.monotonic() + timeout_s
        if not self._connected:
            self._probe(min(PROBE_TIMEOUT_S, timeout_s))
            since = self._unreachable_since
            if not self._connected and since and time.monotonic() - since > RECREATE_AFTER_S:
                self._recreate(
                    f"no broker of {','.join(self.config.brokers)} answered for "
                    f"{time.monotonic() - since:.0f}s"
                )
        lost = self._lost_since
        if lost is not None and time.monotonic() - lost > REJOIN_AFTER_S:
            self._recreate(
                f"no new assignment {time.monotonic() - lost:.0f}s after losing its partitions"
            )
        self._refresh_lag_when_due()
        batch = Gathering(max_messages, self._budget, self.stash.take(max_messages))
        # Consume in slices: a job queued meanwhile (an ack, close) ends the read early.
        first = True
        while not batch.full:
            left = max(0.0, deadline - time.monotonic())
            hurry = self._inside.jobs_waiting
            if not first and (left <= 0 or hurry):
                break
            first = False
            wait = 0.0 if hurry else min(left, READ_SLICE_S)
            batch.add(self._consume(batch.want(), wait))
            self._commit_due()
        return self.batch(batch.close(self.stash))

    def batch(self, chunks: list[Chunk]) -> SourceBatch:
        """The batch of `chunks`, taken into the ledger as read."""
        try:
            return self._batch_of(chunks)
        except BaseException:
            # Consumed, and neither delivered nor taken into the ledger: read first next time
            # (the stash), so no later batch's commit passes them.
            self.stash.put_back(chunks)
            raise

    def _batch_of(self, chunks: list[Chunk]) -> SourceBatch:
        converted = self.converter.convert_chunks(chunks)
        datums = converted.datums
        if datums:
            self._set_connected(True)
        self.converter.report_malformed(converted.malformed)
        token, refused = self.ledger.read(converted.read)
        if any(refused):
            datums, dropped = kept_unrefused(datums, converted.bounds, refused)
            logger.warning(
                "kafka source: not delivering %d record(s) of %s: returned before the "
                "partition's current assignment began (a rebalance during the read); read "
                "again from the group's committed offset",
                len(dropped),
                ranges(dropped),
                extra=batch_fields(dropped),
            )
        return SourceBatch(datums=datums, token=token)

    def _serve_events(self, limit: int) -> None:
        """Poll once without waiting, keeping up to `limit` records that arrive for the next
        read: the rebalance and commit callbacks queued are served."""
        self._publish(recheck=False)
        room = self.stash.room(limit, self._budget.max_bytes)
        if room > 0:
            self.stash.add(self._consume(room, 0))

    # --- acknowledging and committing ---

    def _handled(self, token: ReadToken, reply: Reply[int]) -> None:
        self.ledger.handled(token)
        self._commits.waiting(reply, time.monotonic())
        self._commit_due()

    def _committed_in_transaction(self, token: ReadToken, offsets: dict[Partition, int]) -> int:
        """A transaction committed `offsets` with the batch: the ledger counts it handled and
        committed at once, so this source never commits those records itself."""
        self.ledger.handled(token)
        owned = self.ledger.owned()
        kept = {p: o for p, o in offsets.items() if owned.get(p) == token.tenures[p]}
        if not kept:
            return 0
        return self.ledger.commit_answered(self.ledger.commit_sent(kept))

    def _commit_due(self, *, force: bool = False) -> None:
        """Commit what is handled when a commit is due (or `force`: a revocation, close)."""
        now = time.monotonic()
        self._commits.expire(now)
        if self._consumer is None:  # gone (a replacement that failed): read again later
            self._commits.settle_all()
            return
        if not self._commits.due(now, force=force):
            return
        offsets = self.ledger.committable()
        if not offsets:
            self._commits.settle_unsent()
            return
        self._send(offsets, forced=force)

    def _send(self, offsets: dict[Partition, int], *, forced: bool) -> None:
        """Hand a commit of `offsets` to the consumer; its answer comes to `_on_commit`."""
        if not self._connected:
            # librdkafka would hold it until a coordinator answers; the first commit after the
            # brokers return covers these offsets.
            self._errors.warning(
                "commit-unreachable",
                f"kafka source: brokers unreachable, commit of {offsets_text(offsets)} not "
                "attempted; the next one after they answer covers it",
            )
            self._commits.settle_unsent()
            return
        commit_id = self.ledger.commit_sent(offsets)
        self._commits.sent(commit_id, offsets, time.monotonic(), forced=forced)
        self._publish(commit_sent=self._commits.oldest_sent())
        request = [KafkaPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        try:
            self._consumer.commit(offsets=request, asynchronous=True)
        except KafkaException as exc:
            self._answered(commit_id, set(offsets), exc.args[0] if exc.args else exc)

    def _on_commit(self, err: Any, partitions: list[Any]) -> None:
        """librdkafka's answer to a commit (on the owner thread, inside a consume)."""
        answered = {(tp.topic, tp.partition): tp.offset for tp in partitions or ()}
        commit_id = self._commits.find(answered)
        if commit_id is None:
            return  # not one waiting here (given up when the consumer was replaced)
        if err is not None:
            self._answered(commit_id, set(answered), err)
            return
        refused = [tp for tp in partitions if tp.error is not None]
        failed = {(tp.topic, tp.partition) for tp in refused}
        self._answered(commit_id, failed, refused[0].error if refused else None)

    def _answered(self, commit_id: int, failed: set[Partition], err: Any) -> None:
        offsets = self.ledger.commit_offsets(commit_id)
        confirmed = self.ledger.commit_answered(commit_id, failed)
        if failed:
            self._commit_failed(err, {p: offsets[p] for p in failed if p in offsets})
        else:
            self._set_connected(True)
        if not self._commits.answered(commit_id, confirmed) and confirmed:
            # Their acks were answered already (a retried commit, one made at a revocation):
            # counted here, as the forwarder counts what ack() returns.
            self.metrics.acked.inc(confirmed)
        self._publish(commit_sent=self._commits.oldest_sent())

    def _give_up_commits(self) -> None:
        """The consumer goes away: the commits it was given stay unanswered here (the broker
        may have taken them; what they covered stays handled in ended tenures only)."""
        for commit_id, commit in self._commits.give_up().items():
            self.ledger.commit_answered(commit_id, set(commit.offsets))
        self._publish(commit_sent=None)

    def _commit_failed(self, err: Any, offsets: dict[Partition, int]) -> None:
        self.metrics.commit_failures.inc()
        self._commits.failed(time.monotonic())
        code = err.code() if isinstance(err, KafkaError) else None
        if code in _EVICTED:
            # Out of the group: the lost partitions' callback waits in the consumer's queue;
            # served before the next delivery, it ends their tenures.
            self._publish(recheck=True)
        text = f"{err.name()}: {err.str()}" if isinstance(err, KafkaError) else str(err)
        logger.warning(
            "kafka source: commit failed (%s) for %s; those records stay uncommitted: a "
            "later commit covers them, or whoever owns the partition next reads them again",
            text,
            offsets_text(offsets),
        )

    # --- lag ---

    def _refresh_lag_when_due(self) -> None:
        if not self._lag.take(time.monotonic(), owned=bool(self._owned), connected=self._connected):
            return
        owned = sorted(self._owned)
        unknown = [KafkaPartition(t, p) for t, p in owned if self.ledger.committed((t, p)) is None]
        if unknown:
            try:
                for tp in self._consumer.committed(unknown, timeout=LAG_TIMEOUT_S):
                    if tp.error is None and tp.offset >= 0:
                        self.ledger.learn_committed((tp.topic, tp.partition), tp.offset)
            except KafkaException:
                return
        for topic, partition in owned:
            self._inside.beat()
            try:
                low, high = self._consumer.get_watermark_offsets(
                    KafkaPartition(topic, partition), timeout=LAG_TIMEOUT_S, cached=False
                )
            except KafkaException:
                return
            lag = partition_lag(low, high, self.ledger.committed((topic, partition)))
            if lag is not None:
                self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)

    def _drop_lag(self, topic: str, partition: int) -> None:
        with contextlib.suppress(KeyError):  # never set for this partition
            self.metrics.consumer_lag.remove(topic, str(partition))

    # --- rebalance and connectivity callbacks (inside calls into the handle) ---

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self._set_connected(True)
        self._lost_since = None
        # librdkafka reads them from the group's committed offset.
        self.ledger.assign(_keys(partitions))
        self._owned = self.ledger.owned()
        self._publish(owned=dict(self._owned))
        self._lag.soon()  # report lag for the new partitions at the next chance
        logger.info(
            "kafka source: assigned %s; now own %d partition(s)",
            _names(partitions) or "nothing",
            len(self._owned),
        )

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        # Still a member with these partitions: what is handled is committed before they go.
        gone = _keys(partitions)
        offsets = self.ledger.committable(gone)
        if offsets and self._consumer is not None:
            self._send(offsets, forced=True)
        self._forget(gone, "revoked")

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        self._lost_since = time.monotonic()
        self._forget(_keys(partitions), "lost")

    def _forget(self, gone: list[Partition], how: str) -> None:
        ended = self.ledger.end(gone)
        self._owned = self.ledger.owned()
        self._publish(owned=dict(self._owned))
        self.stash.forget(gone)
        for topic, partition in gone:
            self._drop_lag(topic, partition)
        logger.info(
            "kafka source: %s %s%s",
            how,
            ", ".join(f"{t}[{p}]" for t, p in gone) or "nothing",
            f"; read, not committed (read again from the group's committed offset): "
            f"{ended_text(ended)}"
            if ended
            else "",
        )

    def _on_error(self, err: Any) -> None:
        code = err.code()
        if code == KafkaError._ALL_BROKERS_DOWN:
            self._set_connected(False)
        if err.fatal():
            logger.error("kafka source: fatal librdkafka error: %s", err.str())
            return
        why = explain_failure(
            self.config, self._where, [(err.name(), err.str())], check_tls=self._refused is None
        )
        if why is not None:
            self._refused = why
            self._publish_connectivity()
            self._errors.warning(code, f"kafka source: {why} (retrying)")
            return
        self._errors.warning(
            code,
            f"kafka source: {err.name()}: {err.str()} (brokers {','.join(self.config.brokers)};"
            " retrying)",
        )

    def _set_connected(self, connected: bool) -> None:
        if connected and not self._connected:
            logger.info("kafka source: brokers %s reachable; ready", ",".join(self.config.brokers))
        if connected:
            self._unreachable_since = None
            self._refused = None
        elif self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
        self._connected = connected
        self._publish_connectivity()

    def _publish_connectivity(self) -> None:
        view = self._view.get()
        if view.connected != self._connected or view.refused != self._refused:
            self._publish(connected=self._connected, refused=self._refused)

    def _probe(self, timeout_s: float) -> None:
        """Check that a broker answers (a metadata request); sets the connected flag."""
        try:
            md = self._consumer.list_topics(topic=self.config.topics[0], timeout=timeout_s)
        except KafkaException as exc:
            self._set_connected(False)
            err = exc.args[0] if exc.args else None
            code = err.code() if isinstance(err, KafkaError) else -1
            self._errors.warning(
                code,
                f"kafka source: cannot reach brokers {','.join(self.config.brokers)} ({exc}); "
                "not ready, retrying",
            )
            return
        finally:
            self._inside.beat()
        self._set_connected(bool(md.brokers))


def _keys(partitions: list[Any]) -> list[Partition]:
    return [(tp.topic, tp.partition) for tp in partitions]


def _names(partitions: list[Any]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)


__all__ = ["ConsumerWorker"]
