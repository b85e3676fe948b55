"""Kafka records as Datums: decoded on first use, and written to the wire straight from the record.

Separate from the consumer (kafka.py) because this is the data plane's per-record hot path and
has its own rules. The consumer hands over each record's id, value, keys (decided when the
record is read, so malformed key headers are counted and logged there) and event time; the
rest stays as the record had it:

- `headers` are decoded from the record's bytes when a sink first reads them (UTF-8 with
  replacement, a null value as "", the last value of a repeated name; kafka.py's module doc);
  the blackhole and a user-defined sink never do;
- `encoded_request()` writes the `sink.v1` request from the record's own header bytes instead
  of building a protobuf message from decoded text: a header's wire entry (and a key's wire
  field) is the same for every record that carries the same name and value, so small ones
  come from a cache. The result parses to exactly the request protobuf's own API builds for
  the datum (a property test holds it to that).

`convert_records` turns a consumed batch into Datums through the C module `_fastrecords`
(built with the package where a compiler is present) for the records whose answer needs no
judgement, and hands every other record back for kafka.py's Python path, which is the
reference the C code mirrors; without the module every record takes the Python path.

Event time: `utc_from_ms` is exact for every millisecond a datetime holds (integer arithmetic,
no float), and a timestamp after the last one (9999-12-31T23:59:59.999Z, `MAX_EVENT_TIME_MS`)
is clamped to it: a producer may set any int64 CreateTime, and the clamped time is the same on
every delivery of the record and still a valid protobuf Timestamp.

`read_headers(msg)` is how the source reads a record's headers: confluent-kafka's `headers()`
fails for a header name that is not valid UTF-8 by returning a half-built list (holes where
the names failed) with the decoding error still set, and keeps that list for every later
call; read, a hole crashes the process. A call checked by the interpreter turns the first
answer into a SystemError, but the specialised call Python bytecode makes does not check it
(CPython 3.11), so `headers()` is never called from bytecode here: the C module's
`headers()` refuses a list with holes, and without the module a C-level call makes the one
call per record. Either way the record's headers are reported as unreadable with one
ValueError (`HEADER_NAME_NOT_UTF8`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from operator import methodcaller
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar

from sink_runtime import codec
from sink_runtime.config.constants import KEY_LEN_HEADER
from sink_runtime.dataplane.keyheaders import key_header_name
from sink_runtime.types import EPOCH, NO_HEADERS, Datum, slot_setters

RawHeaders: TypeAlias = Mapping[str, bytes | None]
# The headers of a record without any (one shared mapping).
NO_RAW: RawHeaders = MappingProxyType({})


_EPOCH_WATERMARK = codec.timestamp_field(codec.WATERMARK_TAG, EPOCH)
# Why a record's headers cannot be read (module doc), whichever path finds out.
HEADER_NAME_NOT_UTF8 = "a header name is not valid UTF-8"

# The range of event times: the milliseconds a datetime (and a protobuf Timestamp) can hold.
MIN_EVENT_TIME_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_EVENT_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
# The event time of every record timestamped after MAX_EVENT_TIME_MS: this one object.
LATEST_EVENT_TIME = EPOCH + timedelta(milliseconds=MAX_EVENT_TIME_MS)

# Wire fields of small header values and keys, by value. Bounded: cleared when full (a
# record's fields are then simply computed again), so memory stays small whatever the keys.
_CACHE_LIMIT = 65_536
_CACHEABLE_BYTES = 256
_header_fields: dict[tuple[str, bytes | None], bytes] = {}
_key_fields: dict[str, bytes] = {}
_event_time_fields: dict[datetime, bytes] = {}
_K = TypeVar("_K")


def header_text(value: bytes | None) -> str:
    """A header value as the Datum shows it: UTF-8 with replacement, null as ""."""
    if value is None:
        return ""
    return value.decode("utf-8", errors="replace")


def headers_as_text(raw: RawHeaders) -> Mapping[str, str]:
    """The record's headers as text (read-only)."""
    try:
        return MappingProxyType({name: value.decode() for name, value in raw.items()})  # type: ignore[union-attr]
    except (AttributeError, UnicodeDecodeError):  # a null or non-UTF-8 value
        return MappingProxyType({name: header_text(value) for name, value in raw.items()})


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return codec.field_prefix(tag, len(payload)) + payload


