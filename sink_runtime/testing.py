"""A test kit for sink authors: build datums, run a handler, serve it, check the answers.

    from sink_runtime import Status
    from sink_runtime.testing import datums, run_handler

    def test_my_sink() -> None:
        results = run_handler(my_sink, datums(b'{"sku": "A-1"}', b"not json"))
        assert results.ids(Status.FAILURE) == ("test:0:1",)

- `datum(...)`, `datums(...)`: Datums as the data plane builds them, with defaults for what a
  test does not care about (ids `<topic>:<partition>:<offset>`, like the Kafka source's).
- `run_handler(handler, batch)`: calls the handler directly, in any of its forms (function or
  Sinker, sync or async; a Sinker's setup() and close() run around the batch), and checks its
  answer with the same rules the SDK server applies before answering. An answer that breaks
  them raises ContractError with the message the server would log.
- `served(handler)`: serves the handler with the SDK's real server on a private Unix socket in
  this process and gives a client that sends batches over the real gRPC wire, `sink.v1`
  (what Numaflow speaks) or the batch extension (what udsink's data plane prefers).
  `connect(socket_path)` gives the same client for a sink already listening (a process).

Both return Results: the answer to a batch, one Response per datum, in the batch's order.
SinkFnStream and BatchStream are the raw wire streams under SinkClient, for tests of the
conversation itself. docs/sdk.md, "Testing your sink", shows a first test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast

import grpc
from google.protobuf import empty_pb2

from sink_runtime.codec import encode_request, result_to_response
from sink_runtime.contract import check_results
from sink_runtime.handler import HandlerResultError, HandlerRunner, SinkHandler
from sink_runtime.logs import ids_text
from sink_runtime.proto import batch_pb2, batch_pb2_grpc, sink_pb2, sink_pb2_grpc
from sink_runtime.server import SinkServer
from sink_runtime.types import EPOCH, Datum, Metadata, Response, Status

WirePath: TypeAlias = Literal["sink.v1", "batch"]
"""`sink.v1`: Numaflow's SinkFn stream, one message per datum. `batch`: udsink's extension."""
WIRE_PATHS: tuple[WirePath, ...] = ("sink.v1", "batch")
# A test's messages may be large: the client accepts what the server may send.
_CLIENT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
# How long stop() lets a batch in flight finish: shorter than a pod's, a test waits on it.
TEST_GRACE_S = 5.0
_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs


class ContractError(AssertionError):
    """An answer to a batch broke the sink contract (a missing, unknown or duplicate id, or
    something that is not a Response); the message names the handler and the ids."""


class StreamError(AssertionError):
    """The served sink ended the stream with a gRPC error instead of answering the batch
    (a handler exception or a contract violation: INTERNAL, with the server's message)."""

    def __init__(self, path: WirePath, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"the sink ended the {path} stream with {code.name}: {details}")
        self.path = path
        self.code = code
        self.details = details


# --- datums ---


def datum(
    id: str = "test:0:0",
    value: bytes | str = b"",
    *,
    keys: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
    event_time: datetime = EPOCH,
    watermark: datetime = EPOCH,
    metadata: Metadata | None = None,
) -> Datum:
    """One Datum; a str value is encoded as UTF-8, naive times are taken as UTC."""
    return Datum(
        id=id,
        value=value.encode() if isinstance(value, str) else value,
        keys=tuple(keys),
        event_time=event_time,
        watermark=watermark,
        headers=headers or {},
        metadata=metadata,
    )


def datums(
    *values: bytes | str,
    topic: str = "test",
    partition: int = 0,
    offset: int = 0,
    keys: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
    event_time: datetime = EPOCH,
    watermark: datetime = EPOCH,
) -> list[Datum]:
    """A batch, one Datum per value, with ids `<topic>:<partition>:<offset>` counting up from
    `offset` (as the Kafka source names them); the other fields are shared."""
    shared_keys = tuple(keys)
    return [
        datum(
            f"{topic}:{partition}:{offset + i}",
            value,
            keys=shared_keys,
            headers=headers,
            event_time=event_time,
            watermark=watermark,
        )
        for i, value in enumerate(values)
    ]


def _unique_ids(batch: Sequence[Datum]) -> list[str]:
    ids = [d.id for d in batch]
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise ValueError(
            f"a batch holds each datum id once (the data plane never sends one twice); "
            f"repeated: {ids_text(repeated, quoted=True)}"
        )
    return ids


# --- results ---


class Results(Mapping[str, Response]):
    """The answer to one batch: exactly one Response per datum, looked up by datum id.

    `results["t:0:1"].status`; iteration gives the ids in the batch's order. Build it with
    run_handler or SinkClient.write, which check the answer first.
    """

    __slots__ = ("_by_id", "batch")

    def __init__(self, batch: Sequence[Datum], responses: Iterable[Response]) -> None:
        responses = list(responses)
        checked = check_results(_unique_ids(batch), responses)
        if not checked.ok:
            raise ContractError(
                f"the answer to a batch of {len(batch)} datums broke the sink "
                f"contract: {checked.describe()}"
            )
        self.batch: tuple[Datum, ...] = tuple(batch)
        self._by_id = {d.id: checked.valid[d.id] for d in batch}

    def __getitem__(self, id: str) -> Response:
        return self._by_id[id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        return f"Results({self.by_status()!r})"

    @property
    def responses(self) -> tuple[Response, ...]:
        """The responses in the batch's order."""
        return tuple(self._by_id.values())

    def ids(self, status: Status) -> tuple[str, ...]:
        """The ids answered with `status`, in the batch's order."""
        return tuple(i for i, r in self._by_id.items() if r.status == status)

    def by_status(self) -> dict[Status, tuple[str, ...]]:
        """The ids grouped by status (only statuses that occur), in the batch's order."""
        out: dict[Status, list[str]] = {}
        for i, r in self._by_id.items():
            out.setdefault(Status(r.status), []).append(i)
        return {s: tuple(ids) for s, ids in out.items()}

    def assert_all_ok(self) -> None:
        """Raise AssertionError naming every datum not answered SUCCESS, with its status and
        error."""
        other = [r for r in self._by_id.values() if r.status != Status.SUCCESS]
        if other:
            shown = "; ".join(
                f"{r.id!r}: {Status(r.status).name}" + (f" ({r.err})" if r.err else "")
                for r in other
            )
            raise AssertionError(
                f"{len(other)} of {len(self)} datums were not answered SUCCESS: {shown}"
            )


# --- calling a handler directly ---


async def run_handler_async(handler: SinkHandler, batch: Sequence[Datum]) -> Results:
    """run_handler, for a test that already runs in an event loop."""
    _unique_ids(batch)
    runner = HandlerRunner(handler)
    await runner.setup()
    try:
        try:
            responses = await runner.answer(list(batch))
        except HandlerResultError as e:
            raise ContractError(str(e)) from None
    finally:
        await runner.close()
    return Results(batch, responses)


def run_handler(handler: SinkHandler, batch: Sequence[Datum]) -> Results:
    """Call `handler` on one batch as the SDK server would, and return its checked answer.

    Any handler form works: a function or a Sinker, sync or async (sync code runs on one
    worker thread, as served). A Sinker's setup() runs before the batch and close() after it;
    to keep one setup for several batches, use served(). An answer that breaks the contract
    raises ContractError; an exception of the handler propagates unchanged.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_handler_async(handler, batch))
    raise RuntimeError(
        "run_handler() was called inside a running event loop (an async test?); "
        "use `await run_handler_async(handler, batch)` there"
    )


# --- the wire ---


@asynccontextmanager
async def channel(
    socket_path: str, max_message_bytes: int = _CLIENT_MAX_MESSAGE_BYTES
) -> AsyncIterator[grpc.aio.Channel]:
    """A gRPC channel to a sink's Unix socket, closed at the end."""
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
    """The sink's answer to `sink.v1.Sink/IsReady`."""
    stub = sink_pb2_grpc.SinkStub(ch)  # type: ignore[no-untyped-call]
    response: sink_pb2.ReadyResponse = await stub.IsReady(empty_pb2.Empty())
    return response.ready


class SinkFnStream:
    """One raw `sink.v1` SinkFn stream; every message the server sent is kept in `received`."""

    def __init__(self, ch: grpc.aio.Channel) -> None:
        stub = sink_pb2_grpc.SinkStub(ch)  # type: ignore[no-untyped-call]
        self.call: Any = stub.SinkFn()
        self.received: list[sink_pb2.SinkResponse] = []
        self.answer_messages: list[sink_pb2.SinkResponse] = []

    async def handshake(self) -> sink_pb2.SinkResponse:
        await self.call.write(sink_pb2.SinkRequest(handshake=sink_pb2.Handshake(sot=True)))
        return await self.read()

    async def read(self) -> sink_pb2.SinkResponse:
        msg = await self.call.read()
        if msg is _EOF:
            raise EOFError("the server ended the SinkFn stream")
        self.received.append(msg)
        return cast(sink_pb2.SinkResponse, msg)

    async def send(self, reqs: Iterable[sink_pb2.SinkRequest.Request]) -> None:
        """One batch: a message per request, then the EOT."""
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
        """Send a batch, read its answer (kept in `answer_messages`), return the results of
        the messages before the EOT: results inside the EOT do not count."""
        await self.send(reqs)
        messages = self.answer_messages = await self.answer()
        return [r for m in messages[:-1] for r in m.results]

    async def done_writing(self) -> None:
        await self.call.done_writing()


class BatchStream:
    """One raw WriteBatch stream of udsink's batch extension."""

    def __init__(self, ch: grpc.aio.Channel) -> None:
        stub = batch_pb2_grpc.BatchSinkStub(ch)  # type: ignore[no-untyped-call]
        self.call: Any = stub.WriteBatch()

    async def batch(
        self, reqs: Iterable[sink_pb2.SinkRequest.Request]
    ) -> list[sink_pb2.SinkResponse.Result]:
        await self.call.write(batch_pb2.SinkBatch(requests=list(reqs)))
        msg = await self.call.read()
        if msg is _EOF:
            raise EOFError("the server ended the WriteBatch stream")
        return list(msg.results)


def _wire_request(d: Datum) -> sink_pb2.SinkRequest.Request:
    # The data plane's own encoder: the bytes a served sink gets are the bytes it gets in a pod.
    return sink_pb2.SinkRequest.Request.FromString(encode_request(d))


class SinkClient:
    """Sends batches to a sink over the real wire, one batch at a time.

    Keeps one stream per path open across batches, as udsink's data plane does; after a
    stream ended with an error, the next write opens a new one (IsReady, handshake).
    """

    def __init__(self, ch: grpc.aio.Channel, socket_path: str) -> None:
        self.channel = ch
        self.socket_path = socket_path
        self._sink_fn: SinkFnStream | None = None
        self._batch: BatchStream | None = None

    async def is_ready(self) -> bool:
        return await is_ready(self.channel)

    async def write(self, batch: Sequence[Datum], *, path: WirePath = "sink.v1") -> Results:
        """Send one batch over `path` and return the sink's checked answer.

        The sink ending the stream (a handler exception, a contract violation) raises
        StreamError with the gRPC status and the server's message.
        """
        if path not in WIRE_PATHS:
            raise ValueError(f"path={path!r}: expected one of {', '.join(WIRE_PATHS)}")
        _unique_ids(batch)
        requests = [_wire_request(d) for d in batch]
        try:
            if path == "batch":
                if self._batch is None:
                    self._batch = BatchStream(self.channel)
                results = await self._batch.batch(requests)
            else:
                if self._sink_fn is None:
                    stream = SinkFnStream(self.channel)
                    await stream.handshake()
                    self._sink_fn = stream
                results = await self._sink_fn.batch(requests)
        except grpc.aio.AioRpcError as e:
            self._sink_fn = self._batch = None
            raise StreamError(path, e.code(), e.details() or "") from None
        return Results(batch, (result_to_response(r) for r in results))


class ServedSink(SinkClient):
    """The client of a sink served in this process, with its server (`server`)."""

    def __init__(self, ch: grpc.aio.Channel, server: SinkServer) -> None:
        super().__init__(ch, server.socket_path)
        self.server = server


@asynccontextmanager
async def connect(socket_path: str | os.PathLike[str]) -> AsyncIterator[SinkClient]:
    """A client of the sink listening on `socket_path` (one started as a process, say)."""
    path = os.fspath(socket_path)
    async with channel(path) as ch:
        yield SinkClient(ch, path)


def _private_directory() -> str:
    # A Unix socket path holds at most 107 bytes: prefer the short /tmp to a long TMPDIR.
    base = "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else None
    return tempfile.mkdtemp(prefix="udsink-test-", dir=base)


@asynccontextmanager
async def served(
    handler: SinkHandler,
    *,
    directory: str | os.PathLike[str] | None = None,
    grace_s: float = TEST_GRACE_S,
    **server_options: Any,
) -> AsyncIterator[ServedSink]:
    """Serve `handler` with the SDK's server, in this process, and yield a client for it.

    The socket and server-info file go into `directory` (by default a private temporary
    one, removed at the end). setup() runs before the first batch and close() at the end,
    as in a pod. `server_options` go to SinkServer (e.g. max_message_bytes).
    """
    own = directory is None
    where = Path(_private_directory() if directory is None else directory)
    try:
        server = SinkServer(
            handler,
            socket_path=str(where / "sink.sock"),
            server_info_path=str(where / "sinker-server-info"),
            grace_s=grace_s,
            **server_options,
        )
        await server.start()
        try:
            async with channel(server.socket_path) as ch:
                yield ServedSink(ch, server)
        finally:
            await server.stop()
    finally:
        if own:
            shutil.rmtree(where, ignore_errors=True)


__all__ = [
    "WIRE_PATHS",
    "BatchStream",
    "ContractError",
    "Results",
    "ServedSink",
    "SinkClient",
    "SinkFnStream",
    "StreamError",
    "WirePath",
    "channel",
    "connect",
    "datum",
    "datums",
    "is_ready",
    "run_handler",
    "run_handler_async",
    "served",
]
