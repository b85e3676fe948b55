"""KafkaSource: a consumer-group member that turns records into Datums and commits only acks.

Separate from the forwarder because everything librdkafka-specific lives here.

Threading: one thread owns the consumer handle (`ConsumerThread`). Every call into it (reads,
commits, the rebalance and commit callbacks those calls trigger, close) runs there, one at a
time, and no lock is ever held across a call into the handle. confluent-kafka serialises
calls on one handle behind a running callback, so a second thread calling in (a commit
thread, as before) can deadlock against a rebalance callback that waits for it; with one
owner it cannot. The event loop only hands jobs to that thread and awaits their results. The
design leaves room to move the owner into a process of its own: its jobs are plain functions
over plain data.

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
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from sink_runtime.config import DEFAULT_BATCH_MAX_BYTES, KafkaSourceConfig
from sink_runtime.config.constants import KEY_LEN_HEADER, SOURCE_ERROR_HEADER
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
from sink_runtime.dataplane.metrics import TIMESTAMP_CLAMPED, UNCONVERTIBLE, Metrics
from sink_runtime.dataplane.protocols import BatchMustRestart, CommitWith, SourceBatch
from sink_runtime.dataplane.sources.kafka_record import (
    ACCELERATED,
    LATEST_EVENT_TIME,
    NO_RAW,
    RawHeaders,
    RecordDatum,
    convert_records,
    header_text,
    read_headers,
    record_datum,
    utc_from_ms,
)
from sink_runtime.dataplane.sources.offset_ledger import (
    Ended,
    OffsetLedger,
    Partition,
    ReadToken,
    still_owned,
)
from sink_runtime.logs import batch_fields
from sink_runtime.types import Datum

logger = logging.getLogger(__name__)
rdkafka_logger = LibrdkafkaLog(logging.getLogger(f"{__name__}.librdkafka"))

_T = TypeVar("_T")

# How long a read may spend checking broker reachability while not connected.
PROBE_TIMEOUT_S = 1.0
# A read consumes in slices this long, so a queued ack or close waits at most this.
READ_SLICE_S = 0.1
# How often the owner thread wakes while no job is queued (lag refresh).
IDLE_TICK_S = 0.5
# Acked batches wait at most this long for the commit that covers them (module doc).
COMMIT_INTERVAL_S = 0.1
# After a failed commit, the next one waits this long (a refusal repeats until the group
# settles, and so would the warning).
COMMIT_RETRY_S = 1.0
# An ack waits at most this long for the answer to its commit; the commit itself goes on
# (librdkafka answers every commit; a deferred one can take up to session.timeout.ms plus
# socket.timeout.ms) and later answers are counted by the acks after it.
COMMIT_WAIT_S = 10.0
# A batch is checked against rebalance events still queued in the consumer when the consumer
# was last polled longer ago than this (a long delivery).
FRESH_S = 1.0
# Records consumed while serving those events are kept for the next read, up to this many.
STASH_LIMIT = 10_000
# A commit waiting for its answer longer than this makes the source not ready.
SLOW_COMMIT_S = 2.0
# How often consumer lag is refreshed from the broker's offsets (while the brokers are
# reachable), and how long each look-up may take; the first one that fails ends the round.
LAG_REFRESH_S = 5.0
LAG_TIMEOUT_S = 5.0
# How long close() waits for the consumer thread to finish what it is doing (consumer.close()
# leaves the group, which waits on a coordinator) before leaving without it, and how much of
# that its last commit may wait for an answer.
CLOSE_WAIT_S = 5.0
CLOSE_COMMIT_WAIT_S = 3.0
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
class _Chunk:
    """The records one consume() call returned, with the ledger generation at its return."""

    generation: int
    messages: list[Any]


@dataclass(slots=True, eq=False)
class _Waiter:
    """An ack() waiting for the answer to the commit that covers its batch."""

    future: asyncio.Future[int]
    loop: asyncio.AbstractEventLoop
    deadline: float
    commit: int | None = None  # the commit it waits for; None until one is sent


@dataclass(slots=True)
class _Commit:
    """A commit handed to the consumer, waiting for its answer."""

    offsets: dict[Partition, int]
    sent: float
    forced: bool  # made at a revocation or close: it does not hold back the next one


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
        # Written only on the owner thread.
        self._ledger = OffsetLedger()
        self._stash: list[_Chunk] = []  # records consumed while serving events, read first
        self._waiters: list[_Waiter] = []
        self._commits: dict[int, _Commit] = {}  # by ledger commit id, awaiting their answer
        self._last_commit = 0.0
        self._commit_not_before = 0.0  # after a failed commit
        self._batch_max_bytes = batch_max_bytes
        self._record_bytes = 0  # value bytes per record in the last consume (0: not known)
        self._connected = False
        self._unreachable_since: float | None = None
        self._lost_since: float | None = None
        self._settings: dict[str, Any] = {}
        self._next_lag = 0.0
        self._closed = False
        self._errors = ErrorThrottle(logger)
        # Written on the owner thread, read from the loop (whole objects, replaced).
        self._owned: Mapping[Partition, int] = {}  # the ledger's tenures, for still_owned()
        self._last_consume = 0.0
        self._recheck = False  # a commit was refused as from an evicted member
        # Why the brokers refuse this consumer (credentials, certificates), until it connects.
        self._refused: str | None = None

    # --- lifecycle ---

    async def start(self) -> None:
        """Create the consumer and join the group; returns without waiting for brokers."""
        settings: dict[str, Any] = consumer_settings(self.config, self._where)
        settings |= {
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
        self._owner.start(idle=self._on_idle, tick=self._idle_wait)
        await self._owner.submit(self._create, settings)

    def _recreate(self, why: str) -> None:
        """Replace a consumer that is stuck (RECREATE_AFTER_S, REJOIN_AFTER_S), on the owner
        thread: what it read and did not commit is read again through the new one."""
        old, self._consumer = self._consumer, None
        logger.warning(
            "kafka source: %s; replacing the consumer (new connections and a new group membership)",
            why,
        )
        self._forget(list(self._owned), "given up with the old consumer")
        self._give_up_commits()
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
        """Leave the group, committing what is handled first."""
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
        for w in self._waiters:  # left without the consumer: not committed, read again
            w.loop.call_soon_threadsafe(_settle, w.future, 0, None)

    def _close_consumer(self) -> None:
        self._commit_due(force=True)
        deadline = time.monotonic() + CLOSE_COMMIT_WAIT_S
        while self._commits and time.monotonic() < deadline:
            self._consume(1, READ_SLICE_S)  # serves the answer; the record is not delivered
        consumer, self._consumer = self._consumer, None
        self._stash.clear()
        self._give_up_commits()
        consumer.close()
        if self._owned:
            self._forget(list(self._owned), "left with the consumer")

    def is_ready(self) -> bool:
        if self._consumer is None or self._closed or not self._connected:
            return False
        return self._commit_wait() < SLOW_COMMIT_S

    def not_ready_reason(self) -> str:
        """Why `is_ready()` is False, in words for /readyz ("" when ready)."""
        if self._consumer is None or self._closed:
            return "kafka source not started"
        if not self._connected:
            refused = f": {self._refused}" if self._refused else ""
            return f"kafka brokers {','.join(self.config.brokers)} unreachable{refused}"
        waited = self._commit_wait()
        if waited >= SLOW_COMMIT_S:
            return f"kafka commit waiting on the broker for {waited:.0f}s"
        return ""

    def refused_reason(self) -> str:
        """Why the brokers refuse this consumer while it is not connected ("" otherwise)."""
        if self._connected or self._closed:
            return ""
        return f"kafka source: {self._refused}" if self._refused else ""

    def _commit_wait(self) -> float:
        """How long the oldest commit has waited for its answer (0 when none waits)."""
        commits = list(self._commits.values())  # read from the loop too
        if not commits:
            return 0.0
        return max(0.0, time.monotonic() - min(c.sent for c in commits))

    def stalled_for(self) -> float:
        """Seconds the consumer thread has been stuck inside one call (for /livez)."""
        return self._owner.stalled_for()

    @property
    def exhausted(self) -> bool:
        return False

    @property
    def assignment(self) -> frozenset[Partition]:
        """The partitions this member owns now (for logs and tests)."""
        return frozenset(self._owned)

    # --- reading ---

    async def read(self, max_messages: int, timeout_s: float) -> SourceBatch:
        if self._consumer is None:
            raise KafkaSourceError("kafka source: read() before start() or after close()")
        return await self._owner.submit(self._read, max_messages, timeout_s)

    def _consume(self, max_messages: int, timeout_s: float) -> _Chunk:
        messages = self._consumer.consume(num_messages=max_messages, timeout=timeout_s)
        self._last_consume = time.monotonic()
        self._owner.beat()
        # After the call: the rebalance callbacks it served count (the ledger's module doc).
        return _Chunk(self._ledger.generation, messages)

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
        chunks = self._from_stash(max_messages)
        count = sum(len(c.messages) for c in chunks)
        size = sum(sum(map(len, c.messages)) for c in chunks)  # len(record): its value's bytes
        max_bytes = self._batch_max_bytes
        # Consume in slices: a job queued meanwhile (an ack, close) ends the read early.
        first = True
        while count < max_messages and size < max_bytes:
            left = max(0.0, deadline - time.monotonic())
            hurry = self._owner.jobs_waiting
            if not first and (left <= 0 or hurry):
                break
            first = False
            wait = 0.0 if hurry else min(left, READ_SLICE_S)
            # No more records than the byte budget is likely to take (records of the size
            # seen last), so large values are not consumed ahead into the stash.
            want = max_messages - count
            if self._record_bytes:
                want = max(1, min(want, (max_bytes - size) // self._record_bytes))
            chunk = self._consume(want, wait)
            if chunk.messages:
                grown = sum(map(len, chunk.messages))
                self._record_bytes = max(1, grown // len(chunk.messages))
                size += grown
                count += len(chunk.messages)
                chunks.append(chunk)
            self._commit_due()
        if size > max_bytes and count > 1:
            chunks = self._within_bytes(chunks, max_bytes)
        return self._batch(chunks)

    def _from_stash(self, max_messages: int) -> list[_Chunk]:
        """Up to `max_messages` records from the stash, oldest first."""
        taken: list[_Chunk] = []
        while self._stash and max_messages > 0:
            chunk = self._stash[0]
            if len(chunk.messages) <= max_messages:
                taken.append(self._stash.pop(0))
                max_messages -= len(chunk.messages)
            else:
                taken.append(_Chunk(chunk.generation, chunk.messages[:max_messages]))
                del chunk.messages[:max_messages]
                max_messages = 0
        return taken

    def _within_bytes(self, chunks: list[_Chunk], max_bytes: int) -> list[_Chunk]:
        """The longest prefix whose values fit `max_bytes` (at least one record); the rest
        is read first next time."""
        size = 0
        for i, chunk in enumerate(chunks):
            for n, msg in enumerate(chunk.messages):
                size += len(msg)
                if size > max_bytes:
                    cut = 1 if i == 0 and n == 0 else n
                    rest = [_Chunk(chunk.generation, chunk.messages[cut:]), *chunks[i + 1 :]]
                    self._stash[:0] = [c for c in rest if c.messages]
                    head = _Chunk(chunk.generation, chunk.messages[:cut])
                    return [*chunks[:i], *([head] if head.messages else [])]
        return chunks

    def _batch(self, chunks: list[_Chunk]) -> SourceBatch:
        try:
            return self._batch_of(chunks)
        except BaseException:
            # Consumed, and neither delivered nor taken into the ledger: read first next time
            # (the stash), so no later batch's commit passes them.
            self._stash[:0] = chunks
            raise

    def _batch_of(self, chunks: list[_Chunk]) -> SourceBatch:
        datums: list[Datum] = []
        malformed: list[tuple[str, str]] = []
        read: list[tuple[int, dict[Partition, tuple[int, int]]]] = []
        bounds: list[tuple[int, int]] = []  # each chunk's datums
        for chunk in chunks:
            start = len(datums)
            read.append((chunk.generation, self._convert(chunk.messages, datums, malformed)))
            bounds.append((start, len(datums)))
        if datums:
            self._set_connected(True)
        _report(
            self.metrics.malformed_key_headers,
            malformed,
            "with malformed key headers, record key used instead",
        )
        token, refused = self._ledger.read(read)
        if any(refused):
            datums = _without_refused(datums, bounds, refused)
        return SourceBatch(datums=datums, token=token)

    def _convert(
        self, messages: list[Any], datums: list[Datum], malformed: list[tuple[str, str]]
    ) -> dict[Partition, tuple[int, int]]:
        """Append the records of `messages` to `datums` (and the malformed key headers'
        reasons to `malformed`); by partition, the offset after the last and the count."""
        next_offsets: dict[Partition, int] = {}
        counts: dict[Partition, int] = {}
        # (id, why) of the records delivered other than as written, by kind.
        clamped: list[tuple[str, str]] = []
        unconverted: list[tuple[str, str]] = []
        to_datum = self._datum
        add = datums.append
        config = self.config
        # The C module converts the usual records; what it leaves comes back as messages.
        try:
            converted = convert_records(
                messages, config.keys_from_headers, config.keys_header, next_offsets, counts
            )
        except Exception:
            logger.exception(
                "kafka source: the C conversion failed on a batch of %d record(s); converted "
                "in Python instead",
                len(messages),
            )
            next_offsets.clear()
            counts.clear()
            converted = messages
        for msg in converted:
            if type(msg) is RecordDatum:
                add(msg)
                continue
            err = msg.error()
            if err is not None:
                self._on_record_error(err, msg)
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if topic is None or partition is None or offset is None:
                self._errors.warning(
                    "no position",
                    f"kafka source: a record without a position ({topic}[{partition}] at "
                    f"offset {offset}) is not delivered",
                )
                continue
            datum_id = f"{topic}:{partition}:{offset}"
            try:
                datum, reason = to_datum(msg, datum_id)
            except Exception as exc:
                datum = self._unconverted(msg, datum_id, exc)
                unconverted.append((datum_id, datum.headers[SOURCE_ERROR_HEADER]))
            else:
                if reason is not None:
                    malformed.append((datum_id, reason))
                if datum.event_time is LATEST_EVENT_TIME:  # utc_from_ms clamped it
                    clamped.append((datum_id, f"timestamp {msg.timestamp()[1]} ms"))
            add(datum)
            tp = (topic, partition)
            # The highest + 1: records of the same partition may have been converted in C.
            next_offsets[tp] = max(offset + 1, next_offsets.get(tp, 0))
            counts[tp] = counts.get(tp, 0) + 1
        m = self.metrics
        _report(
            m.records_altered.labels(kind=TIMESTAMP_CLAMPED),
            clamped,
            f"timestamped after {LATEST_EVENT_TIME.isoformat(timespec='milliseconds')}, "
            "delivered with that event time",
        )
        _report(
            m.records_altered.labels(kind=UNCONVERTIBLE),
            unconverted,
            "could not be converted, delivered without their headers (header "
            f"{SOURCE_ERROR_HEADER} says why)",
        )
        return {tp: (offset, counts[tp]) for tp, offset in next_offsets.items()}

    def _datum(self, msg: Any, datum_id: str) -> tuple[RecordDatum, str | None]:
        """One record as a Datum, and the reason its key headers were malformed (if so).

        Runs once per record: the keys are decided here, the headers stay bytes until a sink
        reads them (kafka_record.py); well-formed split key headers take a fast path, anything
        else goes through `_headers_for_keys` and the codec. Raises when the record cannot be
        converted (`_unconverted` then stands in).
        """
        headers = read_headers(msg)
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
        return record_datum(datum_id, msg.value() or b"", keys, _event_time(msg), raw), reason

    @staticmethod
    def _unconverted(msg: Any, datum_id: str, exc: Exception) -> RecordDatum:
        """The Datum of a record `_datum` could not convert: its value, record key and event
        time, and instead of its headers (not read again: module doc) the reason."""
        reason = f"record not converted ({type(exc).__name__}: {exc}); delivered without its "
        reason += "headers"
        record_key = msg.key()
        keys = () if record_key is None else (record_key.decode("utf-8", errors="replace"),)
        raw = {SOURCE_ERROR_HEADER: reason.encode()}
        return record_datum(datum_id, msg.value() or b"", keys, _event_time(msg), raw)

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

        When the consumer has not been polled for `FRESH_S` (a long delivery), or a commit
        was refused as from an evicted member, rebalance events may wait unserved in its
        queue: they are served first, on the owner thread.
        """
        token = batch.token
        if not isinstance(token, ReadToken) or not datums:
            return datums
        stale = time.monotonic() - self._last_consume > FRESH_S
        if (stale or self._recheck) and self._consumer is not None:
            with contextlib.suppress(KafkaSourceError):
                await self._owner.submit(self._serve_events, STASH_LIMIT)
        return self._owned_now(datums, token)

    def _owned_now(self, datums: list[Datum], token: ReadToken) -> list[Datum]:
        keep = still_owned(token, self._owned)
        if len(keep) == len(token.tenures):
            return datums
        kept: list[Datum] = []
        dropped: list[str] = []
        for d in datums:
            if _partition_of(d.id) in keep:
                kept.append(d)
            else:
                dropped.append(d.id)
        if dropped:
            logger.warning(
                "kafka source: not delivering %d message(s) of %s: revoked since they were read; "
                "whoever owns the partition now reads them again from the committed offset",
                len(dropped),
                _ranges(dropped),
                extra=batch_fields(dropped),
            )
        return kept

    def _serve_events(self, limit: int) -> None:
        """Poll once without waiting, keeping up to `limit` records that arrive for the next
        read: the rebalance and commit callbacks queued are served."""
        self._recheck = False
        room = min(limit, STASH_LIMIT - sum(len(c.messages) for c in self._stash))
        if sum(sum(map(len, c.messages)) for c in self._stash) >= self._batch_max_bytes:
            room = min(room, 1)  # large values: serve the events, hold little more
        if room > 0:
            chunk = self._consume(room, 0)
            if chunk.messages:
                self._stash.append(chunk)

    # --- acknowledging and committing ---

    async def ack(self, batch: SourceBatch) -> int:
        """Mark `batch` handled and commit; how many handled records the commit it joined
        confirmed (module doc)."""
        token = batch.token
        if token is None:
            return 0  # an empty batch has nothing to commit
        if not isinstance(token, ReadToken):
            raise TypeError(f"kafka source: ack() got a batch it did not read ({token!r})")
        if self._consumer is None or self._closed:
            logger.warning(
                "kafka source: batch acked after close, not committed (it will be redelivered)",
                extra=batch_fields(_ids(batch.datums)),
            )
            return 0
        del batch  # not kept alive while the commit waits
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[int] = loop.create_future()
        submitted = self._owner.submit(self._ack, token, committed, loop)
        try:
            await submitted
        except KafkaSourceError:
            return 0
        return await committed

    def _ack(
        self, token: ReadToken, committed: asyncio.Future[int], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._ledger.handled(token)
        self._waiters.append(_Waiter(committed, loop, time.monotonic() + COMMIT_WAIT_S))
        self._commit_due()

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
        token = batch.token
        if token is None:
            return 0
        if not isinstance(token, ReadToken):
            raise TypeError(f"kafka source: commit_with() got a batch it did not read ({token!r})")
        if self._consumer is None or self._closed:
            raise BatchMustRestart("kafka source: the consumer is gone; the batch is redelivered")
        try:
            ends, group = await self._owner.submit(self._transaction_offsets, token)
        except KafkaSourceError as err:
            raise BatchMustRestart(f"kafka source: {err}") from None
        written = {_partition_of(d.id) for d in delivered}
        lost = written - set(ends)
        if lost:
            raise BatchMustRestart(
                f"kafka source: {_names_of(lost)} changed owner during the batch; its records "
                "go to the new owner"
            )
        offsets = {p: ends[p] for p in written}
        await commit(offsets, group)
        try:
            return await self._owner.submit(self._committed_in_transaction, token, offsets)
        except KafkaSourceError:
            return 0  # committed with the transaction; only the count is lost

    def _transaction_offsets(self, token: ReadToken) -> tuple[dict[Partition, int], object]:
        consumer = self._consumer
        if consumer is None:
            raise KafkaSourceError("the consumer is gone")
        return self._ledger.next_ends(token), consumer.consumer_group_metadata()

    def _committed_in_transaction(self, token: ReadToken, offsets: dict[Partition, int]) -> int:
        self._ledger.handled(token)
        owned = self._ledger.owned()
        kept = {p: o for p, o in offsets.items() if owned.get(p) == token.tenures[p]}
        if not kept:
            return 0
        return self._ledger.commit_answered(self._ledger.commit_sent(kept))

    def _idle_wait(self) -> float:
        """How long the owner thread may wait for a job: a commit's answer is served soon,
        and acked batches are committed when the interval has passed."""
        if self._consumer is None:
            return IDLE_TICK_S
        if self._commits:
            return COMMIT_INTERVAL_S
        if self._waiters:
            due = max(self._last_commit + COMMIT_INTERVAL_S, self._commit_not_before)
            return min(IDLE_TICK_S, max(0.0, due - time.monotonic()))
        return IDLE_TICK_S

    def _commit_due(self, *, force: bool = False) -> None:
        """Commit what is handled when a commit is due (or `force`: a revocation, close)."""
        now = time.monotonic()
        self._settle([w for w in self._waiters if w.deadline <= now])
        if self._consumer is None:  # gone (a replacement that failed): read again later
            self._settle(self._waiters)
            return
        if not force:
            if any(not c.forced for c in self._commits.values()):
                return  # one at a time: its answer lets the next one go
            if now < max(self._last_commit + COMMIT_INTERVAL_S, self._commit_not_before):
                return
        offsets = self._ledger.committable()
        if not offsets:
            self._settle([w for w in self._waiters if w.commit is None])
            return
        self._send(offsets, forced=force)

    def _send(self, offsets: dict[Partition, int], *, forced: bool) -> None:
        """Hand a commit of `offsets` to the consumer; its answer comes to `_on_commit`."""
        unattached = [w for w in self._waiters if w.commit is None]
        if not self._connected:
            # librdkafka would hold it until a coordinator answers; the first commit after the
            # brokers return covers these offsets.
            self._errors.warning(
                "commit-unreachable",
                f"kafka source: brokers unreachable, commit of {_offsets_text(offsets)} not "
                "attempted; the next one after they answer covers it",
            )
            self._settle(unattached)
            return
        commit_id = self._ledger.commit_sent(offsets)
        now = time.monotonic()
        self._commits[commit_id] = _Commit(dict(offsets), now, forced)
        self._last_commit = now
        for w in unattached:
            w.commit = commit_id
        request = [KafkaPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        try:
            self._consumer.commit(offsets=request, asynchronous=True)
        except KafkaException as exc:
            self._answered(commit_id, set(offsets), exc.args[0] if exc.args else exc)

    def _on_commit(self, err: Any, partitions: list[Any]) -> None:
        """librdkafka's answer to a commit (on the owner thread, inside a consume)."""
        answered = {(tp.topic, tp.partition): tp.offset for tp in partitions or ()}
        commit_id = next((i for i, c in self._commits.items() if c.offsets == answered), None)
        if commit_id is None:
            return  # not one waiting here (given up when the consumer was replaced)
        if err is not None:
            self._answered(commit_id, set(answered), err)
            return
        refused = [tp for tp in partitions if tp.error is not None]
        failed = {(tp.topic, tp.partition) for tp in refused}
        self._answered(commit_id, failed, refused[0].error if refused else None)

    def _answered(self, commit_id: int, failed: set[Partition], err: Any) -> None:
        commit = self._commits.pop(commit_id)
        confirmed = self._ledger.commit_answered(commit_id, failed)
        if failed:
            self._commit_failed(err, {p: commit.offsets[p] for p in failed})
        else:
            self._set_connected(True)
        waiters = [w for w in self._waiters if w.commit == commit_id]
        if waiters:
            self._settle(waiters, confirmed)
        elif confirmed:
            # Their acks were answered already (a retried commit, one made at a revocation):
            # counted here, as the forwarder counts what ack() returns.
            self.metrics.acked.inc(confirmed)

    def _give_up_commits(self) -> None:
        """The consumer goes away: the commits it was given stay unanswered here (the broker
        may have taken them; what they covered stays handled in ended tenures only)."""
        for commit_id, commit in list(self._commits.items()):
            del self._commits[commit_id]
            self._ledger.commit_answered(commit_id, set(commit.offsets))
        self._settle(self._waiters)

    def _settle(self, waiters: list[_Waiter], confirmed: int = 0) -> None:
        """Answer these acks; the first one with the `confirmed` records of their commit."""
        if not waiters:
            return
        self._waiters = [w for w in self._waiters if w not in waiters]
        for w in waiters:
            w.loop.call_soon_threadsafe(_settle, w.future, confirmed, None)
            confirmed = 0

    def _commit_failed(self, err: Any, offsets: dict[Partition, int]) -> None:
        self.metrics.commit_failures.inc()
        self._commit_not_before = time.monotonic() + COMMIT_RETRY_S
        code = err.code() if isinstance(err, KafkaError) else None
        if code in _EVICTED:
            # Out of the group: the lost partitions' callback waits in the consumer's queue;
            # served before the next delivery, it ends their tenures.
            self._recheck = True
        text = f"{err.name()}: {err.str()}" if isinstance(err, KafkaError) else str(err)
        logger.warning(
            "kafka source: commit failed (%s) for %s; those records stay uncommitted: a "
            "later commit covers them, or whoever owns the partition next reads them again",
            text,
            _offsets_text(offsets),
        )

    # --- lag ---

    def _on_idle(self) -> None:
        if self._consumer is not None:
            if self._commits:
                self._serve_events(1)  # commit answers are queued ahead of the records
            self._commit_due()
            self._refresh_lag_when_due()

    def _refresh_lag_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_lag or not self._owned or not self._connected:
            return
        self._next_lag = now + LAG_REFRESH_S
        owned = sorted(self._owned)
        unknown = [KafkaPartition(t, p) for t, p in owned if self._ledger.committed((t, p)) is None]
        if unknown:
            try:
                for tp in self._consumer.committed(unknown, timeout=LAG_TIMEOUT_S):
                    if tp.error is None and tp.offset >= 0:
                        self._ledger.learn_committed((tp.topic, tp.partition), tp.offset)
            except KafkaException:
                return
        for topic, partition in owned:
            self._owner.beat()
            try:
                low, high = self._consumer.get_watermark_offsets(
                    KafkaPartition(topic, partition), timeout=LAG_TIMEOUT_S, cached=False
                )
            except KafkaException:
                return
            if high is None or high < _NO_OFFSET:
                continue
            committed = self._ledger.committed((topic, partition))
            self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(
                max(0, high - (low if committed is None else committed))
            )

    def _drop_lag(self, topic: str, partition: int) -> None:
        with contextlib.suppress(KeyError):  # never set for this partition
            self.metrics.consumer_lag.remove(topic, str(partition))

    # --- rebalance and connectivity callbacks (all on the owner thread) ---

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self._set_connected(True)
        self._lost_since = None
        # librdkafka reads them from the group's committed offset.
        self._ledger.assign(_keys(partitions))
        self._owned = self._ledger.owned()
        self._next_lag = 0.0  # report lag for the new partitions at the next chance
        logger.info(
            "kafka source: assigned %s; now own %d partition(s)",
            _names(partitions) or "nothing",
            len(self._owned),
        )

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        # Still a member with these partitions: what is handled is committed before they go.
        gone = _keys(partitions)
        offsets = self._ledger.committable(gone)
        if offsets and self._consumer is not None:
            self._send(offsets, forced=True)
        self._forget(gone, "revoked")

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        self._lost_since = time.monotonic()
        self._forget(_keys(partitions), "lost")

    def _forget(self, gone: list[Partition], how: str) -> None:
        ended = self._ledger.end(gone)
        self._owned = self._ledger.owned()
        if self._stash:
            out = set(gone)
            for chunk in self._stash:
                chunk.messages[:] = [
                    m for m in chunk.messages if (m.topic(), m.partition()) not in out
                ]
            self._stash[:] = [c for c in self._stash if c.messages]
        for topic, partition in gone:
            self._drop_lag(topic, partition)
        logger.info(
            "kafka source: %s %s%s",
            how,
            ", ".join(f"{t}[{p}]" for t, p in gone) or "nothing",
            f"; read, not committed (read again from the group's committed offset): "
            f"{_ended_text(ended)}"
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


def _report(counter: Any, found: list[tuple[str, str]], what: str) -> None:
    """Count and log, once per batch, the records `found` (id, why) that were `what`."""
    if not found:
        return
    counter.inc(len(found))
    first_id, why = found[0]
    logger.warning(
        "kafka source: %d record(s) %s; first %s: %s",
        len(found),
        what,
        first_id,
        why,
        extra=batch_fields([i for i, _ in found]),
    )


def _event_time(msg: Any) -> datetime:
    """The record's timestamp; the read time when it has none or a negative one (Kafka's
    timestamps are not negative: -1 means none)."""
    ts_type, ts_ms = msg.timestamp()
    if ts_type == TIMESTAMP_NOT_AVAILABLE or ts_ms < 0:
        return datetime.now(UTC)
    return utc_from_ms(ts_ms)


def _coordinates(datum_id: str) -> tuple[str, int, int]:
    topic, partition, offset = datum_id.rsplit(":", 2)
    return topic, int(partition), int(offset)


def _partition_of(datum_id: str) -> Partition:
    topic, partition, _ = _coordinates(datum_id)
    return topic, partition


def _ids(datums: Iterable[Datum]) -> list[str]:
    return [d.id for d in datums]


def _ranges(ids: Iterable[str]) -> str:
    """`t[0] 100..199, t[1] 5` for datum ids: each partition's lowest and highest offset."""
    spans: dict[Partition, tuple[int, int]] = {}
    for i in ids:
        topic, partition, offset = _coordinates(i)
        low, high = spans.get((topic, partition), (offset, offset))
        spans[(topic, partition)] = (min(low, offset), max(high, offset))
    return ", ".join(
        f"{t}[{p}] {lo}" if lo == hi else f"{t}[{p}] {lo}..{hi}"
        for (t, p), (lo, hi) in sorted(spans.items())
    )


def _offsets_text(offsets: Mapping[Partition, int]) -> str:
    return ", ".join(f"{t}[{p}] at {o}" for (t, p), o in sorted(offsets.items()))


def _ended_text(ended: Mapping[Partition, Ended]) -> str:
    return ", ".join(
        f"{t}[{p}] read to {e.read_to}, "
        + (f"committed to {e.committed}" if e.committed >= 0 else "nothing committed")
        for (t, p), e in sorted(ended.items())
    )


def _without_refused(
    datums: list[Datum], bounds: list[tuple[int, int]], refused: list[set[Partition]]
) -> list[Datum]:
    """`datums` without those of the partitions the ledger refused in each chunk."""
    kept: list[Datum] = []
    dropped: list[str] = []
    for (start, end), gone in zip(bounds, refused, strict=True):
        for d in datums[start:end]:
            if gone and _partition_of(d.id) in gone:
                dropped.append(d.id)
            else:
                kept.append(d)
    logger.warning(
        "kafka source: not delivering %d record(s) of %s: returned before the partition's "
        "current assignment began (a rebalance during the read); read again from the group's "
        "committed offset",
        len(dropped),
        _ranges(dropped),
        extra=batch_fields(dropped),
    )
    return kept


def _keys(partitions: list[Any]) -> list[Partition]:
    return [(tp.topic, tp.partition) for tp in partitions]


def _nothing() -> None:
    """A no-op, run on a thread to wait for the work queued there before it."""


def _idle_tick() -> float:
    return IDLE_TICK_S


def _names(partitions: list[Any]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)


def _names_of(partitions: Iterable[Partition]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(partitions))


__all__ = ["KafkaSource", "KafkaSourceError"]
