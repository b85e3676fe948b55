"""A sink author's mistakes end the stream with a clear INTERNAL error, never the server.

Contract violations (count, unknown or duplicate ids, things that are not Responses) and
handler exceptions: the server logs one error naming the ids, ends the stream with INTERNAL
and the same message, and the next stream is served normally.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import grpc
import pytest

from sink_runtime import Datum, Response, Responses, Status, isolate_errors
from sink_runtime.testing import WIRE_PATHS, StreamError, WirePath, datums, served

Handler = Callable[[Iterator[Datum]], object]


def drop_last(datums: Iterator[Datum]) -> Responses:
    return Responses.of([Response.ok(d.id) for d in datums][:-1])


def unknown_id(datums: Iterator[Datum]) -> Responses:
    return Responses.of(Response.ok(d.id + "-typo") for d in datums)


def duplicate(datums: Iterator[Datum]) -> Responses:
    batch = list(datums)
    return Responses.of([Response.ok(batch[0].id) for _ in batch])


def not_responses(datums: Iterator[Datum]) -> Responses:
    return [d.id for d in datums]  # type: ignore[return-value]


def returns_none(datums: Iterator[Datum]) -> Responses:
    for _ in datums:
        pass
    return None  # type: ignore[return-value]


def raises(datums: Iterator[Datum]) -> Responses:
    raise ConnectionError("database at db:5432 refused the connection")


async def raises_async(datums: Iterator[Datum]) -> Responses:
    raise ConnectionError("database at db:5432 refused the connection")


def healthy(datums: Iterator[Datum]) -> Responses:
    return Responses.of(Response.ok(d.id) for d in datums)


CASES: list[tuple[Handler, str]] = [
    (
        drop_last,
        "sink handler drop_last broke the sink contract on a batch of 3 datums: contract "
        "violation (count): batch of 3 datums got 2 results; contract violation (missing-id): "
        "no result for ids 't:0:2'",
    ),
    (
        unknown_id,
        "sink handler unknown_id broke the sink contract on a batch of 3 datums: contract "
        "violation (unknown-id): results for unknown ids 't:0:0-typo', 't:0:1-typo', "
        "'t:0:2-typo'; contract violation (missing-id): no result for ids 't:0:0', 't:0:1', "
        "'t:0:2'",
    ),
    (
        duplicate,
        "sink handler duplicate broke the sink contract on a batch of 3 datums: contract "
        "violation (duplicate-id): more than one result for ids 't:0:0'; contract violation "
        "(missing-id): no result for ids 't:0:1', 't:0:2'",
    ),
    (
        not_responses,
        "sink handler not_responses returned 't:0:0' (str) among its results for a batch of 3 "
        "datums; expected only Response objects (Response.ok(datum.id), "
        "Response.failure(datum.id, err), ...)",
    ),
    (
        returns_none,
        "sink handler returns_none returned None; it must return one Response per datum "
        "(Responses, or any iterable of Response) (batch of 3 datums)",
    ),
    (
        raises,
        "sink handler raises raised ConnectionError: database at db:5432 refused the "
        "connection (batch of 3 datums; the client will resend it)",
    ),
    (
        raises_async,
        "sink handler raises_async raised ConnectionError: database at db:5432 refused the "
        "connection (batch of 3 datums; the client will resend it)",
    ),
]


@pytest.mark.parametrize("path", WIRE_PATHS)
@pytest.mark.parametrize(("handler", "message"), CASES, ids=[c[0].__name__ for c in CASES])
async def test_the_stream_ends_with_internal_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
    handler: Handler,
    message: str,
    path: WirePath,
) -> None:
    calls = 0

    # The broken handler answers the first batch, a healthy one every later batch.
    def flaky(datums: Iterator[Datum]) -> Responses:
        nonlocal calls
        calls += 1
        return handler(datums) if calls == 1 else healthy(datums)  # type: ignore[return-value]

    async def flaky_async(datums: Iterator[Datum]) -> Responses:
        nonlocal calls
        calls += 1
        return await raises_async(datums) if calls == 1 else healthy(datums)

    sink = flaky_async if handler is raises_async else flaky
    sink.__qualname__ = handler.__name__

    batch = datums("a", "b", "c", topic="t")
    async with served(sink) as client:
        with pytest.raises(StreamError) as e:
            await client.write(batch, path=path)
        assert (e.value.code, e.value.details) == (grpc.StatusCode.INTERNAL, message)
        # The client reconnects and resends: the server answers.
        for again in WIRE_PATHS:
            (await client.write(batch, path=again)).assert_all_ok()

    # Only the server's own lines: grpcio may log "Event loop is closed" for a previous
    # test's loop into this one.
    [error] = [
        r for r in caplog.records if r.levelno == logging.ERROR and r.name == "sink_runtime.server"
    ]
    assert error.getMessage() == message
    assert error.batch_size == 3  # type: ignore[attr-defined]
    assert error.ids == ["t:0:0", "t:0:1", "t:0:2"]  # type: ignore[attr-defined]
    if handler in (raises, raises_async):
        assert error.exc_info is not None  # the traceback is in the log


async def test_isolated_errors_fail_only_their_datums_over_the_wire() -> None:
    @isolate_errors
    def write_one(d: Datum) -> Response:
        if d.id.endswith("1"):
            raise ValueError("bad row")
        return Response.ok(d.id)

    async with served(write_one) as client:
        results = await client.write(datums("a", "b", "c", topic="t"), path="batch")
    assert results.by_status() == {Status.SUCCESS: ("t:0:0", "t:0:2"), Status.FAILURE: ("t:0:1",)}
    assert results["t:0:1"].err == "ValueError: bad row"
