"""The C conversion of Kafka records (sources/_fastrecords.c) against the Python reference.

For any record (headers of any bytes, null or repeated, split key headers well formed or not,
the single keys header, records without timestamps or with errors, timestamps and offsets
anywhere in the int64 range, records whose headers cannot be read), the batch the source
builds with the C module must hold exactly the Datums, wire bytes, offsets and counts the
source builds with the C module switched off, in the same order. A separate test pins that
the C module takes the usual records (otherwise the comparison would hold trivially), and the
build must have it: the data plane's speed depends on it.

The same tests run against a build of the module with AddressSanitizer and
UndefinedBehaviorSanitizer (tests/unit/test_sanitized_fastrecords.py): the cases at C's edges
(int64 bounds, a message that drops the last reference to itself, values of the wrong type)
are here for that build as much as for this one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import confluent_kafka as ck
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sink_runtime import codec
from sink_runtime.config import DEFAULT_BATCH_MAX_BYTES, KafkaSourceConfig
from sink_runtime.config.constants import KEY_LEN_HEADER, SOURCE_ERROR_HEADER
from sink_runtime.dataplane.keyheaders import key_header_name
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.sources import kafka_record
from sink_runtime.dataplane.sources.kafka import KafkaSourceError
from sink_runtime.dataplane.sources.kafka_jobs import ConsumerView
from sink_runtime.dataplane.sources.kafka_record import (
    MAX_EVENT_TIME_MS,
    RecordDatum,
    convert_records,
)
from sink_runtime.dataplane.sources.kafka_worker import ConsumerWorker
from sink_runtime.dataplane.sources.owner_thread import OwnerThread, Shared
from sink_runtime.dataplane.sources.read_buffer import Chunk
from sink_runtime.proto import sink_pb2
from sink_runtime.types import EPOCH
from tests.support.conversion import python_only
from tests.support.strategies import wire_text

KEYS_HEADER = "x-keys"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)

names = st.one_of(
    st.sampled_from([KEY_LEN_HEADER, KEYS_HEADER, *(key_header_name(i) for i in range(4))]),
    wire_text,
)
values = st.one_of(
    st.none(),
    st.sampled_from([b"0", b"1", b"2", b"3", b"17", b"x", b"", b"\xff", b"a,b"]),
    st.binary(max_size=12),
    wire_text.map(str.encode),
)
headers = st.one_of(st.none(), st.lists(st.tuples(names, values), max_size=6))
int64 = st.integers(INT64_MIN, INT64_MAX)
milliseconds = st.one_of(
    int64,
    st.integers(0, 2**42),
    # From 2**33 s on, seconds held in a double no longer keep the millisecond exactly.
    st.integers(2**33 * 1000, MAX_EVENT_TIME_MS + 1000),
    st.sampled_from([0, -1, MAX_EVENT_TIME_MS, MAX_EVENT_TIME_MS + 1, INT64_MAX, INT64_MIN]),
)
timestamps = st.tuples(st.sampled_from([0, 1, 2]), milliseconds)
# A Message gives None for a negative offset.
offsets = st.one_of(
    int64, st.integers(0, 10**12), st.sampled_from([INT64_MAX, INT64_MAX - 1, 0, -1, INT64_MIN])
)


class Wrapped:
    """A message that behaves as the Message it wraps, except where a subclass says."""

    def __init__(self, msg: Any) -> None:
        self.msg = msg

    def __getattr__(self, name: str) -> Any:
        return getattr(self.msg, name)

    def __len__(self) -> int:
        return len(self.msg)


class HeadersUnreadable(Wrapped):
    """headers() raises as confluent-kafka's does for a header name that is not UTF-8."""

    calls = 0

    def headers(self) -> Any:
        self.calls += 1
        cause = UnicodeDecodeError("utf-8", b"n\xff", 1, 2, "invalid start byte")
        raise SystemError("headers() returned a result with an exception set") from cause


@st.composite
def messages(draw: st.DrawFn) -> list[Any]:
    out: list[Any] = []
    for _ in range(draw(st.integers(0, 8))):
        error = draw(st.sampled_from([None, None, None, ck.KafkaError._PARTITION_EOF]))
        msg = ck.Message(
            topic=draw(st.sampled_from(["orders", "t.ü"])),
            partition=draw(st.sampled_from([0, 1])),
            offset=draw(offsets),
            key=draw(st.one_of(st.none(), st.binary(max_size=6))),
            value=draw(st.one_of(st.none(), st.binary(max_size=40))),
            headers=draw(headers),
            timestamp=draw(timestamps),
            error=None if error is None else ck.KafkaError(error),
        )
        out.append(HeadersUnreadable(msg) if draw(st.integers(0, 15)) == 0 else msg)
    return out


