"""The Kafka tier's fixtures around the session broker (`kafka_broker` and `broker_restored`,
in tests/conftest.py): our SDK server in the test process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from sink_runtime.server import SinkServer
from tests.dataplane.recording_sink import RecordingSink, SdkSink


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
