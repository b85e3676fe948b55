"""Conversions between the SDK's values (types.py) and the `sink.v1` wire messages.

Separate from both sides because both sides need it: the SDK server decodes requests and
encodes results, the data plane's gRPC client does the opposite, and they must agree to the
field. These functions run once per datum on both hot paths, so they avoid work a datum does
not need: a decoded Datum reads its times, headers and metadata from the request only when
a sink looks at them, timestamps go through small caches (a batch mostly shares its
watermark and many event times), empty maps are never copied, and SUCCESS results are built
in place in the outgoing message.

Times on the wire are `google.protobuf.Timestamp`; in Python they are timezone-aware UTC
datetimes, truncated to microseconds (datetime's resolution).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.timestamp_pb2 import Timestamp

from sink_runtime.proto import batch_pb2, sink_pb2
from sink_runtime.types import (
    EPOCH,
    NO_HEADERS,
    Datum,
    Message,
    Metadata,
    Response,
    Status,
    slot_setters,
)

Request = sink_pb2.SinkRequest.Request
Result = sink_pb2.SinkResponse.Result
ResultMessage = sink_pb2.SinkResponse.Result.Message

_SUCCESS = Status.SUCCESS
_FAILURE = Status.FAILURE
_STATUS_BY_NUMBER: dict[int, Status] = {int(s): s for s in Status}


@lru_cache(maxsize=8192)
def _utc(seconds: int, nanos: int) -> datetime:
    # timedelta arithmetic instead of fromtimestamp(): valid for the whole datetime range.
    return EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


def _metadata_from_wire(m: sink_pb2.Metadata) -> Metadata | None:
    if not (m.previous_vertex or m.sys_metadata or m.user_metadata):
        return None
    return Metadata(
        previous_vertex=m.previous_vertex,
        sys_metadata={k: dict(g.key_value) for k, g in m.sys_metadata.items()},
        user_metadata={k: dict(g.key_value) for k, g in m.user_metadata.items()},
    )


def _metadata_to_wire(m: Metadata) -> sink_pb2.Metadata:
    return sink_pb2.Metadata(
        previous_vertex=m.previous_vertex,
        sys_metadata={k: sink_pb2.KeyValueGroup(key_value=v) for k, v in m.sys_metadata.items()},
        user_metadata={k: sink_pb2.KeyValueGroup(key_value=v) for k, v in m.user_metadata.items()},
    )


# --- datums ---

_DATUM_FIELDS = tuple(Datum.__dataclass_fields__)


class LazyDatum(Datum):
    """A Datum that computes some of its fields on first read and can encode itself.

    For decoders on hot paths (the SDK server's wire requests, the data plane's Kafka
    records): a subclass keeps what it was decoded from, overrides the fields it computes
    lazily with properties, and writes its wire request straight from that source. To its
    users it is a Datum: same fields, equal to a Datum with the same values, immutable;
    copies (dataclasses.replace, with_headers, pickle) are plain Datums.
    """

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Datum:  # type: ignore[misc]
        # Reached only through copy helpers (dataclasses.replace): they get a plain Datum.
        return Datum(*args, **kwargs)

    def encoded_request(self) -> bytes:
        """The serialized `SinkRequest.Request` for this datum (see `encode_request`)."""
        raise NotImplementedError

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _DATUM_FIELDS)

    def __eq__(self, other: object) -> bool:
        # Python asks the subclass first, also for `Datum(...) == lazy_datum`.
        if isinstance(other, Datum):
            return self._values() == tuple(getattr(other, n) for n in _DATUM_FIELDS)
        return NotImplemented

    __hash__ = Datum.__hash__

    def __repr__(self) -> str:
        pairs = zip(_DATUM_FIELDS, self._values(), strict=True)
        return "Datum(" + ", ".join(f"{n}={v!r}" for n, v in pairs) + ")"

    def __reduce__(self) -> tuple[Any, ...]:
        return Datum.__reduce__(self)


class _WireDatum(LazyDatum):
    """A Datum read from a wire request: id, value and keys at once, the rest on first use.

    Most sinks never look at the times, headers or metadata of a datum, and decoding them
    was most of the SDK server's cost per datum on the batch path. This subclass keeps the
    request and decodes those four fields when they are read (times are cached by value,
    headers and metadata per datum). The request is never mutated after decoding.
    """

    # _headers and _metadata stay unset until first read (an unset slot raises AttributeError).
    __slots__ = ("_headers", "_metadata", "_request")

    _request: sink_pb2.SinkRequest.Request
    _headers: Mapping[str, str]
    _metadata: Metadata | None

    @property
    def event_time(self) -> datetime:
        ts = self._request.event_time
        return _utc(ts.seconds, ts.nanos)

    @property
    def watermark(self) -> datetime:
        ts = self._request.watermark
        return _utc(ts.seconds, ts.nanos)

    @property
    def headers(self) -> Mapping[str, str]:
        try:
            return self._headers
        except AttributeError:
            wire = self._request.headers
            headers = MappingProxyType(dict(wire)) if wire else NO_HEADERS
            _set_wire_headers(self, headers)
            return headers

    @property
    def metadata(self) -> Metadata | None:
        try:
            return self._metadata
        except AttributeError:
            r = self._request
            metadata = _metadata_from_wire(r.metadata) if r.HasField("metadata") else None
            _set_wire_metadata(self, metadata)
            return metadata

    def encoded_request(self) -> bytes:
        return self._request.SerializeToString()


_new_object = object.__new__
_set_wire_request, _set_wire_headers, _set_wire_metadata = slot_setters(
    _WireDatum, "_request", "_headers", "_metadata"
)
_set_id, _set_value, _set_keys = slot_setters(Datum, "id", "value", "keys")


def request_to_datum(r: sink_pb2.SinkRequest.Request) -> Datum:
    """The Datum a sink sees for one wire request (decoding its times, headers and
    metadata on first use)."""
    d: _WireDatum = _new_object(_WireDatum)
    _set_id(d, r.id)
    _set_value(d, r.value)
    keys = r.keys
    _set_keys(d, tuple(keys) if keys else ())
    _set_wire_request(d, r)
    return d


def requests_to_datums(requests: Iterable[sink_pb2.SinkRequest.Request]) -> list[Datum]:
    """request_to_datum over a batch."""
    convert = request_to_datum
    return [convert(r) for r in requests]


@lru_cache(maxsize=8192)
def _timestamp(dt: datetime) -> Timestamp:
    # Cached: Timestamp.FromDatetime is pure Python and the slowest step of encoding a datum.
    # Callers copy the value into their message and never mutate the cached one.
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def length_delimited_tag(message: Any, field: str) -> bytes:
    """The one-byte tag (field number << 3 | wire type 2) that starts `field` of a protobuf
    message class, read from its descriptor: the .proto is the only home of field numbers."""
    number: int = message.DESCRIPTOR.fields_by_name[field].number
    if number >= 16:
        raise ValueError(f"{field} is field {number}: its tag does not fit one byte")
    return bytes(((number << 3) | 2,))


# The tags of SinkRequest.Request's fields, for encoders that write the bytes themselves (the
# Kafka source's records), and of the field that holds a request in both enclosing messages.
KEYS_TAG = length_delimited_tag(Request, "keys")
VALUE_TAG = length_delimited_tag(Request, "value")
EVENT_TIME_TAG = length_delimited_tag(Request, "event_time")
WATERMARK_TAG = length_delimited_tag(Request, "watermark")
ID_TAG = length_delimited_tag(Request, "id")
HEADERS_TAG = length_delimited_tag(Request, "headers")
# A map entry is a message with key = 1 and value = 2.
ENTRY_KEY_TAG = length_delimited_tag(Request.HeadersEntry, "key")
ENTRY_VALUE_TAG = length_delimited_tag(Request.HeadersEntry, "value")
REQUEST_TAG = length_delimited_tag(sink_pb2.SinkRequest, "request")
# SinkBatch.requests has the same tag: serialized SinkRequests that hold only their request,
# joined, are a serialized SinkBatch (see requests_from_messages).
if length_delimited_tag(batch_pb2.SinkBatch, "requests") != REQUEST_TAG:
    raise ImportError("SinkBatch.requests and SinkRequest.request must share a field number")
_REQUEST_TAG_BYTE = REQUEST_TAG[0]


def is_lone_request(raw: bytes) -> bool:
    """Whether a serialized SinkRequest is one `request` field and nothing else.

    Only the framing is read (tag, then a varint length that must reach exactly to the end),
    not the request inside. Anything else (a status, a handshake, a repeated or unknown field,
    an empty message) is False: the caller parses that message in full.
    """
    n = len(raw)
    if n < 2 or raw[0] != _REQUEST_TAG_BYTE:
        return False
    length = raw[1]
    if length < 0x80:
        return n == length + 2
    length &= 0x7F
    shift, pos = 7, 2
    while pos < n and pos < 6:
        b = raw[pos]
        length |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return n == length + pos
        shift += 7
    return False


def requests_from_messages(raws: list[bytes]) -> RepeatedCompositeFieldContainer[Request]:
    """The requests inside serialized SinkRequests that are each a lone request field.

    Joined, those messages are a serialized SinkBatch, so one parse in protobuf's C code
    replaces one message object per datum. Raises google.protobuf's DecodeError when a
    request inside is not valid protobuf.
    """
    return batch_pb2.SinkBatch.FromString(b"".join(raws)).requests


@lru_cache(maxsize=8192)
def timestamp_field(tag: bytes, dt: datetime) -> bytes:
    """A timestamp as one complete wire field (tag, length, message), cached by value."""
    encoded = _timestamp(dt).SerializeToString()
    return tag + bytes((len(encoded),)) + encoded  # a Timestamp is < 128 bytes


@lru_cache(maxsize=4096)
def field_prefix(tag: bytes, length: int) -> bytes:
    """The tag and base-128 varint length that start a length-delimited field (cached:
    lengths repeat)."""
    out = bytearray(tag)
    while length > 0x7F:
        out.append((length & 0x7F) | 0x80)
        length >>= 7
    out.append(length)
    return bytes(out)


def encode_request(d: Datum) -> bytes:
    """The serialized wire request for `d`: parses to the request protobuf's own API builds
    for `d` (the tests' reference encoder).

    The data plane's hot path. The timestamps are appended as ready-made wire fields instead
    of being copied into the message (protobuf fields may come in any order, and a batch
    mostly shares its watermark and event times, so those bytes come from a cache).
    """
    if isinstance(d, LazyDatum):
        return d.encoded_request()
    r = Request(id=d.id, value=d.value, keys=d.keys)
    if d.headers:
        wire_headers = r.headers
        for name, text in d.headers.items():
            wire_headers[name] = text
    if d.metadata is not None:
        r.metadata.CopyFrom(_metadata_to_wire(d.metadata))
    return (
        r.SerializeToString()
        + timestamp_field(EVENT_TIME_TAG, d.event_time)
        + timestamp_field(WATERMARK_TAG, d.watermark)
    )


# --- results ---


def _message_to_wire(m: Message) -> sink_pb2.SinkResponse.Result.Message:
    return ResultMessage(value=m.value, keys=m.keys, headers=m.headers)


def _nack_options(r: Response) -> sink_pb2.NackOptions:
    opts = sink_pb2.NackOptions()
    if r.nack_reason is not None:
        opts.reason = r.nack_reason
    if r.nack_max_deliveries is not None:
        opts.max_deliveries = r.nack_max_deliveries
    if r.nack_delay_ms is not None:
        opts.delay = r.nack_delay_ms
    return opts


def response_to_result(r: Response) -> sink_pb2.SinkResponse.Result:
    """The wire result for one Response."""
    status = r.status
    if status is _SUCCESS:
        return Result(id=r.id)
    # Our Status and the wire enum share their numbers (types.Status mirrors sink.v1).
    if status is _FAILURE:
        return Result(id=r.id, status=status, err_msg=r.err)  # type: ignore[arg-type]
    res = Result(id=r.id, status=status, err_msg=r.err)  # type: ignore[arg-type]
    match status:
        case Status.SERVE:
            res.serve_response = r.serve_payload if r.serve_payload is not None else b""
        case Status.ON_SUCCESS if r.message is not None:
            res.on_success_msg.CopyFrom(_message_to_wire(r.message))
        case Status.NACK:
            res.nack_options.CopyFrom(_nack_options(r))
    return res


def add_results(
    into: RepeatedCompositeFieldContainer[sink_pb2.SinkResponse.Result],
    responses: Iterable[Response],
) -> None:
    """Append the wire results of `responses` to a message's repeated `results` field.

    Faster than building Result objects and passing them to the message's constructor:
    a SUCCESS result is created in place, with no intermediate object to copy.
    """
    add = into.add
    append = into.append
    success = _SUCCESS
    for r in responses:
        if r.status is success:
            add(id=r.id)
        else:
            append(response_to_result(r))


def result_to_response(res: sink_pb2.SinkResponse.Result) -> Response:
    """The Response a wire result stands for.

    A status number this SDK does not know raises ValueError naming the id and the number.
    """
    number = res.status
    if number == 0:
        return Response.ok(res.id)
    status = _STATUS_BY_NUMBER.get(number)
    if status is None:
        raise ValueError(
            f"result for id {res.id!r} has status {number}, which is not a sink.v1 status "
            f"(accepted: {', '.join(f'{s.value}={s.name}' for s in Status)})"
        )
    match status:
        case Status.FAILURE:
            return Response.failure(res.id, res.err_msg)
        case Status.SERVE:
            return Response(res.id, status, err=res.err_msg, serve_payload=res.serve_response)
        case Status.ON_SUCCESS:
            message = None
            if res.HasField("on_success_msg"):
                m = res.on_success_msg
                message = Message(m.value, tuple(m.keys), MappingProxyType(dict(m.headers)))
            return Response(res.id, status, err=res.err_msg, message=message)
        case Status.NACK:
            opts = res.nack_options
            return Response(
                res.id,
                status,
                err=res.err_msg,
                nack_delay_ms=opts.delay if opts.HasField("delay") else None,
                nack_reason=opts.reason if opts.HasField("reason") else None,
                nack_max_deliveries=(
                    opts.max_deliveries if opts.HasField("max_deliveries") else None
                ),
            )
        case _:
            return Response(res.id, status, err=res.err_msg)
