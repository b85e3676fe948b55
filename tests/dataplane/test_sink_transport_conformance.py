"""Both sink transports (sinks/transport.py) held to one behaviour, against real servers.

Every case runs once over `sink.v1` (our HTTP/2 stream) and once over the batch extension
(grpcio), each against a real gRPC server on a Unix socket: our SDK's server for a well-behaved
sink and one whose handler raises, an SDK sink process killed mid-batch, the scripted server
(scripted_sink.py) for answers out of contract, a sink that hangs and one that goes away
mid-batch, and a server here that answers bytes that are no answer message. The transports'
ready() is held to the same before and after a server is up.
Each asserts the results or the typed error the caller sees, so it fails if either transport
drops, reorders or alters results, or reports a failure as another kind of error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import grpc
import pytest

from sink_runtime import codec
from sink_runtime.contract import check_results
from sink_runtime.dataplane.sinks.grpcio_transport import BatchTransport
from sink_runtime.dataplane.sinks.sink_v1_transport import SinkV1Transport
from sink_runtime.dataplane.sinks.transport import (
    ContractViolation,
    DeadlineExceeded,
    Replies,
    SinkTransport,
    StreamBroken,
    encode_entries,
)
from sink_runtime.proto import batch_pb2, sink_pb2
from sink_runtime.server import SinkServer
from sink_runtime.types import Datum, Response, Status
from tests.dataplane.harness import ScriptedFactory
from tests.dataplane.scripted_sink import Abort
from tests.support.recording_sink import RecordingSink, SdkFactory
from tests.support.sink_process import sink_process
from tests.support.waiting import until_async

PATHS = ["sink.v1", "batch"]
MAX_MESSAGE_BYTES = 64 * 1024
# Long enough for any healthy answer on a loaded machine; the deadline cases set their own.
PATIENCE_S = 30.0


class NewTransport(Protocol):
    def __call__(self, socket_path: str, *, max_message_bytes: int = ...) -> SinkTransport: ...


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def violations() -> list[ContractViolation]:
    """What the transport reported as it happened (sink.v1 reports wire violations so)."""
    return []


@pytest.fixture
async def new_transport(
    path: str, violations: list[ContractViolation]
) -> AsyncIterator[NewTransport]:
    made: list[SinkTransport] = []

    def new(socket_path: str, *, max_message_bytes: int = MAX_MESSAGE_BYTES) -> SinkTransport:
        transport: SinkTransport
        if path == "batch":
            transport = BatchTransport(socket_path, max_message_bytes=max_message_bytes)
        else:
            transport = SinkV1Transport(
                socket_path,
                max_message_bytes=max_message_bytes,
                where="conformance sink",
                on_violation=violations.append,
            )
        assert transport.path == path
        made.append(transport)
        return transport

    yield new
    for transport in made:
        await transport.close()


def within(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


def batch(n: int, size: int = 10) -> list[Datum]:
    return [
        Datum(id=f"c:0:{i}", value=bytes([97 + i % 26]) * size, keys=("k", str(i)), headers={})
        for i in range(n)
    ]


def answers(replies: Replies) -> list[Response]:
    return [codec.result_to_response(r) for results in replies for r in results]


async def connected(transport: SinkTransport) -> SinkTransport:
    assert await transport.connect(within(PATIENCE_S)) is True
    return transport


# --- the same batch, the same results ---


def _mixed(d: Datum, n: int) -> Response:
    i = int(d.id.rsplit(":", 1)[1])
    if i % 3 == 1:
        return Response.failure(d.id, f"cannot store {d.id}")
    if i % 3 == 2:
        return Response.fallback(d.id, "route elsewhere")
    return Response.ok(d.id)


async def test_the_same_batch_gets_the_same_results_in_order(
    sdk_sink: SdkFactory, new_transport: NewTransport
) -> None:
    # 300 datums of 1 KiB: several messages of at most 64 KiB on the batch extension, one
    # stream write on sink.v1; the results come back in the handler's order either way.
    recorder = RecordingSink(_mixed)
    sink = await sdk_sink(recorder)
    transport = await connected(new_transport(sink.server.socket_path))
    datums = batch(300, 1024)
    expected = [_mixed(d, 1) for d in datums]
    assert {a.status for a in expected} == {Status.SUCCESS, Status.FAILURE, Status.FALLBACK}
    replies = await transport.send(encode_entries(datums), within(PATIENCE_S))
    assert answers(replies) == expected
    assert [(d.id, d.value, d.keys) for d in recorder.datums] == [
        (d.id, d.value, d.keys) for d in datums
    ]
    # The next batch goes on the same stream.
    assert await transport.connect(within(PATIENCE_S)) is False
    more = batch(3)
    assert answers(await transport.send(encode_entries(more), within(PATIENCE_S))) == [
        _mixed(d, 1) for d in more
    ]


# --- answers out of contract reach the contract check as sent ---


@pytest.mark.parametrize(
    ("answer", "kinds", "affected"),
    [
        (lambda ds: [Response.ok(d.id) for d in ds[:-1]], ["count", "missing-id"], ("c:0:3",)),
        (
            lambda ds: [*(Response.ok(d.id) for d in ds[:-1]), Response.ok("no-such-id")],
            ["unknown-id", "missing-id"],
            ("c:0:3",),
        ),
    ],
    ids=["wrong-count", "unknown-id"],
)
async def test_answers_out_of_contract_reach_the_contract_check_as_the_sink_sent_them(
    scripted: ScriptedFactory,
    new_transport: NewTransport,
    answer: Callable[[list[Datum]], list[Response]],
    kinds: list[str],
    affected: tuple[str, ...],
) -> None:
    sink = await scripted(answer)
    transport = await connected(new_transport(sink.socket_path))
    datums = batch(4)
    got = answers(await transport.send(encode_entries(datums), within(PATIENCE_S)))
    assert got == answer(datums)
    checked = check_results([d.id for d in datums], got)
    assert [v.kind for v in checked.violations] == kinds
    assert checked.affected == affected


# --- a sink that breaks the wire contract ---


class UndecodableSink:
    """IsReady, SinkFn and WriteBatch on one grpcio server, whose first stream answers its
    first batch with bytes that parse as no answer message; later streams answer SUCCESS."""

    GARBAGE = b"\x0a\xff\x01"  # field 1 declaring 255 bytes, of which one follows

    def __init__(self, directory: Path) -> None:
        self.socket_path = str(directory / "undecodable.sock")
        self.streams = 0
        self.answered: list[list[str]] = []
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "sink.v1.Sink",
                    {
                        "IsReady": grpc.unary_unary_rpc_method_handler(
                            self._is_ready, response_serializer=bytes
                        ),
                        "SinkFn": grpc.stream_stream_rpc_method_handler(
                            self._sink_fn,
                            request_deserializer=sink_pb2.SinkRequest.FromString,
                            response_serializer=bytes,
                        ),
                    },
                ),
                grpc.method_handlers_generic_handler(
                    "udsink.v1.BatchSink",
                    {
                        "WriteBatch": grpc.stream_stream_rpc_method_handler(
                            self._write_batch,
                            request_deserializer=batch_pb2.SinkBatch.FromString,
                            response_serializer=bytes,
                        )
                    },
                ),
            )
        )
        server.add_insecure_port(f"unix:{self.socket_path}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    async def _is_ready(self, request: bytes, context: Any) -> bytes:
        return sink_pb2.ReadyResponse(ready=True).SerializeToString()

    def _answer(self, stream: int, ids: list[str]) -> bytes:
        if stream == 1:
            return self.GARBAGE
        self.answered.append(ids)
        results = [sink_pb2.SinkResponse.Result(id=i, status=sink_pb2.SUCCESS) for i in ids]
        return sink_pb2.SinkResponse(results=results).SerializeToString()

    async def _sink_fn(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[bytes]:
        self.streams += 1
        stream = self.streams
        ids: list[str] = []
        async for request in requests:
            if request.HasField("handshake"):
                yield sink_pb2.SinkResponse(
                    handshake=sink_pb2.Handshake(sot=True)
                ).SerializeToString()
            elif request.HasField("status"):
                yield self._answer(stream, ids)
                eot = sink_pb2.TransmissionStatus(eot=True)
                yield sink_pb2.SinkResponse(status=eot).SerializeToString()
                ids = []
            else:
                ids.append(request.request.id)

    async def _write_batch(
        self, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[bytes]:
        self.streams += 1
        stream = self.streams
        async for message in requests:
            # A SinkBatchResult's results are field 1, like a SinkResponse's.
            yield self._answer(stream, [r.id for r in message.requests])


@pytest.fixture
async def undecodable(sock_dir: Path) -> AsyncIterator[UndecodableSink]:
    sink = UndecodableSink(sock_dir)
    await sink.start()
    yield sink
    await sink.stop()


async def test_an_answer_that_is_no_message_is_a_violation_and_a_reset_starts_clean(
    undecodable: UndecodableSink, new_transport: NewTransport, path: str
) -> None:
    transport = await connected(new_transport(undecodable.socket_path))
    datums = batch(2)
    with pytest.raises(ContractViolation) as err:
        await transport.send(encode_entries(datums), within(PATIENCE_S))
    expected = "SinkResponse" if path == "sink.v1" else "SinkBatchResult"
    assert f"an answer of {len(UndecodableSink.GARBAGE)} bytes is not a {expected}" in str(
        err.value
    )
    # After a reset the same batch goes on a new connection and gets its own answer.
    await transport.reset()
    assert await transport.connect(within(PATIENCE_S)) is True
    again = answers(await transport.send(encode_entries(datums), within(PATIENCE_S)))
    assert again == [Response.ok(d.id) for d in datums]
    assert undecodable.streams == 2
    assert undecodable.answered == [[d.id for d in datums]]


# --- a sink that fails or goes away mid-batch ---


class Hanging:
    """A scripted sink's script that takes each batch and never answers it."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()

    async def __call__(self, datums: list[Datum]) -> list[Response]:
        self.arrived.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable: nothing sets the event")


