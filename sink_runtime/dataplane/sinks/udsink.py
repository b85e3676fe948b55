"""The gRPC client of a user-defined sink on a Unix socket (the `udsink` sink type).

It speaks both paths of the contract (docs/design/contract.md) and picks one at connect time:
- `udsink.v1.BatchSink/WriteBatch` when the server-info file advertises the batch extension
  (and the config allows it): one gRPC message per batch, split so that no message exceeds
  the max message size;
- `sink.v1.Sink/SinkFn` otherwise, the path every Numaflow SDK serves: handshake first, then per
  batch N requests + EOT, answered by results and a separate EOT message.
One stream stays open across batches and carries strictly one batch at a time.

grpcio serves IsReady and the batch extension (one message per batch: its per-call cost does not
matter). sink.v1 goes over our own HTTP/2 stream (grpc_stream.py, the `h2` library): grpcio's
asyncio API costs tens of microseconds per message written, which is most of the data plane's
CPU with one message per datum; our stream sends a batch's N requests and its EOT as one buffer
in as few DATA frames as the server's flow-control windows allow and reads the answers in bulk.
Both connections carry the `:authority` SINK_AUTHORITY.

A broken stream (the server's INTERNAL abort for a handler exception, a restarting sidecar) is
re-established (IsReady, handshake) and the same batch is sent again, a bounded number of times;
then SinkError names the sink and the last gRPC status, and the forwarder retries the batch
with its backoff. Answers are returned as they came: the forwarder checks them against the
contract, so a misbehaving sink is reported once, in one place.

Every wait on a sink is bounded. `start()` (server-info file, IsReady, the sink.v1 handshake)
ends within `startupTimeout`, or raises SinkError naming what was not answered. One `write()`
(sending, the answers, and any reconnect and resend on the way) ends within `writeTimeout`: at
the deadline the stream is reset and the batch fails (SinkError naming what was awaited; the
forwarder retries it with backoff); a warning names the sink and the batch once it has waited
`STALL_WARNING_FRACTION` of that.

A sink.v1 stream carries exactly one batch's answers between our batch and its EOT; anything
else ends it (docs/concepts.md, "When a sink misbehaves on the wire"):
- results beyond the batch's count, or more answer messages than the batch has datums, without
  the EOT: the stream is cut there and its answer goes to the contract check;
- any message between batches (after a batch's EOT or the handshake, before our next batch: a
  second EOT, stray results): the transport resets the stream at once (`refuse_messages`),
  the violation is logged and counted (kind `protocol`), and the next batch goes on a new one;
- a flood, a peer that does not read, malformed frames or headers: the transport's bounds
  (grpc_stream.py) reset it the same way.
The wire has no batch ids, so this is what keeps a retried batch from taking an earlier
attempt's answers: a sink's stray answer is caught as it arrives, before our next batch goes
out. The stream is not replaced without cause: pynumaflow's server shuts itself down when its
SinkFn call is cancelled.

How long the sink has kept the data plane waiting without an answer is kept per sink
(`unanswered.UnansweredClock`, bounds in `sink_runtime.config.sink_liveness`): `liveness()`
turns false past the bound, which the data plane serves on the sink container's liveness path
and in /readyz. A new sink process is recognised by its socket file being created anew (every
server binds a fresh one), checked at each (re)connect and each liveness check.

Messages are serialized here rather than by gRPC, so the encoded size is known before sending:
an oversized batch is split, and a datum that alone exceeds the limit is answered FAILURE
locally (it can never be sent) instead of breaking the stream for the whole batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, cast

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError

from sink_runtime import codec, serverinfo
from sink_runtime.config import UserSinkConfig
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import PRIMARY, AllSucceeded, SinkError
from sink_runtime.dataplane.sinks.grpc_stream import GrpcStream, GrpcStreamError, frame
from sink_runtime.dataplane.sinks.unanswered import UnansweredClock
from sink_runtime.proto import batch_pb2, sink_pb2
from sink_runtime.types import Datum, Response

logger = logging.getLogger(__name__)

_Results: TypeAlias = Sequence[sink_pb2.SinkResponse.Result]

# A batch unanswered for this fraction of the write timeout is logged and counted as a stall.
STALL_WARNING_FRACTION = 1 / 3

SINK_FN = "/sink.v1.Sink/SinkFn"
IS_READY = "/sink.v1.Sink/IsReady"
WRITE_BATCH = "/udsink.v1.BatchSink/WriteBatch"

# The HTTP/2 :authority every sink channel sends. Left alone, grpcio sends the percent-encoded
# socket path, and the Rust SDK's server (tonic/hyper) rejects that as an invalid authority by
# resetting the stream; a plain host name is accepted by every SDK's server.
SINK_AUTHORITY = "localhost"

# sink.v1's fixed messages, framed for the wire (gRPC length prefix included).
_HANDSHAKE = frame(sink_pb2.SinkRequest(handshake=sink_pb2.Handshake(sot=True)).SerializeToString())
_EOT = frame(sink_pb2.SinkRequest(status=sink_pb2.TransmissionStatus(eot=True)).SerializeToString())


# The end-of-stream sentinel of grpc.aio reads (absent from the type stubs).
EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]


def _identity(data: bytes) -> bytes:
    return data


def _socket_identity(path: str) -> tuple[int, int, int] | None:
    """What tells one bound socket file from the next at the same path (None: none there)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_ctime_ns


