"""The gRPC server that runs a sink handler: `sink.v1.Sink` and `udsink.v1.BatchSink` on one socket.

This is the I/O layer of the SDK: it owns the Unix socket, the server-info file, the two
conversations of docs/design/contract.md and the shutdown sequence, and hands each complete
batch to the handler through handler.HandlerRunner. Both wire paths share one batch step
(`_answer`): call the handler, check its answer with contract.check_results, encode it.

Errors a sink author can cause end the stream, never the process: a handler exception or a
contract violation is logged once (with the batch size and ids) and the stream ends with
INTERNAL and the same message; the client reconnects and resends the batch, and the server
keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import Counter
from collections.abc import Sequence
from types import TracebackType
from typing import Any, NoReturn

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError

from sink_runtime.codec import (
    REQUEST_TAG,
    add_results,
    field_prefix,
    is_lone_request,
    requests_from_messages,
    requests_to_datums,
)
from sink_runtime.config import constants, installed_version
from sink_runtime.handler import HandlerResultError, HandlerRunner, SinkHandler
from sink_runtime.logs import batch_fields, configure_logging
from sink_runtime.proto import batch_pb2, batch_pb2_grpc, sink_pb2, sink_pb2_grpc
from sink_runtime.serverinfo import ServerInfo, resolve_paths, write_server_info
from sink_runtime.types import Datum, Response

log = logging.getLogger("sink_runtime.server")

DEFAULT_GRACE_S = 20.0
# sun_path of a Unix socket address holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107

_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs
# SinkFn reads and writes bytes (see _add_sink_v1): its constant messages, serialized once.
_HANDSHAKE = sink_pb2.SinkResponse(handshake=sink_pb2.Handshake(sot=True)).SerializeToString()
_EOT = sink_pb2.SinkResponse(status=sink_pb2.TransmissionStatus(eot=True)).SerializeToString()
# The EOT request in the form every client sends it; any other form is parsed in full.
_EOT_REQUEST = sink_pb2.SinkRequest(
    status=sink_pb2.TransmissionStatus(eot=True)
).SerializeToString()
SinkResult = sink_pb2.SinkResponse.Result
_SINK_SERVICE = sink_pb2.DESCRIPTOR.services_by_name["Sink"]


def server_info() -> ServerInfo:
    """What this SDK's server writes into its server-info file."""
    return ServerInfo(
        protocol="uds",
        language="python",
        minimum_numaflow_version=constants.MINIMUM_NUMAFLOW_VERSION,
        version=constants.SDK_COMPAT_VERSION,
        metadata={
            constants.BATCH_EXTENSION_KEY: constants.BATCH_EXTENSION_VERSION,
            constants.SDK_VERSION_KEY: installed_version(),
        },
    )


def _describe_request(msg: sink_pb2.SinkRequest) -> str:
    if msg.HasField("handshake"):
        return f"a handshake with sot={msg.handshake.sot}"
    if msg.HasField("status"):
        return f"a transmission status with eot={msg.status.eot}"
    if msg.HasField("request"):
        return f"a datum (id {msg.request.id!r})"
    return "an empty SinkRequest"


class _Drained(Exception):
    """Raised inside a stream that was idle when the server began to drain."""