async def test_a_handler_that_raises_breaks_the_stream(
    sdk_sink: SdkFactory, new_transport: NewTransport, violations: list[ContractViolation]
) -> None:
    def crash(d: Datum, n: int) -> Response:
        raise RuntimeError(f"db down at {d.id}")

    sink = await sdk_sink(crash)
    transport = await connected(new_transport(sink.server.socket_path))
    with pytest.raises(StreamBroken) as err:
        await transport.send(encode_entries(batch(2)), within(PATIENCE_S))
    assert "gRPC status INTERNAL" in str(err.value)
    assert "raised RuntimeError: db down at c:0:0" in str(err.value)
    assert violations == []


async def test_a_server_that_goes_away_mid_batch_breaks_the_stream(
    scripted: ScriptedFactory, new_transport: NewTransport, violations: list[ContractViolation]
) -> None:
    hang = Hanging()
    sink = await scripted(hang)
    transport = await connected(new_transport(sink.socket_path))
    sending = asyncio.ensure_future(transport.send(encode_entries(batch(3)), within(PATIENCE_S)))
    await asyncio.wait_for(hang.arrived.wait(), PATIENCE_S)
    await sink.stop()
    with pytest.raises(StreamBroken):
        await sending
    assert violations == []


# An SDK sink program that takes a batch, says so, and never answers it.
STUCK_SINK = """
import os, time
from pathlib import Path
from sink_runtime import Responses, Sinker, serve

class Stuck(Sinker):
    def handler(self, datums):
        batch = list(datums)
        (Path(os.environ["SINK_DIR"]) / "started").write_text(str(len(batch)))
        time.sleep(3600)
        return Responses()

serve(Stuck())
"""


