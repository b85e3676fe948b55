"""A plain gRPC client of the sink contract for tests: raw messages, no SDK logic.

Tests drive the SDK server (and later any sink) with this, so what they assert is what went
over the wire: every message of a SinkFn conversation (to check, e.g., that results never ride
in the EOT message) and every SinkBatchResult of the batch extension.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2

from sink_runtime.proto import batch_pb2, batch_pb2_grpc, sink_pb2, sink_pb2_grpc
from sink_runtime.types import Datum

EOF_MARK: object = grpc.aio.EOF  # type: ignore[attr-defined]
UNLIMITED = 256 * 1024 * 1024


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
async def channel(
    socket_path: str, max_message_bytes: int = UNLIMITED
) -> AsyncIterator[grpc.aio.Channel]:
    ch = grpc.aio.insecure_channel(
        f"unix:{socket_path}",
        options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ],
    )
    try:
        yield ch
    finally:
        await ch.close(None)


async def is_ready(ch: grpc.aio.Channel) -> bool:
    stub = sink_pb2_grpc.SinkStub(ch)  # type: ignore[no-untyped-call]
    response: sink_pb2.ReadyResponse = await stub.IsReady(empty_pb2.Empty())
    return response.ready


class SinkFnStream:
    """One SinkFn stream; every message the server sent is kept in `received`."""

    def __init__(self, ch: grpc.aio.Channel) -> None:
        stub = sink_pb2_grpc.SinkStub(ch)  # type: ignore[no-untyped-call]
        self.call: Any = stub.SinkFn()
        self.received: list[sink_pb2.SinkResponse] = []

    async def handshake(self) -> sink_pb2.SinkResponse:
        await self.call.write(sink_pb2.SinkRequest(handshake=sink_pb2.Handshake(sot=True)))
        return await self.read()

    async def read(self) -> sink_pb2.SinkResponse:
        msg = await self.call.read()
        if msg is EOF_MARK:
            raise EOFError("the server ended the SinkFn stream")
        self.received.append(msg)
        return msg  # type: ignore[no-any-return]

    async def send(self, reqs: Iterable[sink_pb2.SinkRequest.Request]) -> None:
        for r in reqs:
            await self.call.write(sink_pb2.SinkRequest(request=r))
        await self.call.write(sink_pb2.SinkRequest(status=sink_pb2.TransmissionStatus(eot=True)))

    async def answer(self) -> list[sink_pb2.SinkResponse]:
        """The messages of one answer, up to and including the EOT message."""
        out = []
        while True:
            msg = await self.read()
            out.append(msg)
            if msg.HasField("status") and msg.status.eot:
                return out

    async def batch(
        self, reqs: Iterable[sink_pb2.SinkRequest.Request]
    ) -> list[sink_pb2.SinkResponse.Result]:
        """Send a batch, read its answer, return the results (from the non-EOT messages)."""
        await self.send(reqs)
        messages = self.answer_messages = await self.answer()
        return [r for m in messages[:-1] for r in m.results]

    async def done_writing(self) -> None:
        await self.call.done_writing()


class BatchStream:
    """One WriteBatch stream of the batch extension."""

    def __init__(self, ch: grpc.aio.Channel) -> None:
        stub = batch_pb2_grpc.BatchSinkStub(ch)  # type: ignore[no-untyped-call]
        self.call: Any = stub.WriteBatch()

    async def batch(
        self, reqs: Iterable[sink_pb2.SinkRequest.Request]
    ) -> list[sink_pb2.SinkResponse.Result]:
        await self.call.write(batch_pb2.SinkBatch(requests=list(reqs)))
        msg = await self.call.read()
        if msg is EOF_MARK:
            raise EOFError("the server ended the WriteBatch stream")
        return list(msg.results)


@asynccontextmanager
async def serving(handler: Any, directory: str | Path, **options: Any) -> AsyncIterator[Any]:
    """Our SDK server for `handler`, in this process, with its socket in `directory`."""
    from sink_runtime.server import SinkServer

    options.setdefault("grace_s", 5.0)
    server = SinkServer(
        handler,
        socket_path=f"{directory}/sink.sock",
        server_info_path=f"{directory}/sinker-server-info",
        **options,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
