"""The interop tier's fixtures: official SDK sinks, built once, run unmodified.

`unmodified_sink(sdk, container_type, socket_dir)` starts the interop sink of one SDK in a
private /var/run/numaflow bound to `socket_dir` and stops it (by pid) at the end of the test.
The Kafka broker fixture comes from the Kafka tier's conftest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from sink_runtime.config import constants

# The Kafka tier's session broker and its short socket directories (`sock_dir`).
from tests.kafka.conftest import kafka_broker, sock_dir  # noqa: F401
from tests.support.interop_sinks import sink_command
from tests.support.unmodified_sink import UnmodifiedSink

StartSink = Callable[[str, constants.ContainerType, Path], Awaitable[UnmodifiedSink]]


@pytest.fixture
async def unmodified_sink(tmp_path: Path) -> AsyncIterator[StartSink]:
    started: list[UnmodifiedSink] = []

    async def start(
        sdk: str, container_type: constants.ContainerType, socket_dir: Path
    ) -> UnmodifiedSink:
        command = await asyncio.to_thread(sink_command, sdk)
        sink = UnmodifiedSink(
            command, socket_dir, tmp_path / f"{sdk}-{container_type}.log", container_type
        )
        started.append(sink)
        await sink.start()
        return sink

    yield start
    for sink in started:
        await sink.stop()
