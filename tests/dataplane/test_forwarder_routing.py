"""Routing of every status, retries, onFailure and NACK, with sinks served by our SDK server.

The forwarder reads a JSON-lines file, delivers to real SDK sink servers over Unix sockets
(primary, and fallback / on-success / serve sinks as further servers), and the tests assert
what each sink received, what the source acknowledged, and the metrics.
"""

from __future__ import annotations

import pytest

from sink_runtime.config import constants
from sink_runtime.dataplane.forwarder import Sinks
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.retry import RetryPolicy
from sink_runtime.types import Datum, Message, Response
from tests.dataplane.harness import (
    FAST_RETRY,
    ScriptedFactory,
    SourceFactory,
    ids,
    run_forwarder,
    udsink,
)
from tests.dataplane.scripted_sink import ok_all
from tests.support.recording_sink import Answer, SdkFactory

X, Y, Z = "file:0:2", "file:0:5", "file:0:7"


def fail_until(target: str, failures: int) -> Answer:
    def answer(d: Datum, n: int) -> Response:
        if d.id == target and n <= failures:
            return Response.failure(d.id, f"db timeout #{n}")
        return Response.ok(d.id)

    return answer


async def test_failures_retry_only_the_failed_datums(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    primary = await sdk_sink(fail_until(X, 2))
    metrics = Metrics()
    source = file_source(8)
    await run_forwarder(source, Sinks(udsink(primary, metrics)), metrics=metrics, batch_size=8)

    rec = primary.recorder
    assert rec.count(X) == 3
    assert all(rec.count(i) == 1 for i in ids(8) if i != X)
    assert [[d.id for d in b] for b in rec.batches[1:]] == [[X], [X]]
    assert source.acked_ids == ids(8)
    assert metrics.value("udsink_failed_total", sink="primary") == 2
    assert metrics.value("udsink_retried_total", sink="primary") == 2
    assert metrics.value("udsink_written_total", sink="primary") == 8
    assert metrics.value("udsink_acked_total") == 8


async def test_batches_stay_in_order_while_one_is_retried(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    primary = await sdk_sink(fail_until("file:0:1", 2))
    metrics = Metrics()
    source = file_source(6)
    await run_forwarder(source, Sinks(udsink(primary, metrics)), metrics=metrics, batch_size=3)
    # The second batch is read only after the first is resolved.
    first, second = ["file:0:1", "file:0:2", "file:0:3"], ["file:0:4", "file:0:5", "file:0:6"]
    assert primary.recorder.ids == [*first, "file:0:1", "file:0:1", *second]
    assert source.acked_ids == ids(6)


async def test_retries_go_in_source_order_and_a_shorter_nack_comes_back_first(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    # docs/concepts.md, "Order per partition": in the first batch 2 and 4 fail once, 5 and 6
    # are held (NACK) for 1 s and 50 ms.
    held_ms = {"file:0:5": 1000, "file:0:6": 50}

    def answer(d: Datum, n: int) -> Response:
        if n == 1 and d.id in ("file:0:2", "file:0:4"):
            return Response.failure(d.id, "db timeout")
        if n == 1 and d.id in held_ms:
            return Response.nack(d.id, delay=held_ms[d.id])
        return Response.ok(d.id)

    primary = await sdk_sink(answer)
    metrics = Metrics()
    source = file_source(12)
    await run_forwarder(source, Sinks(udsink(primary, metrics)), metrics=metrics, batch_size=6)
    first, second = ids(12)[:6], ids(12)[6:]
    retried = ["file:0:2", "file:0:4", "file:0:6", "file:0:5"]
    assert primary.recorder.ids == [*first, *retried, *second]
    assert source.acked_ids == ids(12)


def always_fail(target: str) -> Answer:
    def answer(d: Datum, n: int) -> Response:
        if d.id == target:
            return Response.failure(d.id, "constraint violated")
        return Response.ok(d.id)

    return answer


async def test_retry_exhaustion_with_on_failure_drop(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    primary = await sdk_sink(always_fail(X))
    metrics = Metrics()
    source = file_source(4)
    retry = RetryPolicy(interval_s=0.001, cap_s=0.005, jitter=0.0, steps=2, on_failure="drop")
    await run_forwarder(
        source, Sinks(udsink(primary, metrics)), metrics=metrics, retry=retry, batch_size=4
    )
    assert primary.recorder.count(X) == 3  # first attempt + 2 retries
    assert metrics.value("udsink_dropped_total", reason="retries-exhausted") == 1
    assert source.acked_ids == ids(4)  # dropped by explicit policy: terminal


async def test_retry_exhaustion_with_on_failure_fallback_adds_error_headers(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    primary = await sdk_sink(always_fail(X))
    fallback = await sdk_sink(name="fb")
    metrics = Metrics()
    source = file_source(4)
    retry = RetryPolicy(interval_s=0.001, cap_s=0.005, jitter=0.0, steps=2, on_failure="fallback")
    sinks = Sinks(udsink(primary, metrics), fallback=udsink(fallback, metrics, "fallback"))
    await run_forwarder(source, sinks, metrics=metrics, retry=retry, batch_size=4)

    assert primary.recorder.count(X) == 3
    [moved] = fallback.recorder.datums
    assert (moved.id, moved.value, moved.keys) == (X, b"v1", ("k1", "p1"))
    assert dict(moved.headers) == {
        "n": "1",
        constants.FALLBACK_STATUS_HEADER: "FAILURE",
        constants.FALLBACK_ERROR_HEADER: "constraint violated",
        constants.FALLBACK_ATTEMPTS_HEADER: "3",
        constants.FALLBACK_SOURCE_HEADER: X,
    }
    assert metrics.value("udsink_fallback_total", reason="retries-exhausted") == 1
    assert metrics.value("udsink_written_total", sink="fallback") == 1
    assert source.acked_ids == ids(4)


async def test_retry_exhaustion_with_on_failure_retry_keeps_trying(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    primary = await sdk_sink(fail_until(X, 7))
    metrics = Metrics()
    source = file_source(3)
    retry = RetryPolicy(interval_s=0.001, cap_s=0.002, jitter=0.0, steps=2, on_failure="retry")
    await run_forwarder(
        source, Sinks(udsink(primary, metrics)), metrics=metrics, retry=retry, batch_size=3
    )
    assert primary.recorder.count(X) == 8  # well past the 2 steps: never given up
    assert metrics.value("udsink_retried_total", sink="primary") == 7
    assert metrics.value("udsink_dropped_total", reason="retries-exhausted") == 0
    assert source.acked_ids == ids(3)


async def test_fallback_status_goes_to_the_fallback_sink_at_once(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    def answer(d: Datum, n: int) -> Response:
        return Response.fallback(d.id, "schema mismatch") if d.id == Y else Response.ok(d.id)

    primary = await sdk_sink(answer)
    fallback = await sdk_sink(name="fb")
    metrics = Metrics()
    source = file_source(6)
    sinks = Sinks(udsink(primary, metrics), fallback=udsink(fallback, metrics, "fallback"))
    await run_forwarder(source, sinks, metrics=metrics, batch_size=6)

    assert primary.recorder.count(Y) == 1  # no retry of the primary
    [moved] = fallback.recorder.datums
    assert moved.id == Y
    assert moved.headers[constants.FALLBACK_STATUS_HEADER] == "FALLBACK"
    assert moved.headers[constants.FALLBACK_ERROR_HEADER] == "schema mismatch"
    assert moved.headers[constants.FALLBACK_ATTEMPTS_HEADER] == "1"
    assert moved.headers[constants.FALLBACK_SOURCE_HEADER] == Y
    assert metrics.value("udsink_fallback_total", reason="fallback-status") == 1
    assert source.acked_ids == ids(6)


async def test_fallback_writes_that_fail_are_retried_not_lost(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    def answer(d: Datum, n: int) -> Response:
        return Response.fallback(d.id, "no") if d.id in (X, Y) else Response.ok(d.id)

    def flaky(d: Datum, n: int) -> Response:
        return Response.failure(d.id, "dlq full") if n <= 2 else Response.ok(d.id)

    primary = await sdk_sink(answer)
    fallback = await sdk_sink(flaky, name="fb")
    metrics = Metrics()
    source = file_source(6)
    sinks = Sinks(udsink(primary, metrics), fallback=udsink(fallback, metrics, "fallback"))
    await run_forwarder(source, sinks, metrics=metrics, batch_size=6)

    assert fallback.recorder.count(X) == 3 and fallback.recorder.count(Y) == 3
    assert metrics.value("udsink_failed_total", sink="fallback") == 4
    assert metrics.value("udsink_retried_total", sink="fallback") == 4
    assert metrics.value("udsink_fallback_total", reason="fallback-status") == 2
    assert source.acked_ids == ids(6)


async def test_fallback_sink_may_not_reroute(
    sdk_sink: SdkFactory, scripted: ScriptedFactory, file_source: SourceFactory
) -> None:
    """A fallback sink answering FALLBACK once: a violation, retried, then accepted."""
    calls: list[int] = []

    def fb_script(datums: list[Datum]) -> list[Response]:
        calls.append(len(datums))
        if len(calls) == 1:
            return [Response.fallback(d.id, "not me") for d in datums]
        return list(ok_all(datums))  # type: ignore[arg-type]

    primary = await sdk_sink(
        lambda d, n: Response.fallback(d.id) if d.id == X else Response.ok(d.id)
    )
    fallback = await scripted(fb_script, name="fb")
    metrics = Metrics()
    source = file_source(3)
    sinks = Sinks(udsink(primary, metrics), fallback=udsink(fallback, metrics, "fallback"))
    await run_forwarder(source, sinks, metrics=metrics, batch_size=3)
    assert fallback.ids == [X, X]
    assert (
        metrics.value(
            "udsink_contract_violations_total", sink="fallback", kind="status-not-allowed"
        )
        == 1
    )
    assert source.acked_ids == ids(3)


async def test_on_success_sends_the_attached_message_or_the_original(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    def answer(d: Datum, n: int) -> Response:
        if d.id == X:
            msg = Message(b"follow-up", keys=("order", "42")).add_headers(trace="t-1")
            return Response.on_success(d.id, msg)
        if d.id == Y:
            return Response.on_success(d.id)
        return Response.ok(d.id)

    primary = await sdk_sink(answer)
    ons = await sdk_sink(name="ons")
    metrics = Metrics()
    source = file_source(6)
    sinks = Sinks(udsink(primary, metrics), on_success=udsink(ons, metrics, "on_success"))
    await run_forwarder(source, sinks, metrics=metrics, batch_size=6)

    got = {d.id: d for d in ons.recorder.datums}
    assert set(got) == {X, Y}
    assert (got[X].value, got[X].keys, dict(got[X].headers)) == (
        b"follow-up",
        ("order", "42"),
        {"trace": "t-1"},
    )
    assert (got[Y].value, got[Y].keys, dict(got[Y].headers)) == (b"v4", ("k1", "p4"), {"n": "4"})
    assert metrics.value("udsink_on_success_total") == 2
    assert metrics.value("udsink_written_total", sink="primary") == 6
    assert source.acked_ids == ids(6)


async def test_serve_payload_goes_to_the_serve_sink_keyed_by_datum_id(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    def answer(d: Datum, n: int) -> Response:
        return Response.serve(d.id, b"reply:" + d.value) if d.id == Z else Response.ok(d.id)

    primary = await sdk_sink(answer)
    serve = await sdk_sink(name="serve")
    metrics = Metrics()
    source = file_source(8)
    sinks = Sinks(udsink(primary, metrics), serve=udsink(serve, metrics, "serve"))
    await run_forwarder(source, sinks, metrics=metrics, batch_size=8)

    [served] = serve.recorder.datums
    assert (served.id, served.value, served.keys) == (Z, b"reply:v6", (Z,))
    assert metrics.value("udsink_served_total") == 1
    assert source.acked_ids == ids(8)


def nack_once(target: str, delay_ms: int | None) -> Answer:
    def answer(d: Datum, n: int) -> Response:
        if d.id == target and n == 1:
            return Response.nack(d.id, delay=delay_ms, reason="busy")
        return Response.ok(d.id)

    return answer


@pytest.mark.parametrize("delay_ms", [80, None], ids=["result-delay", "config-default"])
async def test_nack_is_redelivered_after_its_delay_without_spending_retries(
    sdk_sink: SdkFactory, file_source: SourceFactory, delay_ms: int | None
) -> None:
    primary = await sdk_sink(nack_once(Z, delay_ms))
    metrics = Metrics()
    source = file_source(8)
    # steps=0: any FAILURE retry would be exhausted at once (and dropped), so a redelivery
    # proves that NACK does not use the retry budget.
    retry = RetryPolicy(interval_s=0.001, cap_s=0.001, jitter=0.0, steps=0, on_failure="drop")
    await run_forwarder(
        source,
        Sinks(udsink(primary, metrics)),
        metrics=metrics,
        retry=retry,
        batch_size=8,
        nack_delay_s=0.06,
    )
    first, second = primary.recorder.deliveries[Z]
    assert second - first >= (delay_ms / 1000 if delay_ms is not None else 0.06)
    assert metrics.value("udsink_nacked_total") == 1
    assert metrics.value("udsink_retried_total", sink="primary") == 0
    assert metrics.value("udsink_dropped_total", reason="retries-exhausted") == 0
    assert source.acked_ids == ids(8)


async def test_nack_max_deliveries_then_on_failure_applies(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    def answer(d: Datum, n: int) -> Response:
        if d.id == X:
            return Response.nack(d.id, delay=1, reason="paused", max_deliveries=3)
        if d.id == Y:
            return Response.nack(d.id, delay=1)  # bounded by the config default (2)
        return Response.ok(d.id)

    primary = await sdk_sink(answer)
    fallback = await sdk_sink(name="fb")
    metrics = Metrics()
    source = file_source(6)
    retry = RetryPolicy(interval_s=0.001, cap_s=0.001, jitter=0.0, steps=5, on_failure="fallback")
    sinks = Sinks(udsink(primary, metrics), fallback=udsink(fallback, metrics, "fallback"))
    await run_forwarder(
        source, sinks, metrics=metrics, retry=retry, batch_size=6, nack_max_deliveries=2
    )
    assert primary.recorder.count(X) == 3
    assert primary.recorder.count(Y) == 2
    moved = {d.id: d for d in fallback.recorder.datums}
    assert moved[X].headers[constants.FALLBACK_STATUS_HEADER] == "NACK"
    assert moved[X].headers[constants.FALLBACK_ERROR_HEADER] == "paused"
    assert moved[X].headers[constants.FALLBACK_ATTEMPTS_HEADER] == "3"
    assert metrics.value("udsink_fallback_total", reason="max-deliveries") == 2
    assert metrics.value("udsink_nacked_total") == 5
    assert source.acked_ids == ids(6)


async def test_log_and_blackhole_sinks_accept_everything(
    file_source: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from sink_runtime.config import LogSinkConfig
    from sink_runtime.dataplane.sinks.blackhole import BlackholeSink
    from sink_runtime.dataplane.sinks.log import LogSink

    caplog.set_level(logging.INFO, logger="sink_runtime.dataplane.sinks.log")
    metrics = Metrics()
    source = file_source(3)
    sinks = Sinks(LogSink(LogSinkConfig(value_preview_bytes=1)), on_success=BlackholeSink())
    await run_forwarder(source, sinks, metrics=metrics, retry=FAST_RETRY)
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("sinks.log")]
    assert lines == [
        f"[log] id=file:0:{i + 1} keys=['k{i % 3}', 'p{i}'] headers={{'n': '{i}'}} "
        f"value='v'... (2 bytes)"
        for i in range(3)
    ]
    assert source.acked_ids == ids(3)
