"""The wire codec: datums and results survive the trip, field by field, in both directions."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sink_runtime import Datum, Message, Metadata, Response, Status
from sink_runtime.codec import (
    add_results,
    is_lone_request,
    request_to_datum,
    requests_from_messages,
    requests_to_datums,
    response_to_result,
    result_to_response,
)
from sink_runtime.proto import batch_pb2, sink_pb2
from tests.support.sink_wire import datum_to_request
from tests.support.strategies import datums, wire_text

T1 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
T0 = datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
META = Metadata(
    previous_vertex="in",
    sys_metadata={"sys": {"a": b"1"}},
    user_metadata={"user": {"b": b"2", "c": b""}},
)


def full_datum() -> Datum:
    return Datum("t:3:42", b"\x00value", ("k1", "k2"), T1, T0, {"h": "1", "x": ""}, META)


def test_a_datum_round_trips_through_the_wire() -> None:
    d = full_datum()
    wire = sink_pb2.SinkRequest.Request.FromString(datum_to_request(d).SerializeToString())
    back = request_to_datum(wire)
    assert back == d and d == back
    assert back.event_time.tzinfo is not None and back.event_time == T1
    assert back.watermark == T0
    assert dict(back.headers) == {"h": "1", "x": ""}
    assert back.metadata == META


def test_the_request_carries_each_field_at_its_number() -> None:
    r = datum_to_request(full_datum())
    assert (r.id, r.value, list(r.keys)) == ("t:3:42", b"\x00value", ["k1", "k2"])
    assert r.event_time.ToDatetime(tzinfo=UTC) == T1
    assert dict(r.headers) == {"h": "1", "x": ""}
    assert r.metadata.user_metadata["user"].key_value["b"] == b"2"


def test_an_empty_request_gives_epoch_times_and_no_headers() -> None:
    d = request_to_datum(sink_pb2.SinkRequest.Request(id="a"))
    assert d.event_time == datetime(1970, 1, 1, tzinfo=UTC)
    assert d.keys == () and dict(d.headers) == {} and d.metadata is None and d.value == b""


def test_nanoseconds_are_truncated_to_microseconds() -> None:
    r = sink_pb2.SinkRequest.Request(id="a")
    r.event_time.seconds, r.event_time.nanos = 1_700_000_000, 123_456_789
    assert request_to_datum(r).event_time.microsecond == 123_456


def test_a_decoded_datum_behaves_as_a_datum() -> None:
    d = request_to_datum(datum_to_request(full_datum()))
    assert isinstance(d, Datum) and dataclasses.is_dataclass(d)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.value = b"x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.headers = {}  # type: ignore[misc]
    assert repr(d).startswith("Datum(id='t:3:42', value=b'\\x00value', keys=('k1', 'k2')")
    # Copies are plain Datums with the same values.
    for c in (
        dataclasses.replace(d, value=b"new"),
        d.with_headers({"y": "2"}),
        pickle.loads(pickle.dumps(d)),
        copy.copy(d),
    ):
        assert type(c) is Datum
    assert dataclasses.replace(d, value=b"new").value == b"new"
    assert dict(d.with_headers({"y": "2"}).headers) == {"h": "1", "x": "", "y": "2"}
    assert pickle.loads(pickle.dumps(d)) == d


def test_re_encoding_a_decoded_datum_gives_an_independent_copy() -> None:
    original = datum_to_request(full_datum())
    d = request_to_datum(original)
    again = datum_to_request(d)
    assert again == original and again is not original
    again.value = b"changed"
    assert d.value == b"\x00value"


def test_requests_to_datums_keeps_order() -> None:
    batch = batch_pb2.SinkBatch(
        requests=[datum_to_request(Datum(f"t:0:{i}", b"")) for i in range(5)]
    )
    assert [d.id for d in requests_to_datums(batch.requests)] == [f"t:0:{i}" for i in range(5)]


ALL_RESPONSES = [
    Response.ok("a"),
    Response.failure("b", "db locked"),
    Response.fallback("c"),
    Response.fallback("c2", "no room"),
    Response.serve("d", b"payload"),
    Response.serve("d2", b""),
    Response.on_success("e"),
    Response.on_success("f", Message(b"follow", ("k",), {"h": "v"})),
    Response.nack("g"),
    Response.nack("h", delay=1500, reason="slow down", max_deliveries=4),
    Response.nack("i", delay=0),
]


@pytest.mark.parametrize("response", ALL_RESPONSES, ids=lambda r: f"{r.status.name}-{r.id}")
def test_every_response_round_trips(response: Response) -> None:
    wire = sink_pb2.SinkResponse.Result.FromString(response_to_result(response).SerializeToString())
    assert wire.id == response.id and wire.status == response.status.value
    assert result_to_response(wire) == response


def test_result_fields_on_the_wire() -> None:
    serve = response_to_result(Response.serve("d", b"payload"))
    assert serve.HasField("serve_response") and serve.serve_response == b"payload"
    plain = response_to_result(Response.on_success("e"))
    assert not plain.HasField("on_success_msg")
    msg = response_to_result(Response.on_success("f", Message(b"v", ("k",)).add_headers(h="1")))
    assert msg.on_success_msg.value == b"v" and list(msg.on_success_msg.keys) == ["k"]
    assert dict(msg.on_success_msg.headers) == {"h": "1"}
    # Our headers extension is field 1000 of the on-success message.
    assert sink_pb2.SinkResponse.Result.Message.DESCRIPTOR.fields_by_name["headers"].number == 1000
    nack = response_to_result(Response.nack("h", delay=1500, reason="slow"))
    assert nack.nack_options.delay == 1500 and nack.nack_options.reason == "slow"
    assert not nack.nack_options.HasField("max_deliveries")
    assert response_to_result(Response.nack("g")).HasField("nack_options")
    assert response_to_result(Response.failure("b", "e")).err_msg == "e"


def test_add_results_equals_one_by_one_encoding() -> None:
    out = sink_pb2.SinkResponse()
    add_results(out.results, ALL_RESPONSES)
    assert list(out.results) == [response_to_result(r) for r in ALL_RESPONSES]


def test_an_unknown_status_number_is_named() -> None:
    wire = sink_pb2.SinkResponse.Result(id="z")
    wire.status = 9  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"result for id 'z' has status 9.*accepted: 0=SUCCESS"):
        result_to_response(wire)


times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(datums(value_size=64, times=times))
def test_any_datum_round_trips(d: Datum) -> None:
    assert request_to_datum(datum_to_request(d)) == d


@given(st.sampled_from(list(Status)), wire_text, st.binary(max_size=8), st.integers(0, 2**32 - 1))
def test_any_response_round_trips(status: Status, err: str, payload: bytes, n: int) -> None:
    match status:
        case Status.SERVE:
            r = Response(err, status, serve_payload=payload)
        case Status.NACK:
            r = Response(err, status, nack_delay_ms=n, nack_max_deliveries=n % 7)
        case Status.SUCCESS:
            r = Response(err, status)
        case _:
            r = Response(err, status, err=err)
    assert result_to_response(response_to_result(r)) == r


# --- the SDK server's sink.v1 reading: lone request fields, parsed per batch ---

SinkRequest = sink_pb2.SinkRequest


@given(st.lists(datums(value_size=300, times=times), max_size=5))
def test_lone_request_messages_parse_together_as_one_by_one(batch: list[Datum]) -> None:
    raws = [SinkRequest(request=datum_to_request(d)).SerializeToString() for d in batch]
    assert all(is_lone_request(raw) for raw in raws)
    joined = requests_from_messages(raws)
    assert list(joined) == [SinkRequest.FromString(raw).request for raw in raws]


@pytest.mark.parametrize("value_size", [0, 1, 120, 127, 128, 16_383, 16_384, 2_097_152])
def test_a_lone_request_is_recognised_at_every_length_prefix_size(value_size: int) -> None:
    raw = SinkRequest(request=SinkRequest.Request(value=b"v" * value_size)).SerializeToString()
    assert is_lone_request(raw)
    assert not is_lone_request(raw[:-1])  # the length no longer reaches the end
    assert not is_lone_request(raw + b"\x00")


def test_any_other_message_is_not_a_lone_request() -> None:
    r = SinkRequest.Request(id="t:0:0")
    eot = sink_pb2.TransmissionStatus(eot=True)
    others = {
        "empty message": b"",
        "eot": SinkRequest(status=eot).SerializeToString(),
        "handshake": SinkRequest(handshake=sink_pb2.Handshake(sot=True)).SerializeToString(),
        "request and eot": SinkRequest(request=r, status=eot).SerializeToString(),
        "request and eot=false": SinkRequest(
            request=r, status=sink_pb2.TransmissionStatus()
        ).SerializeToString(),
        "request field twice": SinkRequest(request=r).SerializeToString() * 2,
        "unknown field after it": SinkRequest(request=r).SerializeToString() + b"\xa0\x06\x01",
        "length varint never ends": b"\x0a\xff\xff\xff\xff\xff\xff",
    }
    assert [name for name, raw in others.items() if is_lone_request(raw)] == []
