"""A hand-written sink server for data plane tests: real gRPC on a Unix socket, scripted answers.

Our SDK server checks its handler's answers before sending them, so it cannot play a sink
that breaks the contract; and it always serves the batch extension. This server is the other
side the tests need: it speaks `sink.v1` (and, when asked, `udsink.v1.BatchSink`) straight from
the generated stubs, answers whatever wire results its script returns (duplicates, unknown
ids, forbidden statuses, results inside the EOT message), and aborts a stream with INTERNAL
when the script raises `Abort`, like a sink whose handler crashed. It records every batch it
received and on which path, so tests assert on what the sink saw.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from sink_runtime import codec, serverinfo
from sink_runtime.config import UserSinkConfig, constants
from sink_runtime.proto import batch_pb2, batch_pb2_grpc, sink_pb2, sink_pb2_grpc
from sink_runtime.types import Datum, Response

WireResult = sink_pb2.SinkResponse.Result
Answer = Iterable[Response | WireResult]
Script = Callable[[list[Datum]], Answer | Awaitable[Answer]]


class Abort(Exception):
    """Raised by a script: the server ends the stream with INTERNAL and this message."""


def ok_all(datums: list[Datum]) -> Answer:
    return [Response.ok(d.id) for d in datums]


@dataclass
class Received:
    path: str  # "sink.v1" or "batch"
    datums: list[Datum]


@dataclass
class ScriptedSink:
    """One scripted sink server; `await start()`, `await stop()`."""

    directory: Path
    script: Script = ok_all
    batch_extension: bool = True
    results_in_eot: bool = False
    name: str = "scripted"
    received: list[Received] = field(default_factory=list)
    streams: int = 0  # streams opened (a reconnect opens another)
    _server: Any = None

    @property
    def socket_path(self) -> str:
        return str(self.directory / f"{self.name}.sock")

    @property
    def server_info_path(self) -> str:
        return str(self.directory / f"{self.name}-server-info")

    def config(self, **overrides: Any) -> UserSinkConfig:
        options: dict[str, Any] = {
            "socket_path": self.socket_path,
            "server_info_path": self.server_info_path,
            "startup_timeout_ms": 10_000,
        }
        return UserSinkConfig(**(options | overrides))

    @property
    def ids(self) -> list[str]:
        """Every datum id received, in arrival order (with redeliveries)."""
        return [d.id for r in self.received for d in r.datums]

    async def start(self) -> None:
        server = grpc.aio.server()
        sink_pb2_grpc.add_SinkServicer_to_server(_SinkV1(self), server)
        if self.batch_extension:
            batch_pb2_grpc.add_BatchSinkServicer_to_server(_Batch(self), server)
        server.add_insecure_port(f"unix:{self.socket_path}")
        await server.start()
        self._server = server
        metadata = (
            {constants.BATCH_EXTENSION_KEY: constants.BATCH_EXTENSION_VERSION}
            if self.batch_extension
            else {}
        )
        serverinfo.write_server_info(
            self.server_info_path,
            serverinfo.ServerInfo(
                protocol="uds",
                language="python",
                minimum_numaflow_version=constants.MINIMUM_NUMAFLOW_VERSION,
                version="0.1.0",
                metadata=metadata,
            ),
        )

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.server_info_path)

    async def answer(self, path: str, datums: list[Datum]) -> list[WireResult]:
        self.received.append(Received(path, datums))
        out = self.script(datums)
        if inspect.isawaitable(out):
            out = await out
        return [
            a if isinstance(a, WireResult) else codec.response_to_result(a)
            for a in out  # type: ignore[union-attr]
        ]


class _SinkV1(sink_pb2_grpc.SinkServicer):
    def __init__(self, sink: ScriptedSink) -> None:
        self.sink = sink

    async def IsReady(self, request: Any, context: Any) -> sink_pb2.ReadyResponse:
        return sink_pb2.ReadyResponse(ready=True)

    async def SinkFn(
        self, request_iterator: AsyncIterator[sink_pb2.SinkRequest], context: Any
    ) -> AsyncIterator[sink_pb2.SinkResponse]:
        self.sink.streams += 1
        first = True
        batch: list[Datum] = []
        async for req in request_iterator:
            if first:
                first = False
                if not req.HasField("handshake"):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "handshake expected")
                yield sink_pb2.SinkResponse(handshake=sink_pb2.Handshake(sot=True))
                continue
            if req.HasField("status") and req.status.eot:
                try:
                    results = await self.sink.answer("sink.v1", batch)
                except Abort as err:
                    await context.abort(grpc.StatusCode.INTERNAL, str(err))
                batch = []
                eot = sink_pb2.TransmissionStatus(eot=True)
                if self.sink.results_in_eot:
                    yield sink_pb2.SinkResponse(results=results, status=eot)
                else:
                    yield sink_pb2.SinkResponse(results=results)
                    yield sink_pb2.SinkResponse(status=eot)
                continue
            batch.append(codec.request_to_datum(req.request))


class _Batch(batch_pb2_grpc.BatchSinkServicer):
    def __init__(self, sink: ScriptedSink) -> None:
        self.sink = sink

    async def WriteBatch(
        self, request_iterator: AsyncIterator[batch_pb2.SinkBatch], context: Any
    ) -> AsyncIterator[batch_pb2.SinkBatchResult]:
        self.sink.streams += 1
        async for message in request_iterator:
            datums = [codec.request_to_datum(r) for r in message.requests]
            try:
                results = await self.sink.answer("batch", datums)
            except Abort as err:
                await context.abort(grpc.StatusCode.INTERNAL, str(err))
            yield batch_pb2.SinkBatchResult(results=results)
