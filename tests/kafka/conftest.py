"""The Kafka tier's fixtures: sockets and an SDK sink in the test process (the broker itself
is the session fixture `kafka_broker` in tests/conftest.py, shared with the fault tier)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from sink_runtime.server import SinkServer
from tests.dataplane.recording_sink import RecordingSink, SdkSink


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short private directory for sink sockets (Unix socket paths are limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="udsk-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def sdk_sink(sock_dir: Path) -> AsyncIterator[Callable[[RecordingSink], Awaitable[SdkSink]]]:
    """Start our SDK server in the test process around a RecordingSink, on a real socket."""
    servers: list[SinkServer] = []

    async def start(recorder: RecordingSink) -> SdkSink:
        server = SinkServer(
            recorder,
            socket_path=str(sock_dir / "sink.sock"),
            server_info_path=str(sock_dir / "sinker-server-info"),
            grace_s=1.0,
        )
        await server.start()
        servers.append(server)
        return SdkSink(server, recorder)

    yield start
    for s in servers:
        await s.stop(0)
