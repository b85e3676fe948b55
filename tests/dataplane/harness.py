"""Helpers of the data plane tier: a forwarder runner, input files, short names for factories.

Separate from conftest.py (which holds only fixtures) so test modules import these by name.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sink_runtime.dataplane.forwarder import Forwarder, Sinks
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import Sink
from sink_runtime.dataplane.retry import RetryPolicy
from sink_runtime.dataplane.sinks.udsink import UserSinkClient
from sink_runtime.dataplane.sources.file import FileSource
from tests.dataplane.h2_sink import H2Sink
from tests.dataplane.scripted_sink import ScriptedSink

RUN_TIMEOUT_S = 30.0
# Fast backoff for tests: the behaviour is asserted, not the timing.
FAST_RETRY = RetryPolicy(interval_s=0.005, factor=2.0, cap_s=0.02, jitter=0.0, steps=3)

ScriptedFactory = Callable[..., Awaitable[ScriptedSink]]
H2SinkFactory = Callable[..., Awaitable[H2Sink]]
SourceFactory = Callable[[int], FileSource]


def write_jsonl(path: Path, count: int, *, keys: bool = True) -> Path:
    """`count` lines: value `v<i>`, keys `["k<i%3>", "p<i>"]`, header `n=<i>`."""
    lines = [
        json.dumps(
            {
                "value": f"v{i}",
                "keys": [f"k{i % 3}", f"p{i}"] if keys else [],
                "headers": {"n": str(i)},
            }
        )
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def ids(n: int) -> list[str]:
    """The ids FileSource gives the lines of write_jsonl(..., n)."""
    return [f"file:0:{i}" for i in range(1, n + 1)]


async def run_forwarder(
    source: FileSource,
    sinks: Sinks,
    *,
    metrics: Metrics,
    retry: RetryPolicy = FAST_RETRY,
    batch_size: int = 10,
    **options: Any,
) -> Forwarder:
    """Start the sinks and the source, forward until the source is exhausted, close sinks."""
    for s in sinks.by_role().values():
        await s.start()
    await source.start()
    fwd = Forwarder(
        source,
        sinks,
        metrics=metrics,
        batch_size=batch_size,
        batch_timeout_s=0.05,
        retry=retry,
        **options,
    )
    try:
        await asyncio.wait_for(fwd.run(), RUN_TIMEOUT_S)
    finally:
        for s in sinks.by_role().values():
            await s.close()
        await source.close()
    return fwd


async def until(condition: Callable[[], bool], what: str, within_s: float = 10.0) -> None:
    """Wait until `condition()` holds; fail naming `what` after `within_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        assert loop.time() < deadline, f"not within {within_s:g}s: {what}"
        await asyncio.sleep(0.01)


async def http_get(port: int, path: str) -> tuple[int, str]:
    """GET `path` from a data plane's HTTP server on loopback: (status, body)."""

    def fetch() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    return await asyncio.to_thread(fetch)


def udsink(server: ScriptedSink | Any, metrics: Metrics, name: str = "primary", **cfg: Any) -> Sink:
    """Our gRPC client for a sink server that has `.config()` (scripted or SDK)."""
    return UserSinkClient(server.config(**cfg), metrics=metrics, name=name)
