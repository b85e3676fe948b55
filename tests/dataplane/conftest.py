"""Fixtures of the data plane tier: socket dirs, sink servers (scripted and SDK), sources.

Everything is real: gRPC over Unix sockets in a fresh short directory (socket paths are limited
to about 100 bytes, so not under pytest's long tmp_path), the real forwarder, real sources.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sink_runtime.config import FileSourceConfig
from sink_runtime.dataplane.sources.file import FileSource
from tests.dataplane.harness import ScriptedFactory, write_jsonl
from tests.dataplane.scripted_sink import Script, ScriptedSink, ok_all


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
def file_source(tmp_path: Path) -> Callable[[int], FileSource]:
    def make(count: int) -> FileSource:
        return FileSource(FileSourceConfig(path=str(write_jsonl(tmp_path / "in.jsonl", count))))

    return make
