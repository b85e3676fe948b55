"""RecordDatum: a Kafka record as a Datum, decoded lazily and encoded straight from its bytes.

Pins the two promises of sources/kafka_record.py: to every user a RecordDatum is the Datum
with the same values (headers decoded by the source's rules), and its wire request parses to
exactly what `datum_to_request` builds for that Datum, whatever the header bytes.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sink_runtime import Datum
from sink_runtime.codec import encode_request
from sink_runtime.dataplane.sources import kafka_record
from sink_runtime.dataplane.sources.kafka_record import record_datum
from sink_runtime.proto import sink_pb2
from sink_runtime.types import EPOCH
from tests.support.sink_wire import datum_to_request
from tests.support.strategies import wire_text

Request = sink_pb2.SinkRequest.Request

# Header values as Kafka carries them: any bytes (valid UTF-8 or not, short or long) or null.
header_values = st.one_of(
    st.none(),
    st.binary(max_size=8),
    wire_text.map(str.encode),
    st.binary(min_size=250, max_size=300),
)
# Kafka timestamps are milliseconds; the source turns them into UTC datetimes.
event_times = st.integers(min_value=0, max_value=2**41).map(
    lambda ms: EPOCH + timedelta(milliseconds=ms)
)


def expected_datum(
    datum_id: str,
    value: bytes,
    keys: tuple[str, ...],
    event_time: datetime,
    raw: dict[str, bytes | None],
) -> Datum:
    headers = {n: "" if v is None else v.decode("utf-8", errors="replace") for n, v in raw.items()}
    return Datum(datum_id, value, keys, event_time, EPOCH, headers)


@given(
    datum_id=wire_text,
    value=st.binary(max_size=300),
    keys=st.lists(wire_text, max_size=3),
    event_time=event_times,
    raw=st.dictionaries(wire_text, header_values, max_size=4),
)
def test_a_record_datum_is_the_datum_and_encodes_to_its_request(
    datum_id: str,
    value: bytes,
    keys: list[str],
    event_time: datetime,
    raw: dict[str, bytes | None],
) -> None:
    d = record_datum(datum_id, value, tuple(keys), event_time, raw)
    expected = expected_datum(datum_id, value, tuple(keys), event_time, raw)
    assert d == expected and expected == d
    assert dict(d.headers) == dict(expected.headers)
    assert d.watermark == EPOCH and d.metadata is None
    parsed = Request.FromString(encode_request(d))
    assert parsed == datum_to_request(expected)
    # Encoding twice gives the same bytes (the first encoding is kept).
    assert encode_request(d) is encode_request(d)


def test_copies_and_pickles_are_plain_datums() -> None:
    raw: dict[str, bytes | None] = {"h": b"1", "bad": b"\xff", "null": None}
    t = datetime(2025, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    d = record_datum("t:0:5", b"v", ("k",), t, raw)
    assert d.headers == {"h": "1", "bad": "\ufffd", "null": ""}
    copy = d.with_headers({"x": "y"})
    assert type(copy) is Datum and copy.headers == {**d.headers, "x": "y"}
    restored = pickle.loads(pickle.dumps(d))
    assert type(restored) is Datum and restored == d


def test_full_caches_are_emptied_and_encoding_stays_right(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny limit: every few records clear the caches; encodings must not change.
    monkeypatch.setattr(kafka_record, "_CACHE_LIMIT", 3)
    t = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(20):
        raw: dict[str, bytes | None] = {"a": str(i).encode(), "b": b"x" * (i % 3)}
        d = record_datum(f"t:0:{i}", b"v", (f"k{i}", "p"), t + timedelta(milliseconds=i), raw)
        expected = expected_datum(d.id, b"v", (f"k{i}", "p"), d.event_time, raw)
        assert Request.FromString(d.encoded_request()) == datum_to_request(expected)
    assert len(kafka_record._header_fields) <= 3
    assert len(kafka_record._key_fields) <= 3
