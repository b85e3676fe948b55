"""`sink.v1.Sink/SinkFn` as a SinkTransport (transport.py), over our own HTTP/2 stream.

The path every Numaflow SDK serves: a handshake first, then per batch N requests + EOT, answered
by results and a separate EOT message. One stream stays open across batches and carries
strictly one batch at a time.

It goes over grpc_stream.py (the `h2` library) rather than grpcio: grpcio's asyncio API costs
tens of microseconds per message written, which is most of the data plane's CPU with one
message per datum; our stream sends a batch's N requests and its EOT as one buffer in as few
DATA frames as the server's flow-control windows allow and reads the answers in bulk. IsReady
goes over grpcio (grpcio_transport.ReadyChannel) like the batch extension's.

A stream carries exactly one batch's answers between our batch and its EOT; anything else
ends it (docs/concepts.md, "When a sink misbehaves on the wire"):
- results beyond the batch's count without the EOT: the stream is cut there and its answer
  (one result more than the batch has) goes to the contract check;
- more answer messages than the batch has datums without the EOT (a flood of empty
  messages, say): the same, reported as a violation;
- any message between batches (after a batch's EOT or the handshake, before our next batch: a
  second EOT, stray results): grpc_stream resets the stream at once (`refuse_messages`), the
  violation is reported, and the next batch goes on a new one;
- a flood, a peer that does not read, malformed frames or headers: grpc_stream's bounds reset
  it the same way.
The wire has no batch ids, so this is what keeps a retried batch from taking an earlier
attempt's answers: a sink's stray answer is caught as it arrives, before our next batch goes
out. The stream is not replaced without cause: pynumaflow's server shuts itself down when its
SinkFn call is cancelled.

Results inside the EOT message are not counted, as Numaflow's client does not count them: the
datums they name then lack a result, which the contract check reports as missing ids.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from google.protobuf.message import DecodeError

from sink_runtime.dataplane.sinks.grpc_stream import GrpcStream, GrpcStreamError, framed
from sink_runtime.dataplane.sinks.grpcio_transport import ReadyChannel
from sink_runtime.dataplane.sinks.transport import (
    SINK_AUTHORITY,
    SINK_FN,
    ContractViolation,
    Replies,
    StreamBroken,
    TransportError,
    ViolationHook,
    bounded,
)
from sink_runtime.proto import sink_pb2

logger = logging.getLogger(__name__)

# sink.v1's fixed requests (unframed).
_HANDSHAKE = sink_pb2.SinkRequest(handshake=sink_pb2.Handshake(sot=True)).SerializeToString()
_EOT = sink_pb2.SinkRequest(status=sink_pb2.TransmissionStatus(eot=True)).SerializeToString()

_ONE_RESULT_EACH = "sink.v1: one result per datum, then EOT"


def _failure(err: GrpcStreamError, during: str) -> TransportError:
    if err.violation:
        return ContractViolation(f"{during}: {err}")
    return StreamBroken(f"{during}: {err}")


async def _read_reply(stream: GrpcStream, during: str, closed: str) -> sink_pb2.SinkResponse:
    """The next SinkResponse; StreamBroken (`closed`) when the server ended the stream."""
    message = await stream.read()
    if message is None:
        raise StreamBroken(closed)
    try:
        return sink_pb2.SinkResponse.FromString(message)
    except DecodeError as err:
        raise ContractViolation(
            f"{during}: an answer of {len(message)} bytes is not a SinkResponse ({err})"
        ) from None


class SinkV1Transport:
    """sink.v1 over grpc_stream (module doc); a SinkTransport.

    `where` names the sink in this transport's logs; `on_violation` is told when the sink broke
    the wire contract, as it happens.
    """

    path = "sink.v1"

    def __init__(
        self,
        socket_path: str,
        *,
        max_message_bytes: int,
        where: str,
        on_violation: ViolationHook,
    ) -> None:
        self.socket_path = socket_path
        self.max_message_bytes = max_message_bytes
        self.where = where
        self.on_violation = on_violation
        self._channel = ReadyChannel(socket_path, max_message_bytes)
        self._stream: GrpcStream | None = None

    async def ready(self, deadline: float) -> None:
        await self._channel.wait_ready(deadline)

    async def connect(self, deadline: float) -> bool:
        stream = self._stream
        if stream is not None and not stream.broken:
            return False
        if stream is not None:
            # It ended between batches (a violation is reported as it happens): nothing of
            # the next batch went on it.
            if stream.failure is not None and not stream.failure.violation:
                logger.warning(
                    "%s: the stream ended between batches (%s); reconnecting",
                    self.where,
                    stream.failure,
                )
            await self.reset()
        anew = self._channel.channel is None
        if anew:
            await self.ready(deadline)
        await self._open(deadline)
        return anew

    async def _open(self, deadline: float) -> None:
        """A SinkFn stream and its handshake."""
        self._close_stream()
        awaiting = (
            "the handshake answer (the SinkFn stream is open; no handshake{sot:true} came back)"
        )
        async with bounded(deadline, awaiting):
            try:
                stream = await GrpcStream.open(
                    self.socket_path,
                    SINK_FN,
                    authority=SINK_AUTHORITY,
                    max_message_bytes=self.max_message_bytes,
                )
                stream.on_violation = self._violated
                self._stream = stream
                await stream.write(framed([_HANDSHAKE]))
                answer = await _read_reply(
                    stream, "handshake", "handshake: the server closed the stream"
                )
            except GrpcStreamError as err:
                raise _failure(err, "handshake") from None
        if not (answer.HasField("handshake") and answer.handshake.sot):
            raise ContractViolation(
                "handshake: the first answer was not a handshake (sink.v1: the server must "
                "answer the client's handshake with handshake{sot:true})"
            )
        stream.refuse_messages("after the handshake answer, before the first batch")

    def _violated(self, err: GrpcStreamError) -> None:
        """grpc_stream reset the stream for what the sink sent."""
        self.on_violation(
            ContractViolation(
                f"{err}; the stream was reset (the batch in flight, if any, is sent again on "
                "a new stream)"
            )
        )

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    async def reset(self) -> None:
        self._close_stream()
        await self._channel.close()

    async def close(self) -> None:
        await self.reset()

    async def send(self, entries: Sequence[bytes], deadline: float) -> Replies:
        """All requests and the EOT in one write, then the answers up to the EOT."""
        stream = self._stream
        if stream is None:
            raise StreamBroken("SinkFn: no stream is open")
        async with bounded(deadline, f"the answers to the batch of {len(entries)} messages"):
            try:
                stream.accept_messages()
                await stream.write(framed([*entries, _EOT]))
                return await self._answers(stream, len(entries))
            except GrpcStreamError as err:
                raise _failure(err, "SinkFn") from None

    async def _answers(self, stream: GrpcStream, count: int) -> Replies:
        replies: Replies = []
        received = 0
        closed = "SinkFn: the server ended the stream before EOT"
        while True:
            reply = await _read_reply(stream, "SinkFn", closed)
            if reply.HasField("status") and reply.status.eot:
                if reply.results:
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
                # More answers than datums and still no EOT: keep one more than the batch has
                # (the contract check reports the count), read nothing more, and do not reuse
                # the stream.
                replies.append(results[: count + 1 - (received - len(results))])
                logger.error(
                    "%s sent %d results for a batch of %d without its EOT; stopped reading "
                    "and dropped the stream (%s)",
                    self.where,
                    received,
                    count,
                    _ONE_RESULT_EACH,
                )
                self._close_stream()
                return replies
            replies.append(results)
            if len(replies) > count:
                # Every answer message holds at least one result: this many without the EOT
                # is a flood (of empty messages, say).
                self._close_stream()
                self.on_violation(
                    ContractViolation(
                        f"it sent {len(replies)} answer messages ({received} results) for a "
                        f"batch of {count} without its EOT; stopped reading and dropped the "
                        f"stream ({_ONE_RESULT_EACH})"
                    )
                )
                return replies
