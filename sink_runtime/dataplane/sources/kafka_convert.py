"""How the Kafka source turns consumed records into Datums (on its owner thread).

The rules (keys, event time, headers as text, records that cannot be converted) are in
sources/kafka.py's module doc; the per-record work is `kafka_record` (and its C twin for the
usual records). This module walks a batch's chunks, falls back to Python where the C module
leaves a record or fails, and counts and logs what was delivered other than as written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError

from sink_runtime.config import KafkaSourceConfig
from sink_runtime.config.constants import KEY_LEN_HEADER, SOURCE_ERROR_HEADER
from sink_runtime.dataplane.kafka_settings import ErrorThrottle
from sink_runtime.dataplane.keyheaders import (
    KeyHeaderCodec,
    KeysFound,
    MalformedKeyHeaders,
    NoKeyHeaders,
    key_header_name,
)
from sink_runtime.dataplane.metrics import TIMESTAMP_CLAMPED, UNCONVERTIBLE, Metrics
from sink_runtime.dataplane.sources.kafka_jobs import SOURCE_LOGGER, KafkaSourceError
from sink_runtime.dataplane.sources.kafka_record import (
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
from sink_runtime.dataplane.sources.offset_ledger import Partition, Spans
from sink_runtime.dataplane.sources.read_buffer import Chunk
from sink_runtime.logs import batch_fields
from sink_runtime.types import Datum

logger = logging.getLogger(SOURCE_LOGGER)


@dataclass(slots=True)
class Converted:
    """A batch's datums; per chunk, (its generation, its spans) and its datums' bounds; the
    (id, reason) of the records whose key headers were malformed."""

    datums: list[Datum]
    read: list[tuple[int, Spans]]
    bounds: list[tuple[int, int]]
    malformed: list[tuple[str, str]]


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


class RecordConverter:
    """Converts records for one source (`config`), counting into `metrics`."""

    def __init__(self, config: KafkaSourceConfig, metrics: Metrics, errors: ErrorThrottle) -> None:
        self.config = config
        self.metrics = metrics
        self._errors = errors
        self._codec = KeyHeaderCodec(keys_header=config.keys_header)

    def convert_chunks(self, chunks: list[Chunk]) -> Converted:
        """Every record of `chunks` as a Datum."""
        datums: list[Datum] = []
        malformed: list[tuple[str, str]] = []
        read: list[tuple[int, Spans]] = []
        bounds: list[tuple[int, int]] = []  # each chunk's datums
        for chunk in chunks:
            start = len(datums)
            read.append((chunk.generation, self.convert(chunk.messages, datums, malformed)))
            bounds.append((start, len(datums)))
        return Converted(datums, read, bounds, malformed)

    def report_malformed(self, malformed: list[tuple[str, str]]) -> None:
        """Count and log (once per batch) the records whose key headers were malformed."""
        _report(
            self.metrics.malformed_key_headers,
            malformed,
            "with malformed key headers, record key used instead",
        )

    def convert(
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


__all__ = ["Converted", "RecordConverter"]