def _header_field(name: str, value: bytes | None) -> bytes:
    """One headers map entry as a complete wire field."""
    text = value if value is not None and value.isascii() else header_text(value).encode()
    entry = _length_delimited(codec.ENTRY_KEY_TAG, name.encode()) + _length_delimited(
        codec.ENTRY_VALUE_TAG, text
    )
    return _length_delimited(codec.HEADERS_TAG, entry)


def _key_field(key: str) -> bytes:
    return _length_delimited(codec.KEYS_TAG, key.encode())


def _remember(cache: dict[_K, bytes], key: _K, field: bytes, size: int) -> bytes:
    if size <= _CACHEABLE_BYTES:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = field
    return field


def _new_header_field(item: tuple[str, bytes | None]) -> bytes:
    name, value = item
    return _remember(_header_fields, item, _header_field(name, value), len(value or b""))


def _new_key_field(key: str) -> bytes:
    return _remember(_key_fields, key, _key_field(key), len(key))


def _new_event_time_field(event_time: datetime) -> bytes:
    field = codec.timestamp_field(codec.EVENT_TIME_TAG, event_time)
    return _remember(_event_time_fields, event_time, field, 0)


@lru_cache(maxsize=4096)
def utc_from_ms(ts_ms: int) -> datetime:
    """The UTC time `ts_ms` milliseconds after the epoch, exactly; clamped to the datetime
    range (any int: LATEST_EVENT_TIME itself for every time after it)."""
    # Records read together mostly share their millisecond: cached by value.
    if ts_ms > MAX_EVENT_TIME_MS:
        return LATEST_EVENT_TIME
    return EPOCH + timedelta(milliseconds=max(ts_ms, MIN_EVENT_TIME_MS))


class RecordDatum(codec.LazyDatum):
    """A Kafka record as a Datum (module doc): headers decoded on first read."""

    # _headers and _encoded stay unset until first use (an unset slot raises AttributeError).
    __slots__ = ("_encoded", "_headers", "_raw")

    _raw: RawHeaders
    _headers: Mapping[str, str]
    _encoded: bytes

    @property
    def watermark(self) -> datetime:
        return EPOCH

    @property
    def metadata(self) -> None:
        return None

    @property
    def raw_headers(self) -> RawHeaders:
        """The record's headers as it carried them (the last value of each name): the Kafka
        sink passes these bytes on without decoding them (sinks/kafka.py)."""
        return self._raw

    @property
    def headers(self) -> Mapping[str, str]:
        try:
            return self._headers
        except AttributeError:
            headers = headers_as_text(self._raw) if self._raw else NO_HEADERS
            _set_headers(self, headers)
            return headers

    def encoded_request(self) -> bytes:
        """The wire request, encoded once (a batch sent again is not encoded again)."""
        try:
            return self._encoded
        except AttributeError:
            encoded = self._encode()
            _set_encoded(self, encoded)
            return encoded

    def _encode(self) -> bytes:
        id_bytes = self.id.encode()
        value = self.value
        parts = [
            codec.field_prefix(codec.ID_TAG, len(id_bytes)),
            id_bytes,
            codec.field_prefix(codec.VALUE_TAG, len(value)),
            value,
        ]
        if self.keys:
            known_key = _key_fields.get
            parts += [known_key(k) or _new_key_field(k) for k in self.keys]
        if self._raw:
            known_header = _header_fields.get
            parts += [known_header(h) or _new_header_field(h) for h in self._raw.items()]
        event_time = self.event_time
        parts.append(_event_time_fields.get(event_time) or _new_event_time_field(event_time))
        parts.append(_EPOCH_WATERMARK)
        return b"".join(parts)