class StreamBroken(Exception):
    """The current stream cannot carry the batch; reconnecting may help."""

    def __init__(self, what: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(what)
        self.code = code


def _rpc_failure(err: grpc.aio.AioRpcError, during: str) -> StreamBroken:
    return StreamBroken(f"{during}: gRPC status {err.code().name}: {err.details()}", err.code())


def _stream_failure(err: GrpcStreamError, during: str) -> StreamBroken:
    return StreamBroken(f"{during}: {err}", err.code)


async def _read_reply(stream: GrpcStream, during: str, closed: str) -> sink_pb2.SinkResponse:
    """The next SinkResponse on a sink.v1 stream; StreamBroken when there is none."""
    message = await stream.read()
    if message is None:
        raise StreamBroken(closed)
    try:
        return sink_pb2.SinkResponse.FromString(message)
    except DecodeError as err:
        raise StreamBroken(
            f"{during}: an answer of {len(message)} bytes is not a SinkResponse ({err})",
            grpc.StatusCode.INTERNAL,
        ) from None


async def _finished_call(call: Any, during: str) -> StreamBroken:
    """A write on a call that already ended (the server went away between batches)."""
    code = await call.code()
    details = await call.details()
    return StreamBroken(f"{during}: gRPC status {code.name}: {details}", code)


async def _round_trip(call: Any, message: bytes, what: str, closed: str) -> Any:
    """Send one message on an open stream and read its one answer.

    Every way the stream can fail becomes StreamBroken (or the rpc failure), so the caller
    reconnects and resends; `closed` is the message when the server ended the stream instead.
    """
    try:
        await call.write(message)
        reply = await call.read()
    except grpc.aio.AioRpcError as err:
        raise _rpc_failure(err, what) from None
    except asyncio.InvalidStateError:
        raise await _finished_call(call, what) from None
    if reply is EOF:
        raise StreamBroken(closed)
    return reply


class UserSinkClient:
    """A user-defined sink reached over gRPC on a Unix socket."""

    def __init__(
        self,
        config: UserSinkConfig,
        *,
        metrics: Metrics,
        name: str = PRIMARY,
        max_resends: int = 3,
        server_info_poll_s: float = 0.1,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.name = name
        self.max_resends = max_resends
        self.server_info_poll_s = server_info_poll_s
        self.max_message_bytes = config.max_message_bytes
        self.info: serverinfo.ServerInfo | None = None
        self.use_batch = False
        self._channel: grpc.aio.Channel | None = None
        self._call: Any = None  # the batch extension's grpcio call
        self._stream: GrpcStream | None = None  # the sink.v1 stream (module doc)
        self._lock = asyncio.Lock()
        self._ready = False
        self._closed = False
        self._awaiting = "nothing"  # what a wait on the sink is for, named when it times out
        self._clock = UnansweredClock(config.write_timeout_ms, config.startup_timeout_ms)
        self._socket: tuple[int, int, int] | None = None  # of the process last connected to
        self._socket_known = False
        self._hung = ""  # the last liveness verdict's reason, to log changes once
        metrics.sink_unanswered.labels(sink=name).set_function(
            lambda: self._clock.waiting_s(time.monotonic())
        )

    @property
    def where(self) -> str:
        return f"{self.name} sink at {self.config.socket_path}"

    # --- lifecycle ---

    async def start(self) -> None:
        """Wait for the server-info file and IsReady, choose the path, open the stream (with
        its handshake); all of it within startupTimeout."""
        self._clock.begin(time.monotonic())
        try:
            await self._start()
        finally:
            self._clock.ended()

    async def _start(self) -> None:
        timeout_s = self.config.startup_timeout_ms / 1000.0
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            self.info = await serverinfo.wait_for_server_info(
                self.config.server_info_path, timeout_s, self.server_info_poll_s
            )
        except serverinfo.ServerInfoError as err:
            raise SinkError(f"{self.where}: {err}") from None
        if self.info.protocol != "uds":
            raise SinkError(
                f"{self.where}: server-info {self.config.server_info_path} says protocol "
                f"{self.info.protocol!r}; this client speaks only 'uds' (a Unix socket)"
            )
        self.use_batch = self.config.use_batch_extension and self.info.supports_batch()
        logger.info(
            "%s: server-info %s (version %s); using %s",
            self.where,
            self.config.server_info_path,
            self.info.version,
            "the batch extension (udsink.v1.BatchSink)" if self.use_batch else "sink.v1.Sink",
        )
        try:
            async with asyncio.timeout_at(deadline):
                await self._connect(deadline)
        except TimeoutError:
            await self._disconnect()
            raise SinkError(
                f"{self.where}: not ready within the start-up timeout of {timeout_s:g}s "
                f"(startupTimeout), waiting for {self._awaiting}"
            ) from None
        except StreamBroken as err:
            await self._disconnect()
            raise SinkError(f"{self.where}: cannot connect: {err}") from None

    def is_ready(self) -> bool:
        return self._ready and not self._closed and self.liveness()[0]

    def not_ready_reason(self) -> str:
        """Why /readyz names this sink ("" when the default words say enough)."""
        return self.liveness()[1]

    def liveness(self) -> tuple[bool, str]:
        """False, with the reason, while the sink has kept the data plane waiting past its
        bound (module doc); the sink container's liveness path answers this."""
        now = time.monotonic()
        self._notice_restart(now)
        why = self._clock.hung(now)
        if why and not self._hung:
            logger.error(
                "%s %s; its liveness path now fails, so the kubelet restarts the container",
                self.where,
                why,
            )
        elif self._hung and not why:
            logger.info("%s is within its liveness bound again", self.where)
        self._hung = why
        return (False, f"{self.where} {why}") if why else (True, "")

    def _notice_restart(self, now: float) -> None:
        """Restart the clock when the socket file is no longer the one last connected to."""
        current = _socket_identity(self.config.socket_path)
        if self._socket_known and current != self._socket:
            logger.info(
                "%s: the socket file was %s; a new sink process gets startupTimeout more",
                self.where,
                "removed" if current is None else "created anew",
            )
            self._clock.restarted(now)
        self._socket = current
        self._socket_known = True

    async def close(self) -> None:
        self._closed = True
        self._ready = False
        await self._disconnect()

    async def reset(self) -> None:
        """Drop the stream; the next write reconnects (IsReady, handshake) first."""
        async with self._lock:
            await self._disconnect()

    # --- connection ---

    def _new_channel(self) -> grpc.aio.Channel:
        limit = self.max_message_bytes
        return grpc.aio.insecure_channel(
            f"unix:{self.config.socket_path}",
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
                ("grpc.default_authority", SINK_AUTHORITY),
                # A restarted sidecar should be found again quickly, not after minutes.
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ],
        )

    @property
    def _connected(self) -> bool:
        return self._call is not None or self._stream is not None

    async def _disconnect(self) -> None:
        channel = self._channel
        self._channel = None
        self._close_stream()
        if channel is not None:
            await channel.close(None)

    def _close_stream(self) -> None:
        call, stream = self._call, self._stream
        self._call = self._stream = None
        if call is not None:
            call.cancel()
        if stream is not None:
            stream.close()

    async def _wait_ready(self, channel: grpc.aio.Channel, deadline: float) -> None:
        """Until IsReady answers ready=true; TimeoutError at `deadline` (loop time)."""
        is_ready = channel.unary_unary(
            IS_READY,
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=sink_pb2.ReadyResponse.FromString,
        )
        loop = asyncio.get_running_loop()
        self._awaiting = "IsReady (no answer)"
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            try:
                answer = await is_ready(empty_pb2.Empty(), timeout=left, wait_for_ready=True)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise TimeoutError from None
                raise _rpc_failure(err, "IsReady") from None
            if answer.ready:
                return
            self._awaiting = "IsReady (it answered ready=false)"
            await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))

    async def _connect(self, deadline: float) -> None:
        """A new channel, IsReady, and a new stream; the caller bounds the whole wait."""
        await self._disconnect()
        channel = self._new_channel()
        self._channel = channel
        await self._wait_ready(channel, deadline)
        self._notice_restart(time.monotonic())
        await self._open_stream()

    async def _open_stream(self) -> None:
        """A new call on the channel: WriteBatch, or a SinkFn stream and its handshake."""
        self._close_stream()
        channel = self._channel
        assert channel is not None
        if self.use_batch:
            self._call = cast(
                Any,
                channel.stream_stream(
                    WRITE_BATCH,
                    request_serializer=_identity,
                    response_deserializer=batch_pb2.SinkBatchResult.FromString,
                ),
            )()
            self._ready = True
            return
        self._awaiting = (
            "the handshake answer (the SinkFn stream is open; no handshake{sot:true} came back)"
        )
        try:
            stream = await GrpcStream.open(
                self.config.socket_path,
                SINK_FN,
                authority=SINK_AUTHORITY,
                max_message_bytes=self.max_message_bytes,
            )
            stream.on_violation = self._violated
            self._stream = stream
            await stream.write(_HANDSHAKE)
            answer = await _read_reply(
                stream, "handshake", "handshake: the server closed the stream"
            )
        except GrpcStreamError as err:
            raise _stream_failure(err, "handshake") from None
        if not (answer.HasField("handshake") and answer.handshake.sot):
            raise StreamBroken(
                "handshake: the first answer was not a handshake (sink.v1: the server must "
                "answer the client's handshake with handshake{sot:true})"
            )
        stream.refuse_messages("after the handshake answer, before the first batch")
        self._ready = True

    async def _ensure_stream(self, deadline: float) -> None:
        """A stream ready for the next batch: the one open, or a new one (module doc)."""
        if self._closed:
            raise SinkError(f"{self.where}: closed")
        stream = self._stream
        if stream is not None and stream.broken:
            # It ended between batches (a violation is reported as it happens): nothing of
            # this batch went on it.
            if stream.failure is not None and not stream.failure.violation:
                logger.warning(
                    "%s: the stream ended between batches (%s); reconnecting",
                    self.where,
                    stream.failure,
                )
            await self._disconnect()
        if self._channel is None:
            await self._connect(deadline)
            self.metrics.sink_reconnects.labels(sink=self.name).inc()
        elif not self._connected:
            await self._open_stream()

    def _violated(self, err: GrpcStreamError) -> None:
        """The transport reset the sink.v1 stream for what the sink sent (grpc_stream.py)."""
        self.metrics.contract_violations.labels(sink=self.name, kind="protocol").inc()
        logger.error(
            "%s broke the contract: %s; the stream was reset (the batch in flight, if any, is "
            "sent again on a new stream)",
            self.where,
            err,
        )

    # --- writing ---

    async def write(self, datums: Sequence[Datum]) -> Sequence[Response]:
        """The sink's answers for `datums` (unchecked), or SinkError."""
        if not datums:
            return []
        async with self._lock:
            encoded, local = self._encode(datums)
            if not encoded:
                return local
            answers = self._answers(await self._write_in_time(encoded, len(datums)))
            return [*answers, *local] if local else answers

    async def _write_in_time(self, encoded: list[bytes], datums: int) -> list[_Results]:
        """One batch's answers within the write timeout, reconnects and resends included
        (module doc)."""
        timeout_s = self.config.write_timeout_ms / 1000.0
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        warning = loop.call_later(
            timeout_s * STALL_WARNING_FRACTION, self._stalled, started, datums
        )
        clock = self._clock
        clock.begin(started)
        try:
            async with asyncio.timeout_at(deadline):
                answers = await self._deliver(encoded, datums, deadline)
            clock.answered()
            return answers
        except SinkError:
            clock.answered()  # the sink ended the streams itself: it is responsive
            raise
        except TimeoutError:
            clock.unanswered(time.monotonic())
            self.metrics.write_timeouts.labels(sink=self.name).inc()
            self._ready = False
            await self._disconnect()
            raise SinkError(
                f"{self.where}: no answer to a batch within the write timeout of "
                f"{timeout_s:g}s (writeTimeout), waiting for {self._awaiting}; the stream was "
                "reset and the batch failed"
            ) from None
        finally:
            warning.cancel()
            clock.ended()  # cancelled (shutting down): no verdict

    async def _deliver(self, encoded: list[bytes], datums: int, deadline: float) -> list[_Results]:
        """Send one batch and read its answers, reconnecting and resending on a broken stream
        up to `max_resends` times; the caller bounds the time by `deadline` (loop time)."""
        last: StreamBroken | None = None
        for attempt in range(self.max_resends + 1):
            try:
                await self._ensure_stream(deadline)
                self._awaiting = f"the answers to the batch of {datums} messages"
                if self.use_batch:
                    return await self._send_batches(encoded)
                return await self._send_stream(encoded)
            except StreamBroken as err:
                last = err
                self._ready = False
                await self._disconnect()
                if attempt == self.max_resends:
                    break
                logger.warning(
                    "%s: stream failed (%s); reconnecting and resending %d messages "
                    "(resend %d of %d)",
                    self.where,
                    err,
                    datums,
                    attempt + 1,
                    self.max_resends,
                )
                self._awaiting = "the pause before resending"
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        assert last is not None
        raise SinkError(
            f"{self.where}: the batch of {datums} messages could not be delivered "
            f"after {self.max_resends} resends; last error: {last}"
        )

    def _stalled(self, started: float, messages: int) -> None:
        self.metrics.sink_stalls.labels(sink=self.name).inc()
        logger.warning(
            "%s has not answered a batch of %d messages for %.1fs; the write times out after "
            "%gs (writeTimeout)",
            self.where,
            messages,
            time.monotonic() - started,
            self.config.write_timeout_ms / 1000.0,
        )

    def _encode(self, datums: Sequence[Datum]) -> tuple[list[bytes], list[Response]]:
        """Serialized wire messages for the batch, and local FAILUREs for oversized datums.

        Each request is encoded once, as field 1 of its enclosing message: the same bytes are a
        complete `SinkRequest{request}` (sink.v1) and one entry of `SinkBatch.requests`, so a
        batch message is their concatenation and its size is known without encoding twice.
        """
        encode, prefix = codec.encode_request, codec.field_prefix
        encoded = [encode(d) for d in datums]
        prefixes = [prefix(codec.REQUEST_TAG, len(e)) for e in encoded]
        limit = self.max_message_bytes
        local = [
            self._oversized(d, len(p) + len(e))
            for d, p, e in zip(datums, prefixes, encoded, strict=True)
            if len(p) + len(e) > limit
        ]
        if local:
            kept = [
                (p, e) for p, e in zip(prefixes, encoded, strict=True) if len(p) + len(e) <= limit
            ]
            prefixes, encoded = [p for p, _ in kept], [e for _, e in kept]
        if not self.use_batch:
            # One gRPC message per datum, each with its length prefix: the stream sends them
            # joined, in as few HTTP/2 frames as the server allows.
            return [frame(p + e) for p, e in zip(prefixes, encoded, strict=True)], local
        # A batch message is its framed requests back to back, joined once per chunk.
        chunks: list[bytes] = []
        pieces: list[bytes] = []
        size = 0
        for p, e in zip(prefixes, encoded, strict=True):
            framed_size = len(p) + len(e)
            if size + framed_size > limit and pieces:
                chunks.append(b"".join(pieces))
                pieces, size = [], 0
            pieces += (p, e)
            size += framed_size
        if pieces:
            chunks.append(b"".join(pieces))
        return chunks, local

    def _oversized(self, d: Datum, size: int) -> Response:
        return Response.failure(
            d.id,
            f"message {d.id} is {size} bytes encoded, over the max message size of "
            f"{self.max_message_bytes} bytes of the {self.where} (maxMessageBytes); "
            "it cannot be sent",
        )

    async def _send_batches(self, chunks: list[bytes]) -> list[_Results]:
        call = self._call
        replies: list[_Results] = []
        for chunk in chunks:
            reply = await _round_trip(
                call,
                chunk,
                "WriteBatch",
                "WriteBatch: the server ended the stream before answering",
            )
            replies.append(reply.results)
        return replies

    async def _send_stream(self, messages: list[bytes]) -> list[_Results]:
        """One sink.v1 batch: all requests and the EOT in one write, then the answers."""
        stream = self._stream
        assert stream is not None
        replies: list[_Results] = []
        received = 0
        count = len(messages)
        closed = "SinkFn: the server ended the stream before EOT"
        try:
            stream.accept_messages()
            await stream.write(b"".join([*messages, _EOT]))
            while True:
                reply = await _read_reply(stream, "SinkFn", closed)
                if reply.HasField("status") and reply.status.eot:
                    if reply.results:
                        # Numaflow's client does not count results inside the EOT message and
                        # neither do we: the datums they name then lack a result, which the
                        # forwarder's contract check reports as missing ids.
                        logger.error(
                            "%s put %d results inside the EOT message (ids %s); they are not "
                            "counted (sink.v1: results go in separate messages before EOT)",
                            self.where,
                            len(reply.results),
                            ", ".join(r.id for r in reply.results[:10]),
                        )
                    stream.refuse_messages("between batches (after a batch's EOT)")
                    return replies
                results = reply.results
                received += len(results)
                if received > count:
                    # More answers than datums and still no EOT: keep one more than the batch
                    # has (the contract check reports the count), read nothing more, and do
                    # not reuse the stream.
                    replies.append(results[: count + 1 - (received - len(results))])
                    self._cut(f"sent {received} results for a batch of {count} without its EOT")
                    return replies
                replies.append(results)
                if len(replies) > count:
                    # Every answer message holds at least one result: this many without the
                    # EOT is a flood (of empty messages, say).
                    self.metrics.contract_violations.labels(sink=self.name, kind="protocol").inc()
                    self._cut(
                        f"sent {len(replies)} answer messages ({received} results) for a batch "
                        f"of {count} without its EOT"
                    )
                    return replies
        except GrpcStreamError as err:
            raise _stream_failure(err, "SinkFn") from None

    def _cut(self, what: str) -> None:
        logger.error(
            "%s %s; stopped reading and dropped the stream (sink.v1: one result per datum, "
            "then EOT)",
            self.where,
            what,
        )
        self._close_stream()

    def _answers(self, replies: list[_Results]) -> Sequence[Response]:
        """The answers of one batch: `AllSucceeded` when every result is SUCCESS (the usual
        answer, read with two passes over the wire results and no object per datum)."""
        if not any(r.status for results in replies for r in results):
            return AllSucceeded([r.id for results in replies for r in results])
        decode = codec.result_to_response
        answers: list[Response] = []
        for results in replies:
            answers.extend(self._decode(results, decode))
        return answers

    def _decode(self, results: _Results, decode: Callable[..., Response]) -> list[Response]:
        answers: list[Response] = []
        append = answers.append
        ok = Response.ok
        for res in results:
            if not res.status:  # SUCCESS, the usual answer: no call through the codec
                append(ok(res.id))
                continue
            try:
                append(decode(res))
            except ValueError as err:
                # An unknown status: keep the id out of the answers, so the contract check
                # reports it as missing and the datum is treated as FAILURE.
                logger.error("%s: %s", self.where, err)
        return answers