async def test_a_sink_process_killed_mid_batch_breaks_the_stream(
    sock_dir: Path, new_transport: NewTransport, violations: list[ContractViolation]
) -> None:
    script = sock_dir / "stuck_sink.py"
    script.write_text(STUCK_SINK)
    started = sock_dir / "started"
    async with sink_process(script, sock_dir, env={"SINK_DIR": str(sock_dir)}) as sink:
        transport = await connected(new_transport(sink.socket_path))
        sending = asyncio.ensure_future(
            transport.send(encode_entries(batch(4)), within(PATIENCE_S))
        )
        await until_async(
            started.exists, "the sink did not take the batch", within=PATIENCE_S, every=0.02
        )
        sink.signal(signal.SIGKILL)
        with pytest.raises(StreamBroken):
            await sending
    assert started.read_text() == "4"
    assert violations == []


async def test_a_reset_after_a_broken_stream_starts_clean(
    scripted: ScriptedFactory, new_transport: NewTransport
) -> None:
    calls = 0

    def crash_once(datums: list[Datum]) -> list[Response]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Abort("handler raised ValueError('bad row')")
        return [Response.ok(d.id) for d in datums]

    sink = await scripted(crash_once)
    transport = await connected(new_transport(sink.socket_path))
    datums = batch(2)
    with pytest.raises(StreamBroken) as err:
        await transport.send(encode_entries(datums), within(PATIENCE_S))
    assert "gRPC status INTERNAL: handler raised ValueError('bad row')" in str(err.value)
    await transport.reset()
    assert await transport.connect(within(PATIENCE_S)) is True
    assert answers(await transport.send(encode_entries(datums), within(PATIENCE_S))) == [
        Response.ok(d.id) for d in datums
    ]
    assert sink.streams == 2


