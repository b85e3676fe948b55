"""A hung user-defined sink fails its own liveness path; a slow one that answers does not.

A whole data plane (generator source, forwarder, our gRPC client, its HTTP server) against a
scripted sink server on a real Unix socket. The container's liveness probe asks
`/livez/udsink` (sink_runtime.config.sink_liveness); here the test asks it, as the kubelet
would, and plays the kubelet's restart by replacing the sink server with a new one on the
same socket path.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from sink_runtime.config import (
    Backoff,
    BatchConfig,
    GeneratorSourceConfig,
    ObservabilityConfig,
    RetryStrategy,
    RuntimeConfig,
    UserSinkConfig,
)
from sink_runtime.config.sink_liveness import sink_livez_path, unanswered_bound_s
from sink_runtime.dataplane.app import DataPlane
from sink_runtime.dataplane.sources.generator import GeneratorSource
from sink_runtime.types import Datum
from tests.dataplane.harness import http_get, until
from tests.dataplane.scripted_sink import Answer, ScriptedSink, ok_all

WRITE_TIMEOUT_MS = 1_000  # the smallest the config accepts
RECORDS = 30
PATH = sink_livez_path("udsink")
BOUND_S = unanswered_bound_s(WRITE_TIMEOUT_MS, 10_000)


def _config(sink: UserSinkConfig) -> RuntimeConfig:
    return RuntimeConfig(
        source=GeneratorSourceConfig(rate=0, count=RECORDS, key_count=0, partitions=1),
        sink=sink,
        batch=BatchConfig(size=10, timeout_ms=50),
        observability=ObservabilityConfig(metrics_port=0, metrics_host="127.0.0.1"),
        retry_strategy=RetryStrategy(
            backoff=Backoff(interval_ms=10, cap_ms=100, jitter=0.0, steps=3)
        ),
    )


async def _started(sink: ScriptedSink) -> tuple[DataPlane, int]:
    """`sink` serving, and a data plane started against it; its HTTP port."""
    await sink.start()
    dp = DataPlane(_config(sink.config(write_timeout_ms=WRITE_TIMEOUT_MS)))
    assert dp.http is not None
    await dp.start()
    return dp, dp.http.port


def _unanswered(dp: DataPlane) -> float:
    return dp.metrics.value("udsink_sink_unanswered_seconds", sink="primary")


async def _watch(port: int, done: asyncio.Future[Any]) -> list[tuple[int, str]]:
    """Every answer of the sink's liveness path, asked every 50 ms until `done`."""
    seen: list[tuple[int, str]] = []
    while not done.done():
        seen.append(await http_get(port, PATH))
        await asyncio.sleep(0.05)
    return seen


async def test_a_hung_sink_fails_its_path_and_readyz_until_a_new_process_answers(
    sock_dir: Path,
) -> None:
    hang = asyncio.Event()

    async def hangs_after_the_first_batch(datums: list[Datum]) -> Answer:
        if hang.is_set():
            await asyncio.Event().wait()  # never answers
        hang.set()
        return ok_all(datums)

    hung = ScriptedSink(sock_dir, hangs_after_the_first_batch, name="sink")
    dp, port = await _started(hung)
    running = asyncio.ensure_future(dp.run())
    replacement: ScriptedSink | None = None
    try:
        assert await http_get(port, PATH) == (200, "ok\n")
        await until(lambda: _unanswered(dp) > BOUND_S, "the hung sink's wait passed the bound", 60)
        status, body = await http_get(port, PATH)
        assert status == 503
        assert "primary sink at" in body
        assert "without an answer since its last answer" in body
        ready = await http_get(port, "/readyz")
        assert ready[0] == 503
        assert "without an answer" in ready[1]
        # The data plane itself is fine: restarting it would not help the sink.
        assert await http_get(port, "/livez") == (200, "ok\n")
        assert dp.metrics.value("udsink_sink_write_timeouts_total", sink="primary") >= 2

        # The kubelet restarts the sink container: a new process binds the socket anew.
        await hung.stop()
        replacement = ScriptedSink(sock_dir, ok_all, name="sink")
        await replacement.start()
        assert await http_get(port, PATH) == (200, "ok\n")
        await asyncio.wait_for(running, 30)
    finally:
        if not running.done():
            dp.stop(abandon_in_flight=True)
            with contextlib.suppress(Exception):
                await running
        if replacement is not None:
            await replacement.stop()
        await hung.stop()
    # Nothing lost: every record was stored once the new process answered.
    assert isinstance(dp.source, GeneratorSource)
    assert dp.source.committed == {0: RECORDS}
    stored = {i for i in hung.ids[:10]} | set(replacement.ids)
    assert stored == {f"generator:0:{i}" for i in range(RECORDS)}


async def test_a_slow_sink_that_answers_keeps_its_path_healthy(sock_dir: Path) -> None:
    # Every batch takes most of the write timeout, and the second batch's first delivery
    # takes longer (it times out) and is answered on the retry: the sink is slow, not hung.
    deliveries = 0

    async def slow(datums: list[Datum]) -> Answer:
        nonlocal deliveries
        deliveries += 1
        await asyncio.sleep(1.5 * WRITE_TIMEOUT_MS / 1000 if deliveries == 2 else 0.7)
        return ok_all(datums)

    sink = ScriptedSink(sock_dir, slow, name="slow")
    dp, port = await _started(sink)
    running = asyncio.ensure_future(dp.run())
    try:
        seen = await _watch(port, running)
        await running
    finally:
        if not running.done():
            dp.stop(abandon_in_flight=True)
        await sink.stop()
    assert dp.metrics.value("udsink_sink_write_timeouts_total", sink="primary") == 1
    assert seen
    assert {answer for answer in seen} == {(200, "ok\n")}
    assert isinstance(dp.source, GeneratorSource)
    assert dp.source.committed == {0: RECORDS}
