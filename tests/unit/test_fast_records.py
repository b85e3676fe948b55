"""The C conversion of Kafka records (sources/_fastrecords.c) against the Python reference.

For any record (headers of any bytes, null or repeated, split key headers well formed or not,
the single keys header, records without timestamps or with errors), the batch the source
builds with the C module must hold exactly the Datums, wire bytes, offsets and counts the
Python path builds alone, in the same order. A separate test pins that the C module takes
the usual records (otherwise the comparison would hold trivially), and the build must have
it: the data plane's speed depends on it.
"""

from __future__ import annotations

from typing import Any

import confluent_kafka as ck
from hypothesis import given, settings
from hypothesis import strategies as st

from sink_runtime import codec
from sink_runtime.config import KafkaSourceConfig
from sink_runtime.config.constants import KEY_LEN_HEADER
from sink_runtime.dataplane.keyheaders import key_header_name
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.sources import kafka_record
from sink_runtime.dataplane.sources.kafka import KafkaSource
from sink_runtime.dataplane.sources.kafka_record import RecordDatum, convert_records
from tests.support.strategies import wire_text

KEYS_HEADER = "x-keys"

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
timestamps = st.one_of(
    st.tuples(st.sampled_from([1, 2]), st.integers(min_value=0, max_value=2**42)),
    st.tuples(st.just(0), st.just(-1)),  # no timestamp
    st.tuples(st.just(1), st.just(-5)),
)


@st.composite
def messages(draw: st.DrawFn) -> list[Any]:
    out = []
    offsets = {0: draw(st.integers(0, 10**12)), 1: 0}
    for _ in range(draw(st.integers(0, 8))):
        partition = draw(st.sampled_from([0, 1]))
        offsets[partition] += draw(st.integers(1, 3))
        error = draw(st.sampled_from([None, None, None, ck.KafkaError._PARTITION_EOF]))
        out.append(
            ck.Message(
                topic=draw(st.sampled_from(["orders", "t.ü"])),
                partition=partition,
                offset=offsets[partition],
                key=draw(st.one_of(st.none(), st.binary(max_size=6))),
                value=draw(st.one_of(st.none(), st.binary(max_size=40))),
                headers=draw(headers),
                timestamp=draw(timestamps),
                error=None if error is None else ck.KafkaError(error),
            )
        )
    return out


def source(keys_from_headers: bool) -> KafkaSource:
    config = KafkaSourceConfig(
        brokers=["127.0.0.1:1"],
        topics=["orders"],
        consumer_group="g",
        keys_from_headers=keys_from_headers,
        keys_header=KEYS_HEADER,
    )
    return KafkaSource(config, metrics=Metrics())


def python_batch(src: KafkaSource, batch: list[Any]) -> tuple[list[Any], dict[Any, int], Any]:
    """The reference: every record through the Python path (as without the C module)."""
    datums, next_offsets, counts = [], {}, {}
    for msg in batch:
        if msg.error() is not None:
            continue
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        datum, _ = src._datum(msg, f"{topic}:{partition}:{offset}")
        datums.append(datum)
        next_offsets[(topic, partition)] = offset + 1
        counts[(topic, partition)] = counts.get((topic, partition), 0) + 1
    return datums, next_offsets, counts


def same_datum(a: RecordDatum, b: RecordDatum, msg: Any) -> None:
    assert type(a) is type(b) is RecordDatum
    assert (a.id, a.value, a.keys) == (b.id, b.value, b.keys)
    assert dict(a._raw) == dict(b._raw) and list(a._raw) == list(b._raw)
    assert dict(a.headers) == dict(b.headers)
    ts_type, ts_ms = msg.timestamp()
    if ts_type != ck.TIMESTAMP_NOT_AVAILABLE and ts_ms >= 0:  # else: the read time, twice
        assert a.event_time == b.event_time
        assert codec.encode_request(a) == codec.encode_request(b)


def test_the_c_module_is_built() -> None:
    assert kafka_record.ACCELERATED, (
        "sink_runtime.dataplane.sources._fastrecords is missing: the package was built "
        "without a C compiler (pip install -e . with gcc and the Python headers present)"
    )


@settings(max_examples=400, deadline=None)
@given(batch=messages(), keys_from_headers=st.booleans())
def test_the_batch_is_the_python_paths_batch(batch: list[Any], keys_from_headers: bool) -> None:
    src = source(keys_from_headers)
    built: list[Any] = []
    spans = src._convert(list(batch), built, [])
    expected, next_offsets, counts = python_batch(src, batch)
    assert len(built) == len(expected)
    read = [m for m in batch if m.error() is None]
    for got, want, msg in zip(built, expected, read, strict=True):
        same_datum(got, want, msg)
    assert spans == {tp: (offset, counts[tp]) for tp, offset in next_offsets.items()}


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
    reference, _ = source(True)._datum(big, "orders:0:40")
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