def source(keys_from_headers: bool = True) -> ConsumerWorker:
    """The source's owner-thread worker, without a consumer (nothing here calls a broker)."""
    config = KafkaSourceConfig(
        brokers=["127.0.0.1:1"],
        topics=["orders"],
        consumer_group="g",
        keys_from_headers=keys_from_headers,
        keys_header=KEYS_HEADER,
    )
    return ConsumerWorker(
        config,
        metrics=Metrics(),
        where="source",
        batch_max_bytes=DEFAULT_BATCH_MAX_BYTES,
        inside=OwnerThread("unstarted", RuntimeError).inside,
        view=Shared(ConsumerView()),
    )


@dataclass
class Converted:
    """A batch's datums, and per partition the offset after its last record and its count."""

    datums: list[Any]
    spans: dict[tuple[str, int], tuple[int, int]]


def c_batch(batch: list[Any], keys_from_headers: bool = True) -> Converted:
    datums: list[Any] = []
    spans = source(keys_from_headers).converter.convert(list(batch), datums, [])
    return Converted(datums, spans)


def python_batch(batch: list[Any], keys_from_headers: bool = True) -> Converted:
    with python_only():
        return c_batch(batch, keys_from_headers)


def read_time_applies(msg: Any) -> bool:
    ts_type, ts_ms = msg.timestamp()
    return ts_type == ck.TIMESTAMP_NOT_AVAILABLE or ts_ms < 0


def same_datum(a: Any, b: Any, msg: Any) -> None:
    assert type(a) is type(b) is RecordDatum
    assert (a.id, a.value, a.keys) == (b.id, b.value, b.keys)
    assert dict(a._raw) == dict(b._raw) and list(a._raw) == list(b._raw)
    assert dict(a.headers) == dict(b.headers)
    if not read_time_applies(msg):  # else: the read time, twice
        assert a.event_time == b.event_time
        assert codec.encode_request(a) == codec.encode_request(b)


def event_time_on_the_wire(d: Any) -> tuple[int, int]:
    parsed = sink_pb2.SinkRequest.Request.FromString(codec.encode_request(d))
    return parsed.event_time.seconds, parsed.event_time.nanos


def test_the_c_module_is_built() -> None:
    assert kafka_record.ACCELERATED, (
        "sink_runtime.dataplane.sources._fastrecords is missing: the package was built "
        "without a C compiler (pip install -e . with gcc and the Python headers present)"
    )


def odd(offset: int, ts: tuple[int, int]) -> ck.Message:
    return ck.Message(topic="orders", partition=0, offset=offset, value=b"v", timestamp=ts)


@settings(max_examples=400, deadline=None)
@given(batch=messages(), keys_from_headers=st.booleans())
@example(batch=[odd(INT64_MAX, (1, INT64_MAX))], keys_from_headers=True)
@example(
    batch=[odd(INT64_MAX - 1, (1, 2**33 * 1000 + 1)), odd(5, (2, -5))], keys_from_headers=False
)
def test_the_batch_is_the_python_paths_batch(batch: list[Any], keys_from_headers: bool) -> None:
    built = c_batch(batch, keys_from_headers)
    expected = python_batch(batch, keys_from_headers)
    assert len(built.datums) == len(expected.datums)
    read = [m for m in batch if m.error() is None and m.offset() is not None]
    for got, want, msg in zip(built.datums, expected.datums, read, strict=True):
        same_datum(got, want, msg)
    assert built.spans == expected.spans


