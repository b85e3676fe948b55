"""KafkaSource: a consumer-group member that turns records into Datums and commits only acks.

Separate from the forwarder because everything librdkafka-specific lives here.

Threading: one thread owns the consumer handle (`ConsumerThread`). Every call into it (reads,
commits, the rebalance callbacks those calls trigger, close) runs there, one at a time, and no
lock is ever held across a call into the handle. confluent-kafka serialises calls on one
handle behind a running callback, so a second thread calling in (a commit thread, as before)
can deadlock against a rebalance callback that waits for it; with one owner it cannot. The
event loop only hands jobs to that thread and awaits their results. The design leaves room
to move the owner into a process of its own: its jobs are plain functions over plain data.

Guarantees and choices:
- `ack(batch)` returns once a synchronous commit on the owner thread covered the batch (the
  broker answered), and says how many of its messages the broker accepted. It commits the
  batch's highest offset + 1 per partition, and only once every batch read before it was
  acked too (acks arriving out of order wait), so nothing unhandled is ever covered by a
  commit. Acked batches are committed together, at most every `COMMIT_INTERVAL_S` (and at
  once when the last commit is older than that): a commit is a broker round trip during
  which the owner thread cannot read, so one per batch would cap the reads (measured: 28,000
  records/s of 1 KiB with a commit per 500-record batch on a loaded 2-core machine). An
  acked batch waits at most that interval longer for its commit; a revocation commits what
  is acked first, and close() commits it before leaving the group.
- Rebalance: a revoked or lost partition is dropped from every pending batch; its datums are
  redelivered to the new owner (at-least-once), never committed by us. `still_owned()` drops
  them from a batch read before the revocation, so they are not delivered after it either
  (a last-write-wins sink would otherwise go backwards). A commit refused because this member
  was evicted (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION...) marks every batch read so far stale.
- A failed commit is logged and counted in `commit_failures`, not raised: the next successful
  commit covers the batch (commits are cumulative), or the batch is redelivered after a
  rebalance or restart.
- Readiness is the consumer's real state: not ready while brokers are unreachable, while a
  commit has waited on the broker for longer than `SLOW_COMMIT_S`, or before the first answer.
  Liveness: `stalled_for()` is how long the owner thread has been inside one job without a
  sign of life (the data plane's /livez watchdog reads it).
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
  (the read time when the record has none); value `b""` for a null value.
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
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from sink_runtime.config import DEFAULT_BATCH_MAX_BYTES, KafkaSourceConfig
from sink_runtime.config.constants import KEY_LEN_HEADER
from sink_runtime.dataplane.kafka_settings import (
    ErrorThrottle,
    LibrdkafkaLog,
    consumer_settings,
    explain_failure,
    redacted,
)
from sink_runtime.dataplane.keyheaders import (
    KeyHeaderCodec,
    KeysFound,
    MalformedKeyHeaders,
    NoKeyHeaders,
    key_header_name,
)
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import SourceBatch
from sink_runtime.dataplane.sources.kafka_record import (
    ACCELERATED,
    NO_RAW,
    RawHeaders,
    RecordDatum,
    convert_records,
    header_text,
    record_datum,
    utc_from_ms,
)
from sink_runtime.logs import batch_fields
from sink_runtime.types import Datum

logger = logging.getLogger(__name__)
rdkafka_logger = LibrdkafkaLog(logging.getLogger(f"{__name__}.librdkafka"))

Partition: TypeAlias = tuple[str, int]
_T = TypeVar("_T")

# How long a read may spend checking broker reachability while not connected.
PROBE_TIMEOUT_S = 1.0
# A read consumes in slices this long, so a queued ack or close waits at most this.
READ_SLICE_S = 0.1
# How often the owner thread wakes while no job is queued (lag refresh).
IDLE_TICK_S = 0.5
# Acked batches wait at most this long for the commit that covers them (module doc).
COMMIT_INTERVAL_S = 0.1
# A batch is checked against rebalance events still queued in the consumer when the consumer
# was last polled longer ago than this (a long delivery).
FRESH_S = 1.0
# Records consumed while serving those events are kept for the next read, up to this many.
STASH_LIMIT = 10_000
# A commit waiting on the broker longer than this makes the source not ready.
SLOW_COMMIT_S = 2.0
# How often consumer lag is refreshed from the broker's offsets (while the brokers are
# reachable), and how long each look-up may take; the first one that fails ends the round.
LAG_REFRESH_S = 5.0
LAG_TIMEOUT_S = 5.0
# How long close() waits for the consumer thread to finish what it is doing (a synchronous
# commit can wait up to ~45 s on a coordinator that is gone) before leaving without it.
CLOSE_WAIT_S = 5.0
# A consumer that has reached no broker for this long is replaced by a new one (measured: after
# a broker was killed and restarted during a lost-partitions event, the old librdkafka handle
# kept failing every metadata request while a fresh client connected at once).
RECREATE_AFTER_S = 45.0
# Likewise a consumer that lost its partitions (its group session expired) and was given no
# new assignment, not even an empty one, for this long (seen in the same fault runs: the
# group coordinator query stayed "suppressed" for minutes after the broker was back).
REJOIN_AFTER_S = 60.0
# librdkafka signals "no such partition" with this offset value in watermark answers.
_NO_OFFSET = 0


class KafkaSourceError(RuntimeError):
    """The consumer hit an error it cannot recover from (librdkafka says fatal)."""


@dataclass(slots=True)
class BatchToken:
    """The offsets a batch will commit, by partition: highest offset read + 1.

    `epoch` is the source's assignment epoch when it was read.
    """

    seq: int
    next_offsets: dict[Partition, int]
    counts: dict[Partition, int]
    epoch: int
    acked: bool = False


@dataclass(slots=True)
class _Waiting:
    """Acked batches released together, waiting for the commit that covers them."""

    offsets: dict[Partition, int]
    counts: dict[Partition, int]
    ids: list[str]
    committed: asyncio.Future[int]
    loop: asyncio.AbstractEventLoop


# Commit errors that mean this member is no longer in the group.
_EVICTED = frozenset(
    {
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.FENCED_INSTANCE_ID,
    }
)


@dataclass(slots=True)
class _Decoded:
    headers: dict[str, str]
    not_utf8: frozenset[str] = field(default_factory=frozenset)


def _headers_for_keys(raw: Iterable[tuple[str, bytes | None]] | None) -> _Decoded:
    """Record headers as text (module doc: UTF-8 with replacement, last value wins), and the
    names whose value was not valid UTF-8."""
    out: dict[str, str] = {}
    bad: set[str] = set()
    for name, value in raw or ():
        try:
            out[name] = "" if value is None else value.decode()
            bad.discard(name)
        except UnicodeDecodeError:
            out[name] = header_text(value)
            bad.add(name)
    return _Decoded(out, frozenset(bad))


# `__key_0`, `__key_1`, ...: precomputed for the usual short key lists.
_SPLIT_KEY_NAMES = tuple(key_header_name(i) for i in range(16))


def _split_keys(raw: RawHeaders) -> tuple[str, ...] | None:
    """Keys from a well-formed split layout of at most 16 UTF-8 keys; None for anything else.

    A fast path only: None sends the record through the codec, which gives the same answer
    for the records accepted here and the reason for the malformed ones.
    """
    count_text = raw.get(KEY_LEN_HEADER)
    if count_text is None or len(count_text) > 2 or not count_text.isdigit():
        return None
    count = int(count_text)
    if count > len(_SPLIT_KEY_NAMES) or count > len(raw):
        return None
    try:
        return tuple([raw[name].decode() for name in _SPLIT_KEY_NAMES[:count]])  # type: ignore[union-attr]
    except (KeyError, AttributeError, UnicodeDecodeError):  # missing, null or not UTF-8
        return None


class ConsumerThread:
    """The one thread that touches a consumer handle: runs jobs one at a time, in order.

    `submit()` (on the event loop) queues a function and returns a future for its result.
    `jobs_waiting` lets a long job (a read) end early so a queued one (an ack) is not held up.
    `beat()` is called by jobs between calls into the handle; `stalled_for()` is how long the
    thread has been inside one job without a beat (0 while idle).
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._busy_since: float | None = None
        self._stopped = False
        self._idle: Callable[[], None] = _nothing
        self._tick: Callable[[], float] = _idle_tick
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self, idle: Callable[[], None], tick: Callable[[], float]) -> None:
        """Start the thread; while no job is queued, `idle` runs on it after waiting `tick()`
        seconds (asked anew before each wait)."""
        self._idle = idle
        self._tick = tick
        self._thread.start()

    def submit(self, fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        if self._stopped:
            raise KafkaSourceError("kafka source: the consumer thread has stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put(_Job(fn, args, future, loop))
        return future

    @property
    def jobs_waiting(self) -> bool:
        return not self._jobs.empty()

    def beat(self) -> None:
        if self._busy_since is not None:
            self._busy_since = time.monotonic()

    def stalled_for(self) -> float:
        since = self._busy_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    def stop(self) -> None:
        """Let the thread end once the jobs queued before this are done."""
        self._stopped = True
        self._jobs.put(None)

    def join(self, timeout_s: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _main(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._tick())
            except queue.Empty:
                self._run_idle()
                continue
            if job is None:
                return
            if job.future.cancelled():
                continue  # abandoned before it started: nothing was read or committed
            self._busy_since = time.monotonic()
            try:
                result = job.fn(*job.args)
            except BaseException as exc:  # handed to the awaiting coroutine
                job.loop.call_soon_threadsafe(_settle, job.future, None, exc)
            else:
                job.loop.call_soon_threadsafe(_settle, job.future, result, None)
            finally:
                self._busy_since = None
                job = None  # its arguments (a batch) are not kept while the next job waits

    def _run_idle(self) -> None:
        self._busy_since = time.monotonic()
        try:
            self._idle()
        except Exception:
            logger.exception("kafka source: background refresh failed")
        finally:
            self._busy_since = None


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # cancelled, or settled already (close() gave up on the thread)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class KafkaSource:
    """Reads `config.topics` as member of `config.consumer_group` (see the module doc)."""

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
        self._codec = KeyHeaderCodec(keys_header=config.keys_header)
        self._owner = ConsumerThread("kafka-source")
        self._consumer: Any = None
        # Written only on the owner thread; read from the loop as whole-object snapshots.
        self._assigned: dict[Partition, int] = {}  # partition -> epoch of its assignment
        self._epoch = 0  # bumped on every assignment change and on eviction
        self._stale_before = 0  # batches read in an epoch below this are not delivered
        self._pending: list[BatchToken] = []
        self._waiting: list[_Waiting] = []  # acked, released, not committed yet
        self._last_commit = 0.0
        self._stash: list[Any] = []  # records consumed while serving events, read first
        self._batch_max_bytes = batch_max_bytes
        self._record_bytes = 0  # value bytes per record in the last consume (0: not known)
        self._committed: dict[Partition, int] = {}
        # Per partition, the first offset read but not delivered (see `_owned_now`); set from
        # the loop, cleared on the owner thread when the partition's position is reset.
        self._floor: dict[Partition, int] = {}
        self._seq = 0
        self._connected = False
        self._commit_since: float | None = None
        self._unreachable_since: float | None = None
        self._lost_since: float | None = None
        self._settings: dict[str, Any] = {}
        self._last_consume = 0.0
        self._next_lag = 0.0
        self._closed = False
        self._errors = ErrorThrottle(logger)
        # Why the brokers refuse this consumer (credentials, certificates), until it connects.
        self._refused: str | None = None

    # --- lifecycle ---

    async def start(self) -> None:
        """Create the consumer and join the group; returns without waiting for brokers."""
        settings: dict[str, Any] = consumer_settings(self.config, self._where)
        settings |= {"error_cb": self._on_error, "logger": rdkafka_logger}
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
        self._owner.start(idle=self._on_idle, tick=self._idle_wait)
        await self._owner.submit(self._create, settings)

    def _recreate(self, why: str) -> None:
        """Replace a consumer that is stuck (RECREATE_AFTER_S, REJOIN_AFTER_S), on the owner
        thread: what it read and did not commit is redelivered through the new one."""
        old, self._consumer = self._consumer, None
        logger.warning(
            "kafka source: %s; replacing the consumer (new connections and a new group membership)",
            why,
        )
        gone = [KafkaPartition(t, p) for t, p in self._assigned]
        self._forget(gone, "given up with the old consumer")
        self._settle_waiting(0)
        with contextlib.suppress(Exception):
            old.close()
        self._owner.beat()
        self._unreachable_since = time.monotonic()
        self._lost_since = None
        self._create(self._settings)

    def _create(self, settings: dict[str, Any]) -> None:
        consumer = Consumer(settings)
        consumer.subscribe(
            list(self.config.topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._consumer = consumer
        self._probe(PROBE_TIMEOUT_S)

    async def close(self) -> None:
        """Leave the group; nothing is committed here (only ack() commits)."""
        if self._closed:
            return
        self._closed = True
        if self._consumer is not None:
            # Queued after any read or commit still running: they end before the consumer.
            with contextlib.suppress(KafkaSourceError):
                closing = self._owner.submit(self._close_consumer)
                try:
                    await asyncio.wait_for(asyncio.shield(closing), CLOSE_WAIT_S)
                except TimeoutError:
                    logger.warning(
                        "kafka source: the consumer is still busy after %.0fs (%s); leaving "
                        "without closing it: the group reassigns its partitions after the "
                        "session timeout, and nothing unhandled was committed",
                        CLOSE_WAIT_S,
                        self.not_ready_reason() or "a call into librdkafka",
                    )
        self._owner.stop()
        await asyncio.get_running_loop().run_in_executor(None, self._owner.join, 1.0)
        self._settle_waiting(0)  # left without the consumer: those batches are redelivered

    def _close_consumer(self) -> None:
        self._commit_due(force=True)
        consumer, self._consumer = self._consumer, None
        self._stash.clear()
        consumer.close()
        for topic, partition in list(self._assigned):
            self._drop_lag(topic, partition)
        self._assigned = {}

    def is_ready(self) -> bool:
        if self._consumer is None or self._closed or not self._connected:
            return False
        since = self._commit_since
        return since is None or time.monotonic() - since < SLOW_COMMIT_S

    def not_ready_reason(self) -> str:
        """Why `is_ready()` is False, in words for /readyz ("" when ready)."""
        if self._consumer is None or self._closed:
            return "kafka source not started"
        if not self._connected:
            refused = f": {self._refused}" if self._refused else ""
            return f"kafka brokers {','.join(self.config.brokers)} unreachable{refused}"
        since = self._commit_since
        if since is not None and time.monotonic() - since >= SLOW_COMMIT_S:
            return f"kafka commit waiting on the broker for {time.monotonic() - since:.0f}s"
        return ""

    def stalled_for(self) -> float:
        """Seconds the consumer thread has been stuck inside one call (for /livez)."""
        return self._owner.stalled_for()

    @property
    def exhausted(self) -> bool:
        return False

    @property
    def assignment(self) -> frozenset[Partition]:
        """The partitions this member owns now (for logs and tests)."""
        return frozenset(self._assigned)

    # --- reading ---

    async def read(self, max_messages: int, timeout_s: float) -> SourceBatch:
        if self._consumer is None:
            raise KafkaSourceError("kafka source: read() before start() or after close()")
        return await self._owner.submit(self._read, max_messages, timeout_s)

    def _consume(self, max_messages: int, timeout_s: float) -> list[Any]:
        messages = self._consumer.consume(num_messages=max_messages, timeout=timeout_s)
        self._last_consume = time.monotonic()
        self._owner.beat()
        return messages  # type: ignore[no-any-return]

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
        messages = self._stash[:max_messages]
        del self._stash[:max_messages]
        size = sum(map(len, messages))  # len(record): its value's bytes
        max_bytes = self._batch_max_bytes
        # Consume in slices: a job queued meanwhile (an ack, close) ends the read early.
        first = True
        while len(messages) < max_messages and size < max_bytes:
            left = max(0.0, deadline - time.monotonic())
            hurry = self._owner.jobs_waiting
            if not first and (left <= 0 or hurry):
                break
            first = False
            wait = 0.0 if hurry else min(left, READ_SLICE_S)
            # No more records than the byte budget is likely to take (records of the size
            # seen last), so large values are not consumed ahead into the stash.
            want = max_messages - len(messages)
            if self._record_bytes:
                want = max(1, min(want, (max_bytes - size) // self._record_bytes))
            more = self._consume(want, wait)
            if more:
                grown = sum(map(len, more))
                self._record_bytes = max(1, grown // len(more))
                size += grown
                messages += more
            self._commit_due()
        if size > max_bytes and len(messages) > 1:
            messages = self._within_bytes(messages, max_bytes)
        return self._batch(messages)

    def _within_bytes(self, messages: list[Any], max_bytes: int) -> list[Any]:
        """The longest prefix whose values fit `max_bytes` (at least one record); the rest
        is read first next time."""
        size = 0
        for n, msg in enumerate(messages):
            size += len(msg)
            if size > max_bytes:
                n = max(n, 1)
                self._stash[:0] = messages[n:]
                return messages[:n]
        return messages

    def _batch(self, messages: list[Any]) -> SourceBatch:
        datums: list[Datum] = []
        next_offsets: dict[Partition, int] = {}
        counts: dict[Partition, int] = {}
        malformed: list[tuple[str, str]] = []
        to_datum = self._datum
        add = datums.append
        config = self.config
        # The C module converts the usual records; what it leaves comes back as messages.
        converted = convert_records(
            messages, config.keys_from_headers, config.keys_header, next_offsets, counts
        )
        for msg in converted:
            if type(msg) is RecordDatum:
                add(msg)
                continue
            err = msg.error()
            if err is not None:
                self._on_record_error(err, msg)
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            datum, reason = to_datum(msg, f"{topic}:{partition}:{offset}")
            if reason is not None:
                malformed.append((datum.id, reason))
            add(datum)
            tp = (topic, partition)
            # The highest + 1: records of the same partition may have been converted in C.
            next_offsets[tp] = max(offset + 1, next_offsets.get(tp, 0))
            counts[tp] = counts.get(tp, 0) + 1
        if datums:
            self._set_connected(True)
        if malformed:
            self.metrics.malformed_key_headers.inc(len(malformed))
            first_id, first_reason = malformed[0]
            logger.warning(
                "kafka source: %d record(s) with malformed key headers, record key used "
                "instead; first %s: %s",
                len(malformed),
                first_id,
                first_reason,
                extra=batch_fields([i for i, _ in malformed]),
            )
        token = None
        if datums:
            self._seq += 1
            token = BatchToken(self._seq, next_offsets, counts, self._epoch)
            self._pending.append(token)
        return SourceBatch(datums=datums, token=token)

    def _datum(self, msg: Any, datum_id: str) -> tuple[RecordDatum, str | None]:
        """One record as a Datum, and the reason its key headers were malformed (if so).

        Runs once per record: the keys are decided here, the headers stay bytes until a sink
        reads them (kafka_record.py); well-formed split key headers take a fast path, anything
        else goes through `_headers_for_keys` and the codec.
        """
        headers = msg.headers()
        record_key = msg.key()
        fallback_keys: tuple[str, ...] = (
            () if record_key is None else (record_key.decode("utf-8", errors="replace"),)
        )
        keys = fallback_keys
        reason: str | None = None
        raw: RawHeaders = NO_RAW
        if headers:
            raw = dict(headers)  # the last value of a repeated name wins
            if self.config.keys_from_headers:
                found = _split_keys(raw)
                if found is not None:
                    keys = found
                else:
                    keys, reason = self._keys_from_headers(_headers_for_keys(raw.items()), keys)
        ts_type, ts_ms = msg.timestamp()
        event_time = (
            datetime.now(UTC)
            if ts_type == TIMESTAMP_NOT_AVAILABLE or ts_ms < 0
            else utc_from_ms(ts_ms)
        )
        return record_datum(datum_id, msg.value() or b"", keys, event_time, raw), reason

    def _keys_from_headers(
        self, decoded: _Decoded, fallback: tuple[str, ...]
    ) -> tuple[tuple[str, ...], str | None]:
        match self._codec.decode(decoded.headers):
            case KeysFound(keys):
                lossy = sorted(n for n in decoded.not_utf8 if self._codec.owns(n))
                if lossy:
                    return fallback, f"key header {lossy[0]} is not valid UTF-8"
                return keys, None
            case MalformedKeyHeaders(reason):
                return fallback, reason
            case NoKeyHeaders():
                return fallback, None
        raise AssertionError("unreachable")  # pragma: no cover

    def _on_record_error(self, err: Any, msg: Any) -> None:
        code = err.code()
        if code == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            raise KafkaSourceError(f"kafka source: fatal consumer error: {err.str()}")
        where = f"{msg.topic()}[{msg.partition()}]" if msg.topic() else "consumer"
        self._errors.warning(code, f"kafka source: {where}: {err.name()}: {err.str()}")

    # --- ownership ---

    async def still_owned(self, datums: list[Datum], batch: SourceBatch) -> list[Datum]:
        """The datums of `batch` this member may still deliver (see the module doc).

        When the consumer has not been polled for `FRESH_S` (a long delivery), rebalance
        events wait unserved in its queue: they are served first, on the owner thread.
        """
        token = batch.token
        if not isinstance(token, BatchToken) or not datums:
            return datums
        if time.monotonic() - self._last_consume > FRESH_S and self._consumer is not None:
            with contextlib.suppress(KafkaSourceError):
                await self._owner.submit(self._serve_events)
        return self._owned_now(datums, token)

    def _owned_now(self, datums: list[Datum], token: BatchToken) -> list[Datum]:
        assigned = self._assigned
        stale = token.epoch < self._stale_before
        read = token.counts.keys()  # every partition read (a revocation trims next_offsets)
        keep = {tp for tp in read if not stale and tp in assigned and assigned[tp] <= token.epoch}
        if len(keep) == len(read):
            return datums
        dropped = [d for d in datums if _partition_of(d.id) not in keep]
        # A partition revoked since the read restarts from its last commit wherever it goes
        # next. One that only looks assigned (this member was evicted and has not been told
        # yet) must never be committed past the first offset not delivered.
        for d in dropped:
            topic, partition, offset = _coordinates(d.id)
            tp = (topic, partition)
            if tp in assigned and assigned[tp] <= token.epoch:
                floor = self._floor.get(tp)
                if floor is None or offset < floor:
                    self._floor[tp] = offset
        if dropped:
            logger.warning(
                "kafka source: not delivering %d message(s) of partition(s) no longer owned "
                "here (%s): the new owner delivers them",
                len(dropped),
                ", ".join(sorted({f"{t}[{p}]" for t, p in map(_partition_of, _ids(dropped))})),
                extra=batch_fields(_ids(dropped)),
            )
        return [d for d in datums if _partition_of(d.id) in keep]

    def _serve_events(self) -> None:
        """Poll once without waiting, keeping what arrives for the next read."""
        room = STASH_LIMIT - len(self._stash)
        if sum(map(len, self._stash)) >= self._batch_max_bytes:
            room = min(room, 1)  # large values: serve the events, hold little more
        if room > 0:
            self._stash += self._consume(room, 0)

    # --- acknowledging ---

    async def ack(self, batch: SourceBatch) -> int:
        """Commit `batch` (and earlier acked batches); the messages the broker accepted."""
        token = batch.token
        if token is None:
            return 0  # an empty batch has nothing to commit
        if not isinstance(token, BatchToken):
            raise TypeError(f"kafka source: ack() got a batch it did not read ({token!r})")
        if self._consumer is None or self._closed:
            logger.warning(
                "kafka source: batch acked after close, not committed (it will be redelivered)",
                extra=batch_fields(_ids(batch.datums)),
            )
            return 0
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[int] = loop.create_future()
        submitted = self._owner.submit(self._ack, token, batch, committed, loop)
        del batch  # not kept alive while the commit waits (the job took its ids)
        try:
            await submitted
        except KafkaSourceError:
            return 0
        return await committed

    def _ack(
        self,
        token: BatchToken,
        batch: SourceBatch,
        committed: asyncio.Future[int],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Queue the batches `token` releases for the next commit (`committed` gets the count
        the broker accepts), and commit if one is due."""
        done = self._release(token)
        if not done:
            loop.call_soon_threadsafe(_settle, committed, 0, None)
            return
        offsets: dict[Partition, int] = {}
        counts: dict[Partition, int] = {}
        for t in done:
            for tp, offset in t.next_offsets.items():
                offsets[tp] = max(offset, offsets.get(tp, 0))
                counts[tp] = counts.get(tp, 0) + t.counts.get(tp, 0)
        self._waiting.append(_Waiting(offsets, counts, _ids(batch.datums), committed, loop))
        self._commit_due()

    def _idle_wait(self) -> float:
        """How long the owner thread may wait for a job: until the next commit is due."""
        if not self._waiting or self._consumer is None:
            return IDLE_TICK_S
        return max(0.0, self._last_commit + COMMIT_INTERVAL_S - time.monotonic())

    def _settle_waiting(self, accepted: int) -> None:
        waiting, self._waiting = self._waiting, []
        for w in waiting:
            w.loop.call_soon_threadsafe(_settle, w.committed, accepted, None)

    def _commit_due(self, *, force: bool = False) -> None:
        """Commit every acked batch still waiting, when the interval has passed (or `force`)."""
        if not self._waiting:
            return
        if self._consumer is None:  # gone (a replacement that failed): redelivered later
            self._settle_waiting(0)
            return
        now = time.monotonic()
        if not force and now - self._last_commit < COMMIT_INTERVAL_S:
            return
        self._last_commit = now
        waiting, self._waiting = self._waiting, []
        offsets: dict[Partition, int] = {}
        for w in waiting:
            for tp, offset in w.offsets.items():
                offsets[tp] = max(offset, offsets.get(tp, 0))
        ids = [i for w in waiting for i in w.ids]
        accepted = self._commit_offsets(offsets, ids)
        for w in waiting:
            count = sum(n for tp, n in w.counts.items() if tp in accepted)
            w.loop.call_soon_threadsafe(_settle, w.committed, count, None)

    def _commit_offsets(self, offsets: dict[Partition, int], ids: list[str]) -> set[Partition]:
        """Commit `offsets` where still owned here; the partitions the broker accepted."""
        owned = {tp: o for tp, o in offsets.items() if tp in self._assigned}
        for tp in owned.keys() & self._floor.keys():
            owned[tp] = min(owned[tp], self._floor[tp])
            if owned[tp] <= self._committed.get(tp, -1):
                del owned[tp]
        if len(owned) < len(offsets):
            lost = sorted(set(offsets) - set(owned))
            logger.info(
                "kafka source: not committing %s: no longer assigned here (redelivered to "
                "the new owner)",
                ", ".join(f"{t}[{p}]" for t, p in lost),
            )
        if not owned:
            return set()
        if not self._connected:
            # A commit now would wait up to ~45 s for a coordinator that is gone, holding up
            # reads and shutdown; the next commit after the brokers return covers this one.
            self._commit_failed("brokers unreachable, commit not attempted", ids)
            return set()
        return self._commit(owned, ids)

    def _release(self, token: BatchToken) -> list[BatchToken]:
        """Mark `token` acked; the acked batches at the head of the queue, now committable.

        Empty while an earlier batch is still in flight: it is committed together later.
        """
        token.acked = True
        done: list[BatchToken] = []
        while self._pending and self._pending[0].acked:
            done.append(self._pending.pop(0))
        return done

    def _commit(self, owned: dict[Partition, int], ids: list[str]) -> set[Partition]:
        request = [KafkaPartition(t, p, o) for (t, p), o in sorted(owned.items())]
        self._commit_since = time.monotonic()
        try:
            result = self._consumer.commit(offsets=request, asynchronous=False)
        except KafkaException as exc:
            self._commit_failed(exc.args[0] if exc.args else exc, ids)
            return set()
        finally:
            self._commit_since = None
            self._owner.beat()
        accepted: set[Partition] = set()
        for tp in result or ():
            if tp.error is not None:
                self._commit_failed(tp.error, ids)
                continue
            key = (tp.topic, tp.partition)
            self._committed[key] = tp.offset
            accepted.add(key)
        self._set_connected(True)
        return accepted

    def _commit_failed(self, err: Any, ids: list[str]) -> None:
        self.metrics.commit_failures.inc()
        code = err.code() if isinstance(err, KafkaError) else None
        if code in _EVICTED:
            # This member is out of the group: what it read so far belongs to the next owner.
            self._stale_before = self._epoch + 1
        text = f"{err.name()}: {err.str()}" if isinstance(err, KafkaError) else str(err)
        logger.warning(
            "kafka source: commit failed (%s); the batch stays uncommitted and is "
            "redelivered unless a later commit covers it",
            text,
            extra=batch_fields(ids),
        )

    # --- lag ---

    def _on_idle(self) -> None:
        if self._consumer is not None:
            self._commit_due()
            self._refresh_lag_when_due()

    def _refresh_lag_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_lag or not self._assigned or not self._connected:
            return
        self._next_lag = now + LAG_REFRESH_S
        assigned = sorted(self._assigned)
        unknown = [KafkaPartition(t, p) for t, p in assigned if (t, p) not in self._committed]
        if unknown:
            try:
                for tp in self._consumer.committed(unknown, timeout=LAG_TIMEOUT_S):
                    if tp.error is None and tp.offset >= 0:
                        self._committed[(tp.topic, tp.partition)] = tp.offset
            except KafkaException:
                return
        for topic, partition in assigned:
            self._owner.beat()
            try:
                low, high = self._consumer.get_watermark_offsets(
                    KafkaPartition(topic, partition), timeout=LAG_TIMEOUT_S, cached=False
                )
            except KafkaException:
                return
            if high is None or high < _NO_OFFSET:
                continue
            committed = self._committed.get((topic, partition), low)
            self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(
                max(0, high - committed)
            )

    def _drop_lag(self, topic: str, partition: int) -> None:
        self._committed.pop((topic, partition), None)
        with contextlib.suppress(KeyError):  # never set for this partition
            self.metrics.consumer_lag.remove(topic, str(partition))

    # --- rebalance and connectivity callbacks (all on the owner thread) ---

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self._set_connected(True)
        self._lost_since = None
        self._epoch += 1
        for tp in partitions:  # their positions start again from the group's commit
            self._floor.pop((tp.topic, tp.partition), None)
        self._assigned = self._assigned | {
            (tp.topic, tp.partition): self._epoch for tp in partitions
        }
        self._next_lag = 0.0  # report lag for the new partitions at the next chance
        logger.info(
            "kafka source: assigned %s; now own %d partition(s)",
            _names(partitions) or "nothing",
            len(self._assigned),
        )

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        # Still a member with these partitions: what is acked is committed before they go.
        self._commit_due(force=True)
        self._forget(partitions, "revoked")

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        self._lost_since = time.monotonic()
        self._forget(partitions, "lost")

    def _forget(self, partitions: list[Any], how: str) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._epoch += 1
        self._assigned = {tp: e for tp, e in self._assigned.items() if tp not in gone}
        for tp in gone:
            self._floor.pop(tp, None)
        held = 0
        for token in self._pending:
            for tp in gone & token.next_offsets.keys():
                del token.next_offsets[tp]
                held += 1
        for w in self._waiting:
            for tp in gone & w.offsets.keys():
                del w.offsets[tp]
                held += 1
        self._stash = [m for m in self._stash if (m.topic(), m.partition()) not in gone]
        for topic, partition in gone:
            self._drop_lag(topic, partition)
        logger.info(
            "kafka source: %s %s%s",
            how,
            _names(partitions) or "nothing",
            f"; {held} in-flight partition offset(s) will not be committed" if held else "",
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
            self._owner.beat()
        self._set_connected(bool(md.brokers))


def _coordinates(datum_id: str) -> tuple[str, int, int]:
    topic, partition, offset = datum_id.rsplit(":", 2)
    return topic, int(partition), int(offset)


def _partition_of(datum_id: str) -> Partition:
    topic, partition, _ = _coordinates(datum_id)
    return topic, partition


def _ids(datums: Iterable[Datum]) -> list[str]:
    return [d.id for d in datums]


def _nothing() -> None:
    """A no-op, run on a thread to wait for the work queued there before it."""


def _idle_tick() -> float:
    return IDLE_TICK_S


def _names(partitions: list[Any]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)


__all__ = ["BatchToken", "KafkaSource", "KafkaSourceError"]
