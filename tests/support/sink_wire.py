"""Wire requests for tests, built with protobuf's own API and nothing of ours.

The streams that carry them (SinkFnStream, BatchStream, channel, is_ready) are the SDK's test
kit, sink_runtime.testing; `serving` is its served() for tests that want the server object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sink_runtime.proto import sink_pb2
from sink_runtime.server import SinkServer
from sink_runtime.testing import served
from sink_runtime.types import Datum


def datum_to_request(d: Datum) -> sink_pb2.SinkRequest.Request:
    """The wire request for `d`, built with protobuf's own API and nothing of ours: the
    reference the codec's fast encoders are checked against."""
    r = sink_pb2.SinkRequest.Request(
        id=d.id, value=d.value, keys=list(d.keys), headers=dict(d.headers)
    )
    r.event_time.FromDatetime(d.event_time)
    r.watermark.FromDatetime(d.watermark)
    if d.metadata is not None:
        m = d.metadata
        r.metadata.previous_vertex = m.previous_vertex
        for wire, groups in (
            (r.metadata.sys_metadata, m.sys_metadata),
            (r.metadata.user_metadata, m.user_metadata),
        ):
            for name, pairs in groups.items():
                wire[name].key_value.update(pairs)
    return r


def request(
    id: str,
    value: bytes = b"v",
    *,
    keys: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    event_time: datetime | None = None,
    watermark: datetime | None = None,
) -> sink_pb2.SinkRequest.Request:
    r = sink_pb2.SinkRequest.Request(id=id, value=value, keys=list(keys), headers=headers or {})
    r.event_time.FromDatetime(event_time or datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    r.watermark.FromDatetime(watermark or datetime(2024, 5, 1, 11, 59, tzinfo=UTC))
    return r


def requests(
    n: int, prefix: str = "t:0:", value: bytes = b"v"
) -> list[sink_pb2.SinkRequest.Request]:
    return [request(f"{prefix}{i}", value) for i in range(n)]


@asynccontextmanager
async def serving(handler: Any, directory: str | Path, **options: Any) -> AsyncIterator[SinkServer]:
    """Our SDK server for `handler`, in this process, with its socket in `directory`."""
    async with served(handler, directory=directory, **options) as sink:
        yield sink.server