def test_the_usual_records_are_converted_in_c() -> None:
    usual = [
        ck.Message(
            topic="orders",
            partition=p,
            offset=10 + i,
            key=b"k",
            value=b"v" * 1024,
            headers=[
                (KEY_LEN_HEADER, b"2"),
                ("__key_0", b"tenant"),
                ("__key_1", b"7"),
                ("a", b"b"),
            ],
            timestamp=(1, 1_700_000_000_123 + i),
        )
        for i, p in enumerate([0, 1, 0])
    ] + [ck.Message(topic="orders", partition=0, offset=20, value=b"plain", timestamp=(1, 5))]
    no: dict[Any, int] = {}
    co: dict[Any, int] = {}
    out = convert_records(usual, True, KEYS_HEADER, no, co)
    assert [type(o) for o in out] == [RecordDatum] * 4
    assert no == {("orders", 0): 21, ("orders", 1): 12} and co == {
        ("orders", 0): 3,
        ("orders", 1): 1,
    }
    assert out[0].keys == ("tenant", "7") and out[3].keys == ()
    # A large value is not encoded ahead (no second copy for sinks that never send it), and
    # encodes on first use to the same bytes as the Python path's datum.
    big = ck.Message(topic="orders", partition=0, offset=40, value=b"b" * 100_000, timestamp=(1, 5))
    (converted,) = convert_records([big], True, KEYS_HEADER, {}, {})
    assert type(converted) is RecordDatum and not hasattr(converted, "_encoded")
    (reference,) = python_batch([big]).datums
    assert codec.encode_request(converted) == codec.encode_request(reference)
    # A record the C code must not judge comes back as it was, in its place.
    odd = ck.Message(
        topic="orders",
        partition=0,
        offset=30,
        value=b"x",
        headers=[("h", b"\xff")],
        timestamp=(1, 5),
    )
    out = convert_records([usual[0], odd], True, KEYS_HEADER, {}, {})
    assert type(out[0]) is RecordDatum and out[1] is odd


@pytest.mark.parametrize("build", [c_batch, python_batch])
def test_a_timestamp_after_year_9999_is_delivered_at_its_last_millisecond(build: Any) -> None:
    late = [odd(i, (1, ts)) for i, ts in enumerate([MAX_EVENT_TIME_MS + 1, 2**53, INT64_MAX])]
    last = odd(3, (1, MAX_EVENT_TIME_MS))
    batch = build([*late, last])
    assert [d.event_time for d in batch.datums] == [LATEST] * 4
    for d in batch.datums:
        assert event_time_on_the_wire(d) == (253_402_300_799, 999_000_000)
    assert batch.spans == {("orders", 0): (4, 4)}


def test_clamped_timestamps_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    src = source()
    src.converter.convert(
        [odd(1, (1, INT64_MAX)), odd(2, (1, MAX_EVENT_TIME_MS)), odd(3, (1, 5))], [], []
    )
    kind = "timestamp-clamped"
    assert src.metrics.value("udsink_records_altered_total", kind=kind) == 1
    assert "orders:0:1" in caplog.text and "9999-12-31T23:59:59.999" in caplog.text


@pytest.mark.parametrize("build", [c_batch, python_batch])
def test_milliseconds_stay_exact_from_2_to_the_33_seconds_on(build: Any) -> None:
    start = 2**33 * 1000
    batch = build([odd(i, (1, start + i)) for i in range(1000)])
    for i, d in enumerate(batch.datums):
        assert d.event_time == EPOCH + timedelta(milliseconds=start + i)
        seconds, ms = divmod(start + i, 1000)
        assert event_time_on_the_wire(d) == (seconds, ms * 1_000_000)


def test_an_offset_at_int64_max_is_followed_by_2_to_the_63_in_both_paths() -> None:
    batch = [odd(INT64_MAX, (1, 5))]
    assert c_batch(batch).spans == {("orders", 0): (2**63, 1)}
    assert python_batch(batch).spans == {("orders", 0): (2**63, 1)}
    # Converted in C with a next offset of 2**63 already known for its partition.
    later = {("orders", 0): 2**63}
    (d,) = convert_records([odd(7, (1, 5))], True, KEYS_HEADER, later, {})
    assert type(d) is RecordDatum and later == {("orders", 0): 2**63}


class OddTypes(Wrapped):
    def __init__(self, msg: Any, timestamp: Any = None, offset: Any = None) -> None:
        super().__init__(msg)
        self._timestamp = msg.timestamp() if timestamp is None else timestamp
        self._offset = msg.offset() if offset is None else offset

    def timestamp(self) -> Any:
        return self._timestamp

    def offset(self) -> Any:
        return self._offset


@pytest.mark.parametrize(
    "timestamp, offset",
    [
        (("1", 5), None),  # a type that is not an int: C raises, then must not call on
        ((1, 2**70), None),
        ((1, -(2**70)), None),
        (None, 2**70),
        ((True, 5), 9),
    ],
)
def test_values_of_the_wrong_type_or_size_are_left_to_python(timestamp: Any, offset: Any) -> None:
    msg = OddTypes(odd(4, (1, 5)), timestamp, offset)
    built, expected = c_batch([msg]), python_batch([msg])
    assert [d.id for d in built.datums] == [d.id for d in expected.datums]
    same_datum(built.datums[0], expected.datums[0], msg)
    assert built.spans == expected.spans


