"""Fixtures of the data plane tier: socket dirs, sink servers (scripted and SDK), sources.

Everything is real: gRPC over Unix sockets in a fresh short directory (socket paths are limited
to about 100 bytes, so not under pytest's long tmp_path), the real forwarder, real sources.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sink_runtime.config import FileSourceConfig
from sink_runtime.dataplane.sources.file import FileSource
from sink_runtime.server import SinkServer
from tests.dataplane.harness import ScriptedFactory, SdkFactory, write_jsonl
from tests.dataplane.recording_sink import Answer, RecordingSink, SdkSink, ok
from tests.dataplane.scripted_sink import Script, ScriptedSink, ok_all


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="udsdp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def scripted(sock_dir: Path) -> AsyncIterator[ScriptedFactory]:
    """`await scripted(script, name=..., batch_extension=..., results_in_eot=...)`."""
    started: list[ScriptedSink] = []

    async def make(script: Script = ok_all, **options: Any) -> ScriptedSink:
        options.setdefault("name", f"s{len(started)}")
        sink = ScriptedSink(sock_dir, script, **options)
        await sink.start()
        started.append(sink)
        return sink

    yield make
    for s in started:
        await s.stop()


@pytest.fixture
async def sdk_sink(sock_dir: Path) -> AsyncIterator[SdkFactory]:
    """`await sdk_sink(answer, name="fb")`: an SDK server whose handler answers by `answer`."""
    started: list[SinkServer] = []

    async def make(answer: Answer = ok, *, name: str | None = None) -> SdkSink:
        name = name or f"sdk{len(started)}"
        recorder = RecordingSink(answer)
        server = SinkServer(
            recorder,
            socket_path=str(sock_dir / f"{name}.sock"),
            server_info_path=str(sock_dir / f"{name}-server-info"),
            grace_s=1.0,
        )
        await server.start()
        started.append(server)
        return SdkSink(server, recorder)

    yield make
    for s in started:
        await s.stop(0)


@pytest.fixture
def file_source(tmp_path: Path) -> Callable[[int], FileSource]:
    def make(count: int) -> FileSource:
        return FileSource(FileSourceConfig(path=str(write_jsonl(tmp_path / "in.jsonl", count))))

    return make
