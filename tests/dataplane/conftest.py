"""Fixtures of the data plane tier: socket dirs, sink servers (scripted, raw HTTP/2, SDK), sources.

Everything is real: gRPC over Unix sockets in a fresh short directory (socket paths are limited
to about 100 bytes, so not under pytest's long tmp_path), the real forwarder, real sources.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sink_runtime.config import FileSourceConfig
from sink_runtime.dataplane.sources.file import FileSource
from tests.dataplane.h2_sink import H2Sink
from tests.dataplane.harness import H2SinkFactory, ScriptedFactory, write_jsonl
from tests.dataplane.scripted_sink import Script, ScriptedSink, ok_all


async def _servers(new: Callable[..., Any]) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """A factory: `await make(...)` builds a server with `new(index, ...)` and starts it; every
    one started is stopped at the end."""
    started: list[Any] = []

    async def make(*args: Any, **options: Any) -> Any:
        server = new(len(started), *args, **options)
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def scripted(sock_dir: Path) -> AsyncIterator[ScriptedFactory]:
    """`await scripted(script, name=..., batch_extension=..., results_in_eot=...)`."""

    def new(index: int, script: Script = ok_all, **options: Any) -> ScriptedSink:
        options.setdefault("name", f"s{index}")
        return ScriptedSink(sock_dir, script, **options)

    async for make in _servers(new):
        yield make


@pytest.fixture
async def h2_sink(sock_dir: Path) -> AsyncIterator[H2SinkFactory]:
    """`await h2_sink(plan, initial_window=..., headers=..., partial_length=...)`."""

    def new(index: int, plan: list[str], **options: Any) -> H2Sink:
        return H2Sink(sock_dir, plan, name=f"h{index}", **options)

    async for make in _servers(new):
        yield make


@pytest.fixture
def file_source(tmp_path: Path) -> Callable[[int], FileSource]:
    def make(count: int) -> FileSource:
        return FileSource(FileSourceConfig(path=str(write_jsonl(tmp_path / "in.jsonl", count))))

    return make
