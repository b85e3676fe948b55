"""The gRPC client against scripted sink servers: paths, violations, broken streams.

Each test runs the real forwarder from a file source through our UserSinkClient client to a sink
server over a Unix socket, and asserts what the sink received, what was acknowledged, and
the metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import pytest

from sink_runtime.dataplane.forwarder import Forwarder, Sinks
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import SinkError
from sink_runtime.dataplane.sinks.udsink import UserSinkClient
from sink_runtime.proto import sink_pb2
from sink_runtime.types import Datum, Response, Status
from tests.dataplane.harness import (
    FAST_RETRY,
    ScriptedFactory,
    SourceFactory,
    ids,
    run_forwarder,
    udsink,
)
from tests.dataplane.scripted_sink import Abort


@pytest.mark.parametrize("batch_extension", [True, False], ids=["batch", "sink.v1"])
async def test_all_ok_uses_the_advertised_path_and_keeps_keys_and_headers(
    scripted: ScriptedFactory, file_source: SourceFactory, batch_extension: bool
) -> None:
    sink = await scripted(batch_extension=batch_extension)
    metrics = Metrics()
    source = file_source(25)
    await run_forwarder(source, Sinks(udsink(sink, metrics)), metrics=metrics, batch_size=10)

    expected_path = "batch" if batch_extension else "sink.v1"
    assert [r.path for r in sink.received] == [expected_path] * 3
    assert [len(r.datums) for r in sink.received] == [10, 10, 5]
    assert sink.ids == ids(25)
    d7 = sink.received[0].datums[6]
    assert (d7.value, d7.keys, dict(d7.headers)) == (b"v6", ("k0", "p6"), {"n": "6"})
    assert sink.streams == 1  # one stream kept open across batches
    assert source.acked_ids == ids(25)
    assert metrics.value("udsink_acked_total") == 25
    assert metrics.value("udsink_written_total", sink="primary") == 25


async def test_batch_extension_can_be_turned_off(
    scripted: ScriptedFactory, file_source: SourceFactory
) -> None:
    sink = await scripted(batch_extension=True)
    metrics = Metrics()
    client = udsink(sink, metrics, use_batch_extension=False)
    await run_forwarder(file_source(3), Sinks(client), metrics=metrics)
    assert [r.path for r in sink.received] == ["sink.v1"]


@pytest.mark.parametrize("batch_extension", [True, False])
async def test_all_success_in_any_order_is_accepted_once(
    scripted: ScriptedFactory, file_source: SourceFactory, batch_extension: bool
) -> None:
    # All SUCCESS but not in request order: a correct answer (docs/design/contract.md: any order),
    # checked in full rather than by the in-order fast path, and nothing is sent twice.
    sink = await scripted(lambda datums: [Response.ok(d.id) for d in reversed(datums)])
    metrics = Metrics()
    source = file_source(6)
    client = udsink(sink, metrics, use_batch_extension=batch_extension)
    await run_forwarder(source, Sinks(client), metrics=metrics, batch_size=3)
    assert sink.ids == ids(6)
    assert source.acked_ids == ids(6)
    assert metrics.value("udsink_written_total", sink="primary") == 6
    assert metrics.value("udsink_retried_total", sink="primary") == 0


def _violating(kind: str) -> Callable[[list[Datum]], list[Response | sink_pb2.SinkResponse.Result]]:
    """A sink that breaks the contract once, on the first batch, then behaves."""
    calls = Counter[str]()

    def script(datums: list[Datum]) -> list[Response | sink_pb2.SinkResponse.Result]:
        calls["n"] += 1
        good: list[Response | sink_pb2.SinkResponse.Result] = [Response.ok(d.id) for d in datums]
        if calls["n"] > 1:
            return good
        match kind:
            case "duplicate":
                return [*good, Response.ok(datums[0].id)]
            case "unknown":
                return [*good[:-1], Response.ok("no-such-id")]
            case "count":
                return good[:-1]
            case "fallback-without-fallback-sink":
                return [Response.fallback(datums[0].id, "cannot"), *good[1:]]
            case "unknown-status":
                return [sink_pb2.SinkResponse.Result(id=datums[0].id, status=9), *good[1:]]
        raise AssertionError(kind)

    return script


@pytest.mark.parametrize(
    ("kind", "violation", "message", "affected"),
    [
        ("duplicate", "duplicate-id", "more than one result for ids 'file:0:1'", "file:0:1"),
        ("unknown", "unknown-id", "results for unknown ids 'no-such-id'", "file:0:4"),
        ("count", "count", "batch of 4 datums got 3 results", "file:0:4"),
        (
            "fallback-without-fallback-sink",
            "status-not-allowed",
            "status FALLBACK not allowed here (no fallback sink is configured",
            "file:0:1",
        ),
        ("unknown-status", "missing-id", "no result for ids 'file:0:1'", "file:0:1"),
    ],
)
async def test_contract_violations_are_logged_counted_retried_and_processing_continues(
    scripted: ScriptedFactory,
    file_source: SourceFactory,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    violation: str,
    message: str,
    affected: str,
) -> None:
    sink = await scripted(_violating(kind))
    metrics = Metrics()
    source = file_source(8)
    caplog.set_level(logging.ERROR, logger="sink_runtime.dataplane")
    await run_forwarder(source, Sinks(udsink(sink, metrics)), metrics=metrics, batch_size=4)

    errors = [r.getMessage() for r in caplog.records if "broke the contract" in r.getMessage()]
    assert len(errors) == 1
    assert message in errors[0]
    assert (
        f"1 messages treated as FAILURE (retried, never committed unhandled): {affected}"
        in (errors[0])
    )
    assert metrics.value("udsink_contract_violations_total", sink="primary", kind=violation) >= 1
    # The affected datums were sent again (FAILURE + retry), and the first batch was
    # acknowledged only after that; the second batch went on normally.
    assert sink.ids.count(affected) == 2
    assert len(sink.ids) == 9
    assert source.acked_ids == ids(8)
    assert metrics.value("udsink_retried_total", sink="primary") >= 1


async def test_nothing_is_acknowledged_while_a_violation_persists(
    scripted: ScriptedFactory, file_source: SourceFactory
) -> None:
    """A sink that always duplicates: the batch is never committed (onFailure=retry)."""
    seen_enough = asyncio.Event()

    calls = Counter[str]()

    def duplicating(datums: list[Datum]) -> list[Response]:
        calls["n"] += 1
        if calls["n"] >= 5:
            seen_enough.set()
        return [Response.ok(d.id) for d in [*datums, datums[0]]]

    sink = await scripted(duplicating)
    metrics = Metrics()
    source = file_source(3)
    client = udsink(sink, metrics)
    await client.start()
    await source.start()
    fwd = Forwarder(source, Sinks(client), metrics=metrics, batch_size=3, retry=FAST_RETRY)
    task = asyncio.ensure_future(fwd.run())
    await asyncio.wait_for(seen_enough.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.close()
    assert source.acked_ids == []
    assert metrics.value("udsink_acked_total") == 0
    # The 5th answer may still be in flight when the run is cancelled; 4 were routed.
    violations = metrics.value(
        "udsink_contract_violations_total", sink="primary", kind="duplicate-id"
    )
    assert violations >= 4


async def test_results_inside_the_eot_message_are_not_counted(
    scripted: ScriptedFactory, file_source: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Counter[str]()

    def script(datums: list[Datum]) -> list[Response]:
        calls["n"] += 1
        return [Response.ok(d.id) for d in datums]

    sink = await scripted(script, batch_extension=False, results_in_eot=True)
    metrics = Metrics()
    source = file_source(2)
    client = udsink(sink, metrics)
    await client.start()
    answers = await client.write([Datum(id="a", value=b"x")])
    await client.close()
    assert answers == []  # the result came inside EOT: not counted
    assert any("inside the EOT message" in r.getMessage() for r in caplog.records)
    del source


async def test_handler_crash_reconnects_and_resends_the_same_batch(
    scripted: ScriptedFactory, file_source: SourceFactory
) -> None:
    crashes = Counter[str]()

    def script(datums: list[Datum]) -> list[Response]:
        if crashes["n"] < 2:
            crashes["n"] += 1
            raise Abort("handler raised RuntimeError('db down')")
        return [Response.ok(d.id) for d in datums]

    sink = await scripted(script)
    metrics = Metrics()
    source = file_source(5)
    await run_forwarder(source, Sinks(udsink(sink, metrics)), metrics=metrics, batch_size=5)
    assert sink.received[0].datums == sink.received[2].datums
    assert sink.ids == ids(5) * 3
    assert sink.streams == 3
    assert metrics.value("udsink_sink_reconnects_total", sink="primary") == 2
    assert source.acked_ids == ids(5)
    # Resends inside the client do not spend the forwarder's retry budget.
    assert metrics.value("udsink_retried_total", sink="primary") == 0


@pytest.mark.parametrize("batch_extension", [True, False], ids=["batch", "sink.v1"])
async def test_persistent_stream_failure_raises_sink_error_naming_sink_and_status(
    scripted: ScriptedFactory, batch_extension: bool
) -> None:
    def script(datums: list[Datum]) -> list[Response]:
        raise Abort("handler raised ValueError('bad row')")

    sink = await scripted(script, batch_extension=batch_extension)
    metrics = Metrics()
    client = UserSinkClient(sink.config(), metrics=metrics, name="primary", max_resends=2)
    await client.start()
    with pytest.raises(SinkError) as err:
        await client.write([Datum(id="x:0:1", value=b"v")])
    await client.close()
    text = str(err.value)
    assert f"primary sink at {sink.socket_path}" in text
    assert "after 2 resends" in text
    assert "gRPC status INTERNAL" in text
    assert "bad row" in text
    assert len(sink.received) == 3


async def test_sink_error_makes_the_whole_batch_failure_then_retried(
    scripted: ScriptedFactory, file_source: SourceFactory
) -> None:
    state = Counter[str]()

    def script(datums: list[Datum]) -> list[Response]:
        state["n"] += 1
        if state["n"] <= 2:  # the first write (one send + one resend) fails entirely
            raise Abort("handler crashed")
        return [Response.ok(d.id) for d in datums]

    sink = await scripted(script)
    metrics = Metrics()
    source = file_source(3)
    client = UserSinkClient(sink.config(), metrics=metrics, name="primary", max_resends=1)
    await run_forwarder(source, Sinks(client), metrics=metrics, batch_size=3)
    assert metrics.value("udsink_failed_total", sink="primary") == 3
    assert metrics.value("udsink_retried_total", sink="primary") == 3
    assert source.acked_ids == ids(3)


async def test_sink_restart_is_survived(
    scripted: ScriptedFactory, file_source: SourceFactory
) -> None:
    """The sink server goes away and comes back on the same socket between batches."""
    sink = await scripted()
    metrics = Metrics()
    client = udsink(sink, metrics)
    await client.start()
    assert await client.write([Datum(id="a", value=b"1")]) == [Response.ok("a")]
    await sink.stop()
    await sink.start()
    assert await client.write([Datum(id="b", value=b"2")]) == [Response.ok("b")]
    assert client.is_ready()
    await client.close()
    assert metrics.value("udsink_sink_reconnects_total", sink="primary") == 1
    assert sink.ids == ["a", "b"]


@pytest.mark.parametrize("batch_extension", [True, False], ids=["batch", "sink.v1"])
async def test_batches_are_split_to_fit_and_oversized_datums_fail_locally(
    scripted: ScriptedFactory, batch_extension: bool
) -> None:
    sink = await scripted(batch_extension=batch_extension)
    metrics = Metrics()
    client = udsink(sink, metrics, max_message_bytes=4096)
    await client.start()
    datums = [Datum(id=f"d{i}", value=b"x" * 1000) for i in range(10)]
    datums.insert(3, Datum(id="huge", value=b"y" * 5000))
    answers = await client.write(datums)
    await client.close()
    by_id = {a.id: a for a in answers}
    assert by_id["huge"].status == Status.FAILURE
    assert "message huge is" in by_id["huge"].err
    assert "over the max message size of 4096 bytes" in by_id["huge"].err
    assert all(by_id[f"d{i}"].status == Status.SUCCESS for i in range(10))
    assert "huge" not in sink.ids
    assert sorted(sink.ids) == sorted(f"d{i}" for i in range(10))
    if batch_extension:
        assert len(sink.received) >= 3  # 10 KB in messages of at most 4 KiB


async def test_missing_server_info_fails_start_naming_the_file(
    scripted: ScriptedFactory,
) -> None:
    sink = await scripted()
    await sink.stop()
    client = UserSinkClient(
        sink.config(startup_timeout_ms=1000), metrics=Metrics(), name="fallback"
    )
    with pytest.raises(SinkError) as err:
        await client.start()
    assert f"fallback sink at {sink.socket_path}" in str(err.value)
    assert f"server-info file {sink.server_info_path} does not exist" in str(err.value)