# --- deadlines ---


async def test_an_unanswered_batch_ends_at_the_deadline_naming_what_was_awaited(
    scripted: ScriptedFactory, new_transport: NewTransport
) -> None:
    hang = Hanging()
    sink = await scripted(hang)
    transport = await connected(new_transport(sink.socket_path))
    with pytest.raises(DeadlineExceeded) as err:
        await transport.send(encode_entries(batch(3)), within(0.5))
    assert err.value.awaiting == "the answers to the batch of 3 messages"
    assert hang.arrived.is_set()  # the batch had reached the sink: it was the answer that was late


async def test_ready_ends_at_the_deadline_without_a_server_and_answers_once_one_is_up(
    sock_dir: Path, new_transport: NewTransport
) -> None:
    socket_path = str(sock_dir / "late.sock")
    transport = new_transport(socket_path)
    with pytest.raises(DeadlineExceeded) as err:
        await transport.ready(within(0.5))
    assert err.value.awaiting == "IsReady (no answer)"
    # A wait begun before the server exists ends once it is up and ready.
    waiting = asyncio.ensure_future(transport.ready(within(PATIENCE_S)))
    recorder = RecordingSink()
    server = SinkServer(
        recorder,
        socket_path=socket_path,
        server_info_path=str(sock_dir / "late-server-info"),
        grace_s=1.0,
    )
    assert not waiting.done()
    await server.start()
    try:
        await waiting
        await transport.connect(within(PATIENCE_S))
        datums = batch(2)
        got = answers(await transport.send(encode_entries(datums), within(PATIENCE_S)))
        assert got == [Response.ok(d.id) for d in datums]
        assert recorder.ids == [d.id for d in datums]
    finally:
        await transport.close()
        await server.stop(0)


async def test_a_sink_answering_not_ready_is_awaited_as_not_ready(
    sock_dir: Path, new_transport: NewTransport
) -> None:
    server = grpc.aio.server()

    async def not_ready(request: bytes, context: Any) -> bytes:
        return sink_pb2.ReadyResponse(ready=False).SerializeToString()

    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "sink.v1.Sink",
                {
                    "IsReady": grpc.unary_unary_rpc_method_handler(
                        not_ready, response_serializer=bytes
                    )
                },
            ),
        )
    )
    socket_path = str(sock_dir / "warming.sock")
    server.add_insecure_port(f"unix:{socket_path}")
    await server.start()
    try:
        transport = new_transport(socket_path)
        with pytest.raises(DeadlineExceeded) as err:
            await transport.connect(within(0.5))
        assert err.value.awaiting == "IsReady (it answered ready=false)"
    finally:
        await server.stop(None)