class Vanishing(Wrapped):
    """Drops the batch's reference to itself while the converter is reading it."""

    def __init__(self, msg: Any, batch: list[Any]) -> None:
        super().__init__(msg)
        self.batch = batch

    def value(self) -> Any:
        self.batch.clear()
        return self.msg.value()


def test_a_message_dropped_from_its_batch_mid_conversion_is_still_read_whole() -> None:
    batch: list[Any] = []
    batch.append(Vanishing(odd(6, (1, 5)), batch))
    out = convert_records(batch, True, KEYS_HEADER, {}, {})
    assert [(type(d), d.id, d.value) for d in out] == [(RecordDatum, "orders:0:6", b"v")]


def unreadable(offset: int) -> HeadersUnreadable:
    msg = ck.Message(
        topic="orders",
        partition=0,
        offset=offset,
        key=b"k",
        value=b"v",
        headers=[("h", b"1")],
        timestamp=(1, 1_700_000_000_000),
    )
    return HeadersUnreadable(msg)


@pytest.mark.parametrize("build", [c_batch, python_batch])
def test_a_record_whose_headers_cannot_be_read_is_delivered_with_the_reason(build: Any) -> None:
    bad = unreadable(3)
    batch = build([odd(2, (1, 5)), bad, odd(4, (1, 5))])
    assert [d.id for d in batch.datums] == ["orders:0:2", "orders:0:3", "orders:0:4"]
    d = batch.datums[1]
    assert (d.value, d.keys) == (b"v", ("k",))
    assert d.event_time == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert dict(d.headers) == {
        SOURCE_ERROR_HEADER: "record not converted (ValueError: a header name is not valid "
        "UTF-8); delivered without its headers"
    }
    assert batch.spans == {("orders", 0): (5, 3)}


def test_headers_are_read_once_without_the_c_module() -> None:
    # confluent-kafka's Message caches a half-built list after a failed headers() call: a
    # second call would hand it out. Without the C module nothing checks it.
    bad = unreadable(3)
    python_batch([bad])
    assert bad.calls == 1


def test_unreadable_records_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    src = source()
    src.converter.convert([unreadable(3), unreadable(4)], [], [])
    assert src.metrics.value("udsink_records_altered_total", kind="unconvertible") == 2
    assert "orders:0:3" in caplog.text and "not valid UTF-8" in caplog.text


def test_a_record_without_coordinates_is_skipped() -> None:
    # A Message shows a negative offset as None: such a record can be neither named nor
    # committed past (brokers never deliver one).
    msg = ck.Message(topic="orders", partition=0, offset=-5, value=b"v", timestamp=(1, 5))
    for build in (c_batch, python_batch):
        batch = build([msg, odd(1, (1, 5))])
        assert [d.id for d in batch.datums] == ["orders:0:1"]


def test_records_consumed_for_a_batch_that_fails_are_read_first_next_time() -> None:
    fatal = ck.Message(
        topic="orders",
        partition=0,
        offset=3,
        error=ck.KafkaError(ck.KafkaError._FATAL, "fenced", fatal=True),
    )
    consumed = [odd(2, (1, 5)), fatal, odd(4, (1, 5))]
    for python in (False, True):
        src = source()
        src.ledger.assign([("orders", 0)])
        chunks = [Chunk(src.ledger.generation, list(consumed))]
        mode = python_only() if python else contextlib.nullcontext()
        with mode, pytest.raises(KafkaSourceError, match="fenced"):
            src.batch(chunks)
        assert [m for c in src.stash.chunks for m in c.messages] == consumed
        assert src.ledger.committable() == {}  # nothing was taken in as read


class FailingConverter:
    """A C module that fails half-way through a batch (an allocation failure)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def convert(self, messages: list[Any], *args: Any) -> int:
        self.real.convert(messages[:1], *args)
        raise MemoryError

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_conversion_that_fails_in_c_is_done_again_in_python(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kafka_record, "_fastrecords", FailingConverter(kafka_record._fastrecords))
    batch = c_batch([odd(2, (1, 5)), unreadable(3), odd(4, (1, 5))])
    assert [d.id for d in batch.datums] == ["orders:0:2", "orders:0:3", "orders:0:4"]
    assert batch.spans == {("orders", 0): (5, 3)}
    assert "converted in Python instead" in caplog.text
