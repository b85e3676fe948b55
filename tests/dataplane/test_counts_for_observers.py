"""What the forwarder shows its observers (the local runner): `Counts` and the stuck datums.

`metrics.counts()` is the one vocabulary of every report: each field is a counter's name and
its total, messages and attempts apart. `Forwarder.exhausted_in_flight()` tells a runner of
a finite input that what is left only keeps failing. Real SDK sink servers over Unix sockets.
"""

from __future__ import annotations

import asyncio

from sink_runtime.dataplane.forwarder import Forwarder, Sinks
from sink_runtime.dataplane.metrics import ATTEMPT_COUNTS, MESSAGE_COUNTS, Counts, Metrics, counts
from sink_runtime.dataplane.retry import RetryPolicy
from sink_runtime.types import Datum, Response
from tests.dataplane.harness import SourceFactory, run_forwarder, udsink
from tests.support.recording_sink import SdkFactory

X = "file:0:2"


def test_every_count_is_a_counter_of_the_same_name() -> None:
    registered = {m.name for m in Metrics().registry.collect()}
    names = list(Counts())
    assert names == [*MESSAGE_COUNTS, *ATTEMPT_COUNTS]
    for name in names:
        assert f"udsink_{name}" in registered, name


async def test_counts_keep_messages_and_attempts_apart(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    def answer(d: Datum, n: int) -> Response:
        return Response.failure(d.id, "busy") if d.id == X and n <= 2 else Response.ok(d.id)

    primary = await sdk_sink(answer)
    metrics = Metrics()
    await run_forwarder(file_source(5), Sinks(udsink(primary, metrics)), metrics=metrics)
    c = counts(metrics)
    assert c.messages() == {
        "read": 5,
        "written": 5,
        "served": 0,
        "on_success": 0,
        "fallback": 0,
        "dropped": 0,
        "acked": 5,
    }
    assert c.attempts() == {
        "failed": 2,
        "nacked": 0,
        "retried": 2,
        "contract_violations": 0,
        "sink_stalls": 0,
        "sink_write_timeouts": 0,
    }


async def test_exhausted_in_flight_names_what_only_keeps_failing(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    def answer(d: Datum, n: int) -> Response:
        return Response.failure(d.id, "always") if d.id == X else Response.ok(d.id)

    primary = await sdk_sink(answer)
    metrics = Metrics()
    source = file_source(3)
    sink = udsink(primary, metrics)
    await sink.start()
    await source.start()
    retry = RetryPolicy(interval_s=0.005, factor=1.0, cap_s=0.005, jitter=0.0, steps=2)
    fwd = Forwarder(source, Sinks(sink), metrics=metrics, batch_timeout_s=0.05, retry=retry)
    running = asyncio.ensure_future(fwd.run())
    try:
        for _ in range(400):
            exhausted = fwd.exhausted_in_flight()
            if exhausted:
                break
            await asyncio.sleep(0.01)
        assert exhausted == {X: "FAILURE: always"}
        assert source.acked_ids == []  # the batch is held, never committed
        assert fwd.in_flight == 3
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await sink.close()
        await source.close()
