"""KafkaSource: a consumer-group member that turns records into Datums and commits only acks.

Separate from the forwarder because everything librdkafka-specific lives here: the consumer
runs on one dedicated thread (every read, and so every rebalance callback, happens on it,
never on the event loop; commits run on a second one), offsets are stored and committed only
by `ack()`, and the partitions this member owns are tracked so nothing is committed for a
partition it lost.

Guarantees and choices:
- `ack(batch)` commits (synchronously, on a thread of its own, so that the commit's round trip
  overlaps the next read), the batch's highest offset + 1 per partition, and only
  once every batch read before it was acked too (acks arriving out of order wait), so nothing
  unhandled is ever covered by a commit.
- Rebalance: a revoked or lost partition is dropped from every pending batch; its datums are
  redelivered to the new owner (at-least-once), never committed by us.
- A failed commit (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, broker
  down...) is logged and counted in `commit_failures`, not raised: the next successful commit
  covers the batch (commits are cumulative), or the batch is redelivered after a rebalance or
  restart.
- Brokers unreachable (also at start): logged, retried by librdkafka, `is_ready()` is False
  until the consumer has reached a broker again.
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
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from sink_runtime.config import KafkaSourceConfig
from sink_runtime.config.constants import KEY_LEN_HEADER
from sink_runtime.dataplane.endpoints import SourceBatch
from sink_runtime.dataplane.kafka_client import (
    ErrorThrottle,
    LibrdkafkaLog,
    consumer_settings,
    redacted,
)
from sink_runtime.dataplane.keyheaders import (
    KeyHeaders,
    KeysFound,
    MalformedKeyHeaders,
    NoKeyHeaders,
    key_header_name,
)
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.sources.kafka_record import (
    RawHeaders,
    RecordDatum,
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
# librdkafka signals "no such partition" with this offset value in watermark answers.
_NO_OFFSET = 0
_NO_RAW: RawHeaders = MappingProxyType({})


class KafkaSourceError(RuntimeError):
    """The consumer hit an error it cannot recover from (librdkafka says fatal)."""


@dataclass(slots=True)
class BatchToken:
    """The offsets a batch will commit, by partition: highest offset read + 1."""

    seq: int
    next_offsets: dict[Partition, int]
    acked: bool = False


@dataclass(slots=True)
class _Decoded:
    headers: dict[str, str]
    not_utf8: frozenset[str] = field(default_factory=frozenset)


def decode_headers(raw: Iterable[tuple[str, bytes | None]] | None) -> _Decoded:
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


class KafkaSource:
    """Reads `config.topics` as member of `config.consumer_group` (see the module doc)."""

    def __init__(
        self, config: KafkaSourceConfig, *, metrics: Metrics, where: str = "source"
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._where = where
        self._codec = KeyHeaders(keys_header=config.keys_header)
        # One thread owns the consumer: reads, and so every rebalance callback, happen on it.
        # Commits run on a second thread, so a commit's round trip to the broker overlaps the
        # next read instead of delaying it. Two locks, always taken in this order:
        # `_commit_lock` is held by a commit until the broker answered and by the rebalance
        # callbacks, so a revocation waits for an in-flight commit, as if both ran on one
        # thread; `_lock` guards what both threads touch (the assignment, the pending batches'
        # offsets) and is only ever held briefly, so a read never waits for a commit.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-source")
        self._commit_thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="kafka-source-commit"
        )
        self._commit_lock = threading.Lock()
        self._lock = threading.Lock()
        self._consumer: Any = None
        self._assigned: set[Partition] = set()
        self._pending: list[BatchToken] = []
        self._seq = 0
        self._connected = False
        self._closed = False
        self._errors = ErrorThrottle(logger)

    # --- lifecycle ---

    async def start(self) -> None:
        """Create the consumer and join the group; returns without waiting for brokers."""
        settings: dict[str, Any] = consumer_settings(self.config, self._where)
        settings |= {"error_cb": self._on_error, "logger": rdkafka_logger}
        logger.info(
            "kafka source: joining group %s on %s for topics %s",
            self.config.consumer_group,
            ",".join(self.config.brokers),
            ",".join(self.config.topics),
            extra={"settings": redacted(settings)},
        )
        await self._run(self._create, settings)

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
        loop = asyncio.get_running_loop()
        # A commit still running (the forwarder was cancelled) ends before the consumer does.
        await loop.run_in_executor(self._commit_thread, _nothing)
        self._commit_thread.shutdown(wait=False)
        if self._consumer is not None:
            await self._run(self._consumer.close)
        self._thread.shutdown(wait=False)
        self._consumer = None
        for topic, partition in self._assigned:
            self._drop_lag(topic, partition)

    def is_ready(self) -> bool:
        return self._consumer is not None and self._connected and not self._closed

    @property
    def exhausted(self) -> bool:
        return False

    @property
    def assignment(self) -> frozenset[Partition]:
        """The partitions this member owns now (for logs and tests)."""
        with self._lock:
            return frozenset(self._assigned)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, fn, *args)

    # --- reading ---

    async def read(self, max_messages: int, timeout_s: float) -> SourceBatch:
        if self._consumer is None:
            raise KafkaSourceError("kafka source: read() before start() or after close()")
        return await self._run(self._read, max_messages, timeout_s)

    def _read(self, max_messages: int, timeout_s: float) -> SourceBatch:
        deadline = time.monotonic() + timeout_s
        if not self._connected:
            self._probe(min(PROBE_TIMEOUT_S, timeout_s))
        remaining = max(0.0, deadline - time.monotonic())
        messages = self._consumer.consume(num_messages=max_messages, timeout=remaining)
        datums: list[Datum] = []
        partitions: dict[str, int] = {}
        next_offsets: dict[Partition, int] = {}
        malformed: list[tuple[str, str]] = []
        to_datum = self._datum
        add = datums.append
        for msg in messages:
            err = msg.error()
            if err is not None:
                self._on_record_error(err, msg)
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            datum, reason = to_datum(msg, f"{topic}:{partition}:{offset}")
            if reason is not None:
                malformed.append((datum.id, reason))
            add(datum)
            partitions[datum.id] = partition
            next_offsets[(topic, partition)] = offset + 1
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
            token = BatchToken(self._seq, next_offsets)
            with self._lock:
                self._pending.append(token)
        return SourceBatch(datums=datums, token=token, partitions=partitions)

    def _datum(self, msg: Any, datum_id: str) -> tuple[RecordDatum, str | None]:
        """One record as a Datum, and the reason its key headers were malformed (if so).

        Runs once per record: the keys are decided here, the headers stay bytes until a sink
        reads them (kafka_record.py); well-formed split key headers take a fast path, anything
        else goes through `decode_headers` and the codec.
        """
        headers = msg.headers()
        record_key = msg.key()
        fallback_keys: tuple[str, ...] = (
            () if record_key is None else (record_key.decode("utf-8", errors="replace"),)
        )
        keys = fallback_keys
        reason: str | None = None
        raw: RawHeaders = _NO_RAW
        if headers:
            raw = dict(headers)  # the last value of a repeated name wins
            if self.config.keys_from_headers:
                found = _split_keys(raw)
                if found is not None:
                    keys = found
                else:
                    keys, reason = self._keys_from_headers(decode_headers(raw.items()), keys)
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

    # --- acknowledging ---

    async def ack(self, batch: SourceBatch) -> None:
        """Commit `batch` (and any earlier acked batches) for the partitions still owned."""
        token = batch.token
        if token is None:
            return  # an empty batch has nothing to commit
        if not isinstance(token, BatchToken):
            raise TypeError(f"kafka source: ack() got a batch it did not read ({token!r})")
        if self._consumer is None:
            logger.warning(
                "kafka source: batch acked after close, not committed (it will be redelivered)",
                extra=batch_fields([d.id for d in batch.datums]),
            )
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._commit_thread, self._ack, token, batch)

    def _ack(self, token: BatchToken, batch: SourceBatch) -> None:
        # Holding `_commit_lock` from choosing the offsets to the broker's answer keeps a
        # revocation from slipping in between: no offset of a revoked partition is committed.
        with self._commit_lock:
            with self._lock:
                offsets = self._release(token)
                owned = {tp: o for tp, o in offsets.items() if tp in self._assigned}
            if offsets:
                self._commit(offsets, owned, batch)

    def _release(self, token: BatchToken) -> dict[Partition, int]:
        """Mark `token` acked; the offsets of the acked batches at the head of the queue.

        Empty while an earlier batch is still in flight: it is committed together later.
        """
        token.acked = True
        offsets: dict[Partition, int] = {}
        while self._pending and self._pending[0].acked:
            done = self._pending.pop(0)
            for tp, offset in done.next_offsets.items():
                offsets[tp] = max(offset, offsets.get(tp, 0))
        return offsets

    def _commit(
        self, offsets: dict[Partition, int], owned: dict[Partition, int], batch: SourceBatch
    ) -> None:
        if len(owned) < len(offsets):
            lost = sorted(set(offsets) - set(owned))
            logger.info(
                "kafka source: not committing %s: no longer assigned here (redelivered to "
                "the new owner)",
                ", ".join(f"{t}[{p}]" for t, p in lost),
            )
        if not owned:
            return
        request = [KafkaPartition(t, p, o) for (t, p), o in sorted(owned.items())]
        try:
            result = self._consumer.commit(offsets=request, asynchronous=False)
        except KafkaException as exc:
            self._commit_failed(exc.args[0] if exc.args else exc, batch)
            return
        failed = [tp for tp in result or () if tp.error is not None]
        if failed:
            self._commit_failed(failed[0].error, batch)
        for tp in result or ():
            if tp.error is None:
                self._update_lag(tp.topic, tp.partition, tp.offset)

    def _commit_failed(self, err: Any, batch: SourceBatch) -> None:
        self.metrics.commit_failures.inc()
        text = f"{err.name()}: {err.str()}" if isinstance(err, KafkaError) else str(err)
        logger.warning(
            "kafka source: commit failed (%s); the batch stays uncommitted and is "
            "redelivered unless a later commit covers it",
            text,
            extra=batch_fields([d.id for d in batch.datums]),
        )

    # --- lag ---

    def _update_lag(self, topic: str, partition: int, committed: int) -> None:
        try:
            _, high = self._consumer.get_watermark_offsets(
                KafkaPartition(topic, partition), cached=True
            )
        except KafkaException:
            return
        if high is None or high < _NO_OFFSET:
            return  # not known yet (no fetch answer cached)
        self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(
            max(0, high - committed)
        )

    def _drop_lag(self, topic: str, partition: int) -> None:
        with contextlib.suppress(KeyError):  # never set for this partition
            self.metrics.consumer_lag.remove(topic, str(partition))

    # --- rebalance and connectivity callbacks (all on the consumer thread) ---

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self._set_connected(True)
        with self._lock:
            self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        logger.info(
            "kafka source: assigned %s; now own %d partition(s)",
            _names(partitions) or "nothing",
            len(self._assigned),
        )

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        self._forget(partitions, "revoked")

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        self._forget(partitions, "lost")

    def _forget(self, partitions: list[Any], how: str) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        held = 0
        with self._commit_lock, self._lock:
            self._assigned -= gone
            for token in self._pending:
                for tp in gone & token.next_offsets.keys():
                    del token.next_offsets[tp]
                    held += 1
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
        self._errors.warning(
            code,
            f"kafka source: {err.name()}: {err.str()} (brokers {','.join(self.config.brokers)};"
            " retrying)",
        )

    def _set_connected(self, connected: bool) -> None:
        if connected and not self._connected:
            logger.info("kafka source: brokers %s reachable; ready", ",".join(self.config.brokers))
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
        self._set_connected(bool(md.brokers))


def _nothing() -> None:
    """A no-op, run on a thread to wait for the work queued there before it."""


def _names(partitions: list[Any]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)


__all__ = ["BatchToken", "KafkaSource", "KafkaSourceError", "decode_headers"]
