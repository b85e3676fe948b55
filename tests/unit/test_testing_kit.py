"""sink_runtime.testing without a socket: the datum builders, run_handler and Results."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from sink_runtime import Datum, Response, Responses, Sinker, Status, isolate_errors
from sink_runtime.testing import (
    ContractError,
    Results,
    datum,
    datums,
    run_handler,
    run_handler_async,
)
from sink_runtime.types import EPOCH


def ok(batch: Iterator[Datum]) -> Responses:
    return Responses.of(Response.ok(d.id) for d in batch)


def test_datums_are_numbered_like_the_kafka_sources_and_share_the_rest() -> None:
    when = datetime(2026, 12, 1, 8, 30)
    batch = datums(b"a", "b", topic="orders", partition=2, offset=40, keys=["k"], event_time=when)
    assert [(d.id, d.value, d.keys) for d in batch] == [
        ("orders:2:40", b"a", ("k",)),
        ("orders:2:41", b"b", ("k",)),
    ]
    assert {d.event_time for d in batch} == {when.replace(tzinfo=UTC)}
    assert {d.watermark for d in batch} == {EPOCH}
    one = datum(value="é", headers={"h": "1"})
    assert (one.id, one.value, dict(one.headers)) == ("test:0:0", "é".encode(), {"h": "1"})


def test_run_handler_returns_each_response_by_id_in_the_batchs_order() -> None:
    @isolate_errors
    def write_one(d: Datum) -> Response:
        if d.value == b"bad":
            raise ValueError("not a row")
        return Response.ok(d.id)

    results = run_handler(write_one, datums("x", "bad", "y", "bad"))
    assert list(results) == ["test:0:0", "test:0:1", "test:0:2", "test:0:3"]
    assert results["test:0:1"] == Response.failure("test:0:1", "ValueError: not a row")
    assert results.ids(Status.FAILURE) == ("test:0:1", "test:0:3")
    assert results.by_status() == {
        Status.SUCCESS: ("test:0:0", "test:0:2"),
        Status.FAILURE: ("test:0:1", "test:0:3"),
    }
    with pytest.raises(AssertionError) as e:
        results.assert_all_ok()
    assert str(e.value) == (
        "2 of 4 datums were not answered SUCCESS: 'test:0:1': FAILURE (ValueError: not a "
        "row); 'test:0:3': FAILURE (ValueError: not a row)"
    )
    run_handler(ok, datums("a", "b")).assert_all_ok()


def reversed_answer(batch: Iterator[Datum]) -> Responses:
    return Responses.of(Response.ok(d.id) for d in reversed(list(batch)))


def test_any_answer_order_is_put_in_the_batchs_order() -> None:
    results = run_handler(reversed_answer, datums("a", "b", "c"))
    assert [r.id for r in results.responses] == ["test:0:0", "test:0:1", "test:0:2"]


def missing_last(batch: Iterator[Datum]) -> Responses:
    return Responses.of([Response.ok(d.id) for d in batch][:-1])


def duplicate_first(batch: Iterator[Datum]) -> Responses:
    listed = list(batch)
    return Responses.of(Response.ok(listed[0].id) for _ in listed)


def returns_none(batch: Iterator[Datum]) -> Responses:
    return None  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (
            missing_last,
            "sink handler missing_last broke the sink contract on a batch of 3 datums: contract "
            "violation (count): batch of 3 datums got 2 results; contract violation "
            "(missing-id): no result for ids 'test:0:2'",
        ),
        (
            duplicate_first,
            "sink handler duplicate_first broke the sink contract on a batch of 3 datums: "
            "contract violation (duplicate-id): more than one result for ids 'test:0:0'; "
            "contract violation (missing-id): no result for ids 'test:0:1', 'test:0:2'",
        ),
        (
            returns_none,
            "sink handler returns_none returned None; it must return one Response per datum "
            "(Responses, or any iterable of Response) (batch of 3 datums)",
        ),
    ],
    ids=["missing", "duplicate", "none"],
)
def test_a_broken_answer_is_reported_as_the_server_reports_it(
    handler: object, message: str
) -> None:
    with pytest.raises(ContractError) as e:
        run_handler(handler, datums("a", "b", "c"))  # type: ignore[arg-type]
    assert str(e.value) == message


def test_an_exception_of_the_handler_propagates_unchanged() -> None:
    def raises(batch: Iterator[Datum]) -> Responses:
        raise ConnectionError("db:5432 refused")

    with pytest.raises(ConnectionError, match="db:5432 refused"):
        run_handler(raises, datums("a"))


def test_a_sinkers_hooks_run_around_the_batch_and_async_handlers_work() -> None:
    class Store(Sinker):
        def __init__(self) -> None:
            self.events: list[str] = []

        async def setup(self) -> None:
            self.events.append("setup")

        async def handler(self, batch: AsyncIterator[Datum]) -> Responses:
            ids = [d.id async for d in batch]
            self.events.append(f"batch of {len(ids)}")
            return Responses.of(Response.ok(i) for i in ids)

        def close(self) -> None:
            self.events.append("close")

    sink = Store()
    run_handler(sink, datums("a", "b")).assert_all_ok()
    assert sink.events == ["setup", "batch of 2", "close"]


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="repeated: 'test:0:0'"):
        run_handler(ok, [datum(), datum()])
    with pytest.raises(ContractError, match=r"unknown ids 'x'"):
        Results(datums("a"), [Response.ok("x")])


async def test_in_an_event_loop_run_handler_async_is_the_way() -> None:
    with pytest.raises(RuntimeError, match=r"await run_handler_async\(handler, batch\)"):
        run_handler(ok, datums("a"))
    results = await run_handler_async(ok, datums("a"))
    assert results.ids(Status.SUCCESS) == ("test:0:0",)
