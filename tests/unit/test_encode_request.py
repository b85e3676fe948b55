"""codec.encode_request, the data plane's fast request encoder, against datum_to_request.

Separate from test_codec.py because it pins one equivalence: whatever the datum, the bytes
encode_request writes parse to exactly the message datum_to_request builds.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given

from sink_runtime import Datum, Metadata, codec
from sink_runtime.codec import encode_request, request_to_datum
from sink_runtime.proto import batch_pb2, sink_pb2
from tests.support.sink_wire import datum_to_request
from tests.support.strategies import datums

Request = sink_pb2.SinkRequest.Request
T1 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


@given(datums())
def test_any_datum_encodes_to_the_request_datum_to_request_builds(d: Datum) -> None:
    parsed = Request.FromString(encode_request(d))
    assert parsed == datum_to_request(d)
    assert request_to_datum(parsed) == d


def test_metadata_and_epoch_times_are_encoded_too() -> None:
    meta = Metadata(previous_vertex="in", user_metadata={"u": {"a": b"1"}})
    d = Datum("t:0:1", b"v", ("k",), headers={"h": "1"}, metadata=meta)
    parsed = Request.FromString(encode_request(d))
    assert parsed == datum_to_request(d)
    assert parsed.HasField("event_time") and parsed.HasField("watermark")
    assert request_to_datum(parsed).metadata == meta


def test_a_decoded_datum_is_re_encoded_from_its_own_request() -> None:
    original = Request(id="t:1:2", value=b"x", keys=["a"], headers={"h": "v"})
    original.event_time.FromDatetime(T1)
    d = request_to_datum(Request.FromString(original.SerializeToString()))
    assert Request.FromString(encode_request(d)) == original


def test_one_request_encoding_serves_both_enclosing_messages() -> None:
    # The data plane encodes each request once, as field REQUEST_TAG: a sink.v1 SinkRequest
    # and an entry of SinkBatch.requests must therefore start with the same tag.
    assert codec.length_delimited_tag(batch_pb2.SinkBatch, "requests") == codec.REQUEST_TAG
    assert bytes(((1 << 3) | 2,)) == codec.REQUEST_TAG
