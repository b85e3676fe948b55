"""The SDK's values: normal forms, immutability, every Response constructor, Responses."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from sink_runtime import Datum, Message, Response, Responses, Status
from sink_runtime.types import trusted_datum

NAIVE = datetime(2024, 5, 1, 12, 0)


def test_datum_normalises_keys_times_and_headers() -> None:
    keys: list[str] = ["a", "b"]  # lists are accepted and stored as tuples
    d = Datum(id="t:0:1", value=b"v", keys=keys, event_time=NAIVE, headers={"h": "1"})  # type: ignore[arg-type]
    assert d.keys == ("a", "b")
    assert d.event_time == NAIVE.replace(tzinfo=UTC)
    assert d.event_time.tzinfo is not None and d.watermark.tzinfo is not None
    assert isinstance(d.headers, MappingProxyType)
    with pytest.raises(TypeError):
        d.headers["x"] = "y"  # type: ignore[index]


def test_datum_keeps_an_aware_time_in_its_own_zone() -> None:
    plus2 = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    d = Datum("i", b"", event_time=plus2)
    assert d.event_time == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_datum_is_immutable_and_with_headers_copies() -> None:
    d = Datum("i", b"v", headers={"a": "1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.value = b"w"  # type: ignore[misc]
    e = d.with_headers({"a": "2", "b": "3"})
    assert dict(e.headers) == {"a": "2", "b": "3"}
    assert dict(d.headers) == {"a": "1"}


def test_trusted_datum_equals_the_checked_constructor() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    fast = trusted_datum("i", b"v", ("k",), t, t, MappingProxyType({"h": "1"}), None)
    assert fast == Datum("i", b"v", ("k",), t, t, {"h": "1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.id = "j"  # type: ignore[misc]


def test_message_with_keys_and_add_headers() -> None:
    m = Message(b"v", keys=["a"])  # type: ignore[arg-type]  # lists are accepted
    assert m.keys == ("a",)
    m2 = m.with_keys(["x", "y"]).add_headers({"h": "1", "k": "old"}, k="new")
    assert m2.keys == ("x", "y")
    assert dict(m2.headers) == {"h": "1", "k": "new"}
    assert m.keys == ("a",) and dict(m.headers) == {}
    assert dict(m2.add_headers(h="2").headers) == {"h": "2", "k": "new"}


@pytest.mark.parametrize(
    ("response", "status", "fields"),
    [
        (Response.ok("a"), Status.SUCCESS, {}),
        (Response.failure("a", "db down"), Status.FAILURE, {"err": "db down"}),
        (Response.fallback("a"), Status.FALLBACK, {}),
        (Response.fallback("a", "too big"), Status.FALLBACK, {"err": "too big"}),
        (Response.serve("a", b"reply"), Status.SERVE, {"serve_payload": b"reply"}),
        (Response.on_success("a"), Status.ON_SUCCESS, {}),
        (
            Response.on_success("a", Message(b"x")),
            Status.ON_SUCCESS,
            {"message": Message(b"x")},
        ),
        (Response.nack("a"), Status.NACK, {}),
        (
            Response.nack("a", delay=250, reason="busy", max_deliveries=3),
            Status.NACK,
            {"nack_delay_ms": 250, "nack_reason": "busy", "nack_max_deliveries": 3},
        ),
    ],
)
def test_response_constructors(
    response: Response, status: Status, fields: dict[str, object]
) -> None:
    expected = Response("a", status, **fields)  # type: ignore[arg-type]
    assert response == expected
    if response.message is None:  # a Message holds a read-only mapping: not hashable
        assert hash(response) == hash(expected)
    assert response.id == "a" and response.status is status
    defaults = {"err": "", "serve_payload": None, "message": None, "nack_delay_ms": None}
    for name, default in defaults.items():
        assert getattr(response, name) == fields.get(name, default)
    assert pickle.loads(pickle.dumps(response)) == response


def test_response_is_immutable() -> None:
    r = Response.ok("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.status = Status.FAILURE  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.err = "x"  # type: ignore[misc]


def test_responses_collects_in_order() -> None:
    rs = Responses(Response.ok("a")).append(Response.failure("b", "e"))
    assert [r.id for r in rs] == ["a", "b"]
    assert len(rs) == 2
    assert Responses.of(iter(rs)) == rs
    assert Responses.of([]) != rs
    assert "Responses(" in repr(rs)


def test_datum_and_message_pickle() -> None:
    d = Datum("i", b"v", ("k",), headers={"h": "1"})
    assert pickle.loads(pickle.dumps(d)) == d
    m = Message(b"v", ("k",), {"h": "1"})
    assert pickle.loads(pickle.dumps(m)) == m