class SinkServer:
    """A sink handler served over a Unix socket; start() and stop() it, or `async with` it.

    Serves `sink.v1.Sink` (SinkFn, IsReady), for Numaflow and any client of its contract, and
    `udsink.v1.BatchSink` (WriteBatch), the one-message-per-batch path udsink's data plane
    prefers; the server-info metadata advertises the latter.
    """

    def __init__(
        self,
        handler: SinkHandler,
        *,
        socket_path: str | None = None,
        server_info_path: str | None = None,
        container_type: str | None = None,
        max_message_bytes: int = constants.DEFAULT_MAX_MESSAGE_BYTES,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> None:
        self.socket_path, self.server_info_path = resolve_paths(
            container_type, socket_path, server_info_path
        )
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH_BYTES:
            raise ValueError(
                f"socket path {self.socket_path!r} is {len(os.fsencode(self.socket_path))} "
                f"bytes long; a Unix socket path may have at most {MAX_SOCKET_PATH_BYTES}"
            )
        if not isinstance(max_message_bytes, int) or max_message_bytes < 1024:
            raise ValueError(
                f"max_message_bytes={max_message_bytes!r}: expected an int of at least 1024"
            )
        if grace_s < 0:
            raise ValueError(f"grace_s={grace_s!r}: expected a number of seconds >= 0")
        self.max_message_bytes = max_message_bytes
        self.grace_s = grace_s
        self._runner = HandlerRunner(handler)
        self._server: grpc.aio.Server | None = None
        self._draining = False
        # Streams waiting for the start of a batch, cancelled when draining begins.
        self._idle: set[asyncio.Task[Any]] = set()
        self._drain_cancelled: set[asyncio.Task[Any]] = set()
        self._stopping: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    # --- lifecycle ---

    async def start(self) -> None:
        """Run the handler's setup(), listen, then write the server-info file."""
        if self._server is not None:
            raise RuntimeError("this SinkServer was already started")
        try:
            await self._runner.setup()
        except Exception:
            await self._runner.close_worker()
            raise
        try:
            server = self._listen()
            await server.start()
        except Exception as e:
            await self._runner.close()  # setup() succeeded: give its resources back
            raise RuntimeError(f"cannot listen on unix socket {self.socket_path}: {e}") from e
        self._server = server
        # Only now: a client that sees the file must be able to connect.
        write_server_info(self.server_info_path, server_info())
        log.info(
            "sink %s serving sink.v1.Sink and udsink.v1.BatchSink on unix:%s "
            "(server-info %s, max message %d bytes, %s handler)",
            self._runner.name,
            self.socket_path,
            self.server_info_path,
            self.max_message_bytes,
            "async" if self._runner.is_async else "sync",
        )

    def _listen(self) -> grpc.aio.Server:
        for stale in (self.server_info_path, self.socket_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        os.makedirs(os.path.dirname(self.socket_path) or ".", exist_ok=True)
        server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.max_receive_message_length", self.max_message_bytes),
            ]
        )
        # The generated registration functions are untyped.
        _add_sink_v1(_SinkService(self), server)
        batch_pb2_grpc.add_BatchSinkServicer_to_server(_BatchService(self), server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"unix:{self.socket_path}")
        return server

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain and stop: no new streams, idle streams end, in-flight batches get `grace_s`.

        Then close() of the handler runs, and the socket and server-info file are removed.
        Calling it again while it runs shortens the grace period to the new value.
        """
        grace = self.grace_s if grace_s is None else grace_s
        if self._stopping is not None:
            if self._server is not None and not self._stopping.done():
                await self._server.stop(grace)
            await asyncio.shield(self._stopping)
            return
        self._stopping = asyncio.create_task(self._stop(grace))
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float) -> None:
        self._draining = True
        if self._server is None:  # never started (or start failed): nothing to drain
            self._stopped.set()
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.server_info_path)
        for task in list(self._idle):
            self._drain_cancelled.add(task)
            task.cancel()
        try:
            log.info("draining: in-flight batches have %gs to finish", grace)
            await self._server.stop(grace)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
            try:
                await self._runner.close()
            except Exception:
                log.exception("close() of sink %s failed", self._runner.name)
            finally:
                self._stopped.set()
                log.info("sink %s stopped", self._runner.name)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    @property
    def serving(self) -> bool:
        return self._server is not None and not self._draining

    async def __aenter__(self) -> SinkServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- the batch step both paths share ---

    async def _abort(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        code: grpc.StatusCode,
        message: str,
        ids: Sequence[str],
        exc_info: bool = False,
    ) -> NoReturn:
        log.error(message, exc_info=exc_info, extra=batch_fields(ids))
        await context.abort(code, message)
        raise AssertionError("unreachable: context.abort() raises")

    async def _answer(
        self, datums: list[Datum], context: grpc.aio.ServicerContext[Any, Any]
    ) -> list[Response]:
        """Run the handler on one batch and check its answer; abort the stream if needed."""
        if not datums:
            return []
        try:
            responses = await self._runner.answer(datums)
        except asyncio.CancelledError:
            # The stream was cancelled: the client left, or the grace period of a stop ran out.
            log.warning(
                "batch abandoned before the handler answered (stream cancelled); the client "
                "will deliver it again",
                extra=batch_fields([d.id for d in datums]),
            )
            raise
        except HandlerResultError as e:
            await self._abort(context, grpc.StatusCode.INTERNAL, str(e), [d.id for d in datums])
        except Exception as e:
            await self._abort(
                context,
                grpc.StatusCode.INTERNAL,
                f"sink handler {self._runner.name} raised {type(e).__name__}: {e} "
                f"(batch of {len(datums)} datums; the client will resend it)",
                [d.id for d in datums],
                exc_info=True,
            )
        if log.isEnabledFor(logging.DEBUG):
            statuses = Counter(r.status.name for r in responses)
            log.debug(
                "answered a batch: %s", dict(statuses), extra=batch_fields([d.id for d in datums])
            )
        return responses

    # --- reading a stream ---

    async def _read_at_boundary(self, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        """The next message when a batch may start; raises _Drained when draining began.

        Only here, between batches, is a stream idle; a drain cancels the read so the stream
        ends at once instead of holding the shutdown for its whole grace period.
        """
        if self._draining:
            raise _Drained
        task = asyncio.current_task()
        assert task is not None
        self._idle.add(task)
        try:
            return await context.read()
        except asyncio.CancelledError:
            if task in self._drain_cancelled:
                self._drain_cancelled.discard(task)
                task.uncancel()
                raise _Drained from None
            raise
        finally:
            self._idle.discard(task)

    async def _parse_request(
        self,
        raw: bytes,
        context: grpc.aio.ServicerContext[Any, Any],
        what: str,
        before: list[bytes] | None = None,
    ) -> sink_pb2.SinkRequest:
        """One message parsed; bytes that are not a SinkRequest end the stream (the ids of
        the `before` messages of its batch go to the log)."""
        try:
            return sink_pb2.SinkRequest.FromString(raw)
        except DecodeError as e:
            await self._abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"protocol error: {what} ({len(raw)} bytes) is not a sink.v1 SinkRequest: {e}",
                await self._ids_of(before or [], context),
            )

    async def sink_fn(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """One `sink.v1.Sink/SinkFn` stream: handshake, then batches of N datums + EOT.

        Messages arrive as bytes. A request message in its usual form (one `request` field,
        nothing else: is_lone_request reads only its framing) is kept as it came, and a
        batch's messages are parsed together at its EOT; the EOT in its usual form is one
        bytes comparison. Any other message is parsed on its own and checked as before, so
        every form the contract allows is still understood and every violation still named.
        """
        first = await context.read()
        if first is _EOF:
            return
        msg = await self._parse_request(first, context, "the first message of the stream")
        if not (msg.HasField("handshake") and msg.handshake.sot):
            await self._abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "protocol error: a SinkFn stream must start with a handshake "
                f"(SinkRequest{{handshake{{sot: true}}}}), got {_describe_request(msg)}",
                [],
            )
        await context.write(_HANDSHAKE)
        read = context.read
        lone = is_lone_request
        eot = _EOT_REQUEST
        try:
            while True:
                raw = await self._read_at_boundary(context)
                raws: list[bytes] = []
                append = raws.append
                # Per datum only a read, a comparison and a look at the framing.
                while raw is not _EOF and raw != eot:
                    if not lone(raw):
                        full = await self._slow_request(raw, raws, context)
                        if full is None:  # an EOT in another form
                            break
                        raw = full
                    append(raw)
                    raw = await read()
                if raw is _EOF:
                    if raws:
                        ids = await self._ids_of(raws, context)
                        log.warning(
                            "SinkFn stream closed by the client in the middle of a batch; its "
                            "%d datums were not written",
                            len(ids),
                            extra=batch_fields(ids),
                        )
                    return
                datums = requests_to_datums(await self._requests_of(raws, context))
                del raws  # the parsed requests hold the bytes now
                responses = await self._answer(datums, context)
                if responses:
                    for chunk in self._chunks(responses):
                        await context.write(chunk.SerializeToString())
                # Separate message: Numaflow's client does not count results inside the EOT.
                await context.write(_EOT)
                if self._draining:
                    return
        except _Drained:
            return

    async def _slow_request(
        self, raw: bytes, raws: list[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes | None:
        """A message of a batch not in the usual form, parsed in full.

        Returns its request re-framed as a lone request field, or None for an EOT; a
        handshake or bytes that are not a SinkRequest end the stream with INVALID_ARGUMENT.
        """
        position = f"message {len(raws) + 1} of a batch"
        msg = await self._parse_request(raw, context, position, raws)
        if msg.status.eot:
            return None
        if msg.HasField("handshake"):
            await self._abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "protocol error: handshake in the middle of a SinkFn stream, after "
                f"{len(raws)} datums of a batch",
                await self._ids_of(raws, context),
            )
        request = msg.request.SerializeToString()
        return field_prefix(REQUEST_TAG, len(request)) + request

    async def _requests_of(
        self, raws: list[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> Sequence[sink_pb2.SinkRequest.Request]:
        """The requests of a batch's messages; a request that is not valid protobuf ends the
        stream with INVALID_ARGUMENT naming its position in the batch."""
        try:
            return requests_from_messages(raws)
        except DecodeError:
            pass
        for i, raw in enumerate(raws):
            try:
                sink_pb2.SinkRequest.FromString(raw)
            except DecodeError as e:
                await self._abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"protocol error: message {i + 1} of a batch of {len(raws)} "
                    f"({len(raw)} bytes) is not a sink.v1 SinkRequest: {e}",
                    [],
                )
        # Each message parses alone but not joined: cannot happen for lone request fields.
        raise AssertionError("a batch that parses message by message failed to parse joined")

    async def _ids_of(
        self, raws: list[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> list[str]:
        """The ids of a batch read so far (for logs about an unfinished batch)."""
        if not raws:
            return []
        return [r.id for r in await self._requests_of(raws, context)]

    def _chunks(self, responses: list[Response]) -> list[sink_pb2.SinkResponse]:
        """The results in as few SinkResponse messages as the max message size allows."""
        whole = sink_pb2.SinkResponse()
        add_results(whole.results, responses)
        limit = self.max_message_bytes
        if whole.ByteSize() <= limit:
            return [whole]
        out: list[sink_pb2.SinkResponse] = []
        current: list[SinkResult] = []
        size = 0
        for r in whole.results:
            n = r.ByteSize() + 8  # field tag and length prefix of one repeated entry
            if n > limit:
                raise _TooLarge(r.id, n, limit)
            if size + n > limit:
                out.append(sink_pb2.SinkResponse(results=current))
                current, size = [], 0
            current.append(r)
            size += n
        out.append(sink_pb2.SinkResponse(results=current))
        return out

    async def write_batch(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """One `udsink.v1.BatchSink/WriteBatch` stream: each SinkBatch -> one SinkBatchResult."""
        try:
            while True:
                msg = await self._read_at_boundary(context)
                if msg is _EOF:
                    return
                datums = requests_to_datums(msg.requests)
                answer = batch_pb2.SinkBatchResult()
                add_results(answer.results, await self._answer(datums, context))
                size = answer.ByteSize()
                if size > self.max_message_bytes:
                    await self._abort(
                        context,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"the answer to a batch of {len(datums)} datums is {size} bytes, over "
                        f"the max message size of {self.max_message_bytes} bytes (large serve "
                        "payloads or on-success messages?); send smaller batches or raise "
                        "max_message_bytes on both ends",
                        [d.id for d in datums],
                    )
                await context.write(answer)
                if self._draining:
                    return
        except _Drained:
            return


class _TooLarge(Exception):
    def __init__(self, id: str, size: int, limit: int) -> None:
        super().__init__(
            f"the result for id {id!r} is {size} bytes, over the max message size of {limit} "
            "bytes; return a smaller serve payload or on-success message, or raise "
            "max_message_bytes on both ends"
        )
        self.id = id


class _SinkService(sink_pb2_grpc.SinkServicer):
    def __init__(self, server: SinkServer) -> None:
        self._server = server

    async def SinkFn(
        self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        try:
            await self._server.sink_fn(context)
        except _TooLarge as e:
            await self._server._abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(e), [e.id])

    async def IsReady(
        self, request: empty_pb2.Empty, context: grpc.aio.ServicerContext[Any, Any]
    ) -> sink_pb2.ReadyResponse:
        return sink_pb2.ReadyResponse(ready=self._server.serving)


class _BatchService(batch_pb2_grpc.BatchSinkServicer):
    def __init__(self, server: SinkServer) -> None:
        self._server = server

    async def WriteBatch(
        self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        await self._server.write_batch(context)


def _add_sink_v1(service: _SinkService, server: grpc.aio.Server) -> None:
    """Register `sink.v1.Sink` with SinkFn on bytes: no protobuf object per message.

    The generated registration would parse every request into a SinkRequest before the
    server sees it; sink_fn reads the bytes and parses a whole batch at once instead. The
    service and method names come from the .proto's descriptor.
    """
    methods = _SINK_SERVICE.methods_by_name
    handlers = {
        methods["SinkFn"].name: grpc.stream_stream_rpc_method_handler(service.SinkFn),
        methods["IsReady"].name: grpc.unary_unary_rpc_method_handler(
            service.IsReady,
            request_deserializer=empty_pb2.Empty.FromString,
            response_serializer=sink_pb2.ReadyResponse.SerializeToString,
        ),
    }
    name = _SINK_SERVICE.full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)  # type: ignore[attr-defined]


# --- running a server as a program ---


async def serve_async(
    handler: SinkHandler,
    *,
    socket_path: str | None = None,
    server_info_path: str | None = None,
    container_type: str | None = None,
    max_message_bytes: int = constants.DEFAULT_MAX_MESSAGE_BYTES,
    grace_s: float = DEFAULT_GRACE_S,
) -> None:
    """Serve `handler` until SIGTERM or SIGINT, then drain and stop (see SinkServer.stop).

    A second signal stops at once, without waiting for the in-flight batch.
    """
    server = SinkServer(
        handler,
        socket_path=socket_path,
        server_info_path=server_info_path,
        container_type=container_type,
        max_message_bytes=max_message_bytes,
        grace_s=grace_s,
    )
    await server.start()
    loop = asyncio.get_running_loop()
    stops: list[asyncio.Task[None]] = []

    def on_signal(sig: signal.Signals) -> None:
        if not stops:
            log.info("received %s: draining, then stopping", sig.name)
            stops.append(loop.create_task(server.stop()))
        else:
            log.warning("received %s again: stopping now", sig.name)
            stops.append(loop.create_task(server.stop(grace_s=0)))

    handled = (signal.SIGTERM, signal.SIGINT)
    for sig in handled:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await server.wait_stopped()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await server.stop()
        for task in stops:
            await task


def serve(
    handler: SinkHandler,
    *,
    socket_path: str | None = None,
    server_info_path: str | None = None,
    container_type: str | None = None,
    max_message_bytes: int = constants.DEFAULT_MAX_MESSAGE_BYTES,
    log_level: str | None = None,
    log_format: str | None = None,
    grace_s: float = DEFAULT_GRACE_S,
) -> None:
    """Serve `handler` (a sink function or a Sinker) until SIGTERM/SIGINT; blocks.

    Paths come from the arguments, else UDSINK_SOCKET_PATH / UDSINK_SERVER_INFO_PATH, else
    NUMAFLOW_UD_CONTAINER_TYPE under /var/run/numaflow (what Numaflow and udsink set up).
    Logging: `log_level` / `log_format` default to UDSINK_LOG_LEVEL / UDSINK_LOG_FORMAT.
    """
    configure_logging(log_level, log_format)
    try:
        asyncio.run(
            serve_async(
                handler,
                socket_path=socket_path,
                server_info_path=server_info_path,
                container_type=container_type,
                max_message_bytes=max_message_bytes,
                grace_s=grace_s,
            )
        )
    except Exception as e:
        # One structured line with the traceback, then a non-zero exit for the pod to see.
        log.critical("sink server failed: %s: %s", type(e).__name__, e, exc_info=True)
        raise SystemExit(1) from e


__all__ = ["DEFAULT_GRACE_S", "SinkServer", "serve", "serve_async", "server_info"]
