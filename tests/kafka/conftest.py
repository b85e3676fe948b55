"""The Kafka tier's fixtures around the session broker (`kafka_broker`, in tests/conftest.py).

Tests create their own uniquely named topics with
`kafka_broker.unique_topic()` + `create_topic()`; a test that stops the broker must start it
again before it ends (the `broker_restored` fixture does that even when the test fails).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from sink_runtime.server import SinkServer
from tests.dataplane.recording_sink import RecordingSink, SdkSink
from tests.support.kafka_broker import KafkaBroker


@pytest.fixture
def broker_restored(kafka_broker: KafkaBroker) -> Iterator[KafkaBroker]:
    """The session broker, guaranteed running again after the test (for stop/start tests)."""
    yield kafka_broker
    if not kafka_broker.running:
        kafka_broker.start()


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
