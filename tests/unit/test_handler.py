"""Handler forms, the datum iterator, error isolation and the lifecycle hooks' thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from sink_runtime import Datum, DatumIterator, Response, Responses, Sinker, isolate_errors
from sink_runtime.handler import HandlerRunner

BATCH = [Datum(f"t:0:{i}", str(i).encode()) for i in range(4)]
IDS = [d.id for d in BATCH]


def sync_sink(datums: Iterator[Datum]) -> Responses:
    return Responses.of(Response.ok(d.id) for d in datums)


async def async_sink(datums: AsyncIterator[Datum]) -> Responses:
    return Responses.of([Response.ok(d.id) async for d in datums])


def generator_sink(datums: Iterator[Datum]) -> Iterator[Response]:
    for d in datums:
        yield Response.ok(d.id)


class ClassSink(Sinker):
    def __init__(self) -> None:
        self.threads: dict[str, int] = {}

    def setup(self) -> None:
        self.threads["setup"] = threading.get_ident()

    def handler(self, datums: Iterator[Datum]) -> Responses:
        self.threads["handler"] = threading.get_ident()
        return sync_sink(datums)

    def close(self) -> None:
        self.threads["close"] = threading.get_ident()


class AsyncClassSink(Sinker):
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def setup(self) -> None:
        self.calls.append("setup")

    async def handler(self, datums: AsyncIterator[Datum]) -> Responses:
        return await async_sink(datums)

    async def close(self) -> None:
        self.calls.append("close")


class CallableSink:
    async def __call__(self, datums: DatumIterator) -> list[Response]:
        return [Response.ok(d.id) for d in datums]


async def test_datum_iterator_is_both_kinds_of_iterator_sharing_one_position() -> None:
    it = DatumIterator(BATCH)
    assert next(it).id == "t:0:0"
    assert (await it.__anext__()).id == "t:0:1"
    assert [d.id for d in it] == ["t:0:2", "t:0:3"]
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()


@pytest.mark.parametrize(
    "handler",
    [sync_sink, async_sink, generator_sink, CallableSink(), ClassSink(), AsyncClassSink()],
)
async def test_every_handler_form_answers_a_batch(handler: object) -> None:
    runner = HandlerRunner(handler)  # type: ignore[arg-type]
    await runner.setup()
    try:
        assert [r.id for r in await runner.run(BATCH)] == IDS
    finally:
        await runner.close()


async def test_sync_hooks_and_handler_share_one_worker_thread_off_the_loop() -> None:
    sink = ClassSink()
    runner = HandlerRunner(sink)
    await runner.setup()
    await runner.run(BATCH)
    await runner.close()
    assert len(set(sink.threads.values())) == 1
    assert sink.threads["handler"] != threading.get_ident()


async def test_async_hooks_are_awaited() -> None:
    sink = AsyncClassSink()
    runner = HandlerRunner(sink)
    assert runner.is_async
    await runner.setup()
    await runner.close()
    assert sink.calls == ["setup", "close"]


def test_a_non_callable_handler_is_refused() -> None:
    with pytest.raises(TypeError, match=r"must be a function or a Sinker instance, got 42 \(int\)"):
        HandlerRunner(42)  # type: ignore[arg-type]


async def test_a_sinker_without_handler_says_so() -> None:
    runner = HandlerRunner(Sinker())
    with pytest.raises(NotImplementedError, match=r"Sinker must override Sinker\.handler"):
        await runner.run(BATCH)
    await runner.close()


def test_isolate_errors_turns_one_datums_exception_into_its_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @isolate_errors
    def write_one(d: Datum) -> Response:
        if d.value in (b"1", b"3"):
            raise KeyError(f"no table for {d.id}")
        return Response.ok(d.id)

    with caplog.at_level(logging.WARNING, "sink_runtime.handler"):
        out = list(write_one(BATCH))
    assert [r.id for r in out] == IDS
    assert [r.status.name for r in out] == ["SUCCESS", "FAILURE", "SUCCESS", "FAILURE"]
    assert out[1].err == "KeyError: 'no table for t:0:1'"
    [record] = caplog.records
    assert "raised for 2 of 4 datums" in record.getMessage()
    assert record.ids == ["t:0:1", "t:0:3"]  # type: ignore[attr-defined]
    assert record.batch_size == 4  # type: ignore[attr-defined]


async def test_isolate_errors_works_for_async_writers_and_bound_methods() -> None:
    class Sink(Sinker):
        async def write_one(self, d: Datum) -> Response:
            if d.id == "t:0:2":
                raise RuntimeError("boom")
            return Response.ok(d.id)

        async def handler(self, datums: Iterator[Datum]) -> Responses:
            return await isolate_errors(self.write_one)(datums)

    out = await HandlerRunner(Sink()).run(BATCH)
    assert [r.status.name for r in out] == ["SUCCESS", "SUCCESS", "FAILURE", "SUCCESS"]
    assert out[2].err == "RuntimeError: boom"