_new_object = object.__new__
_set_id, _set_value, _set_keys, _set_event_time = slot_setters(
    Datum, "id", "value", "keys", "event_time"
)
_set_raw, _set_headers, _set_encoded = slot_setters(RecordDatum, "_raw", "_headers", "_encoded")


def record_datum(
    datum_id: str, value: bytes, keys: tuple[str, ...], event_time: datetime, raw: RawHeaders
) -> RecordDatum:
    """The Datum for one record; `raw` is its headers, the last value of each name."""
    d: RecordDatum = _new_object(RecordDatum)
    _set_id(d, datum_id)
    _set_value(d, value)
    _set_keys(d, keys)
    _set_event_time(d, event_time)
    _set_raw(d, raw)
    return d


try:
    from sink_runtime.dataplane.sources import _fastrecords  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: the Python path converts every record
    _fastrecords = None
else:
    _fastrecords.configure(
        record_type=RecordDatum,
        # The slot descriptors themselves: C sets them as the setters above do.
        slots=tuple(
            getattr(cls, name)
            for cls, name in (
                (Datum, "id"),
                (Datum, "value"),
                (Datum, "keys"),
                (Datum, "event_time"),
                (RecordDatum, "_raw"),
                (RecordDatum, "_encoded"),
            )
        ),
        no_raw=NO_RAW,
        utc_from_ms=utc_from_ms,
        max_event_time_ms=MAX_EVENT_TIME_MS,
        header_name_error=HEADER_NAME_NOT_UTF8,
        key_len_name=KEY_LEN_HEADER,
        split_names=tuple(key_header_name(i) for i in range(16)),
        tags=tuple(
            tag[0]
            for tag in (
                codec.ID_TAG,
                codec.VALUE_TAG,
                codec.KEYS_TAG,
                codec.HEADERS_TAG,
                codec.ENTRY_KEY_TAG,
                codec.ENTRY_VALUE_TAG,
                codec.EVENT_TIME_TAG,
            )
        ),
        watermark_field=_EPOCH_WATERMARK,
    )

ACCELERATED = _fastrecords is not None

_checked_headers = None if _fastrecords is None else _fastrecords.headers
# A call from C, whose result the interpreter checks (module doc).
_call_headers = methodcaller("headers")


def read_headers(msg: Any) -> Any:
    """`msg.headers()`; ValueError(HEADER_NAME_NOT_UTF8) when they cannot be read (module doc).

    Without the C module nothing can check the list a second call returns: the source calls
    this once per record.
    """
    try:
        return _call_headers(msg) if _checked_headers is None else _checked_headers(msg)
    except SystemError as exc:
        if isinstance(exc.__cause__, UnicodeDecodeError):
            raise ValueError(HEADER_NAME_NOT_UTF8) from exc
        raise


def convert_records(
    messages: list[Any],
    keys_from_headers: bool,
    keys_header: str,
    next_offsets: dict[tuple[str, int], int],
    counts: dict[tuple[str, int], int],
) -> list[Any]:
    """`messages` in order, each record the C module converted replaced by its RecordDatum
    (its partition's next offset and count updated); the rest are left as they came."""
    if _fastrecords is None:
        return messages
    out: list[Any] = []
    _fastrecords.convert(
        messages, keys_from_headers, frozenset((keys_header,)), out, next_offsets, counts
    )
    return out


__all__ = [
    "ACCELERATED",
    "HEADER_NAME_NOT_UTF8",
    "LATEST_EVENT_TIME",
    "MAX_EVENT_TIME_MS",
    "MIN_EVENT_TIME_MS",
    "NO_RAW",
    "RawHeaders",
    "RecordDatum",
    "convert_records",
    "header_text",
    "headers_as_text",
    "read_headers",
    "record_datum",
    "utc_from_ms",
]
