"""The sink transports' grpcio side: the channel and IsReady (both paths), and the batch
extension `udsink.v1.BatchSink/WriteBatch` (transport.py has the interface and the errors).

The batch extension sends one gRPC message per batch, split so that no message exceeds the max
message size; grpcio's per-call cost does not matter at that rate. One WriteBatch call stays
open across batches. Every grpcio failure becomes one of transport.py's errors here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError

from sink_runtime.dataplane.sinks.transport import (
    IS_READY,
    SINK_AUTHORITY,
    WRITE_BATCH,
    ContractViolation,
    DeadlineExceeded,
    Replies,
    Results,
    StreamBroken,
    bounded,
)
from sink_runtime.proto import batch_pb2, sink_pb2

# The end-of-stream sentinel of grpc.aio reads (absent from the type stubs).
EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]

# The pause between IsReady calls while the sink answers ready=false.
_NOT_READY_PAUSE_S = 0.1


def _identity(data: bytes) -> bytes:
    return data


def _rpc_failure(err: grpc.aio.AioRpcError, during: str) -> StreamBroken:
    return StreamBroken(f"{during}: gRPC status {err.code().name}: {err.details()}")


class ReadyChannel:
    """A grpcio channel to the sink's socket, opened on demand, and IsReady on it."""

    def __init__(self, socket_path: str, max_message_bytes: int) -> None:
        self.socket_path = socket_path
        self.max_message_bytes = max_message_bytes
        self.channel: grpc.aio.Channel | None = None

    def open(self) -> grpc.aio.Channel:
        """The open channel, or a new one."""
        if self.channel is None:
            limit = self.max_message_bytes
            self.channel = grpc.aio.insecure_channel(
                f"unix:{self.socket_path}",
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
        return self.channel

    async def close(self) -> None:
        channel, self.channel = self.channel, None
        if channel is not None:
            await channel.close(None)

    async def wait_ready(self, deadline: float) -> None:
        """Until IsReady answers ready=true (SinkTransport.ready)."""
        is_ready = self.open().unary_unary(
            IS_READY,
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=sink_pb2.ReadyResponse.FromString,
        )
        loop = asyncio.get_running_loop()
        async with bounded(deadline, "IsReady (no answer)") as wait:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise DeadlineExceeded(wait.awaiting)
                try:
                    answer = await is_ready(empty_pb2.Empty(), timeout=left, wait_for_ready=True)
                except grpc.aio.AioRpcError as err:
                    if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                        raise DeadlineExceeded(wait.awaiting) from None
                    raise _rpc_failure(err, "IsReady") from None
                if answer.ready:
                    return
                wait.awaiting = "IsReady (it answered ready=false)"
                await asyncio.sleep(min(_NOT_READY_PAUSE_S, max(0.0, deadline - loop.time())))


class BatchTransport:
    """The batch extension over grpcio (module doc); a SinkTransport."""

    path = "batch"

    def __init__(self, socket_path: str, *, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._channel = ReadyChannel(socket_path, max_message_bytes)
        self._call: Any = None

    async def ready(self, deadline: float) -> None:
        await self._channel.wait_ready(deadline)

    async def connect(self, deadline: float) -> bool:
        if self._call is not None:
            # A call that ended between batches shows at the next write (`_finished_call`).
            return False
        anew = self._channel.channel is None
        if anew:
            await self.ready(deadline)
        self._call = cast(
            Any,
            self._channel.open().stream_stream(
                WRITE_BATCH,
                request_serializer=_identity,
                response_deserializer=_identity,
            ),
        )()
        return anew

    async def reset(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
        await self._channel.close()

    async def close(self) -> None:
        await self.reset()

    async def send(self, entries: Sequence[bytes], deadline: float) -> Replies:
        call = self._call
        if call is None:
            raise StreamBroken("WriteBatch: no stream is open")
        chunks = self._chunks(entries)
        replies: Replies = []
        async with bounded(deadline, f"the answers to the batch of {len(entries)} messages"):
            for chunk in chunks:
                replies.append(await self._round_trip(call, chunk))
        return replies

    def _chunks(self, entries: Sequence[bytes]) -> list[bytes]:
        """Batch messages of at most the max message size: entries back to back (a
        SinkBatch's `requests` are field 1, like each entry)."""
        limit = self.max_message_bytes
        chunks: list[bytes] = []
        pieces: list[bytes] = []
        size = 0
        for entry in entries:
            if size + len(entry) > limit and pieces:
                chunks.append(b"".join(pieces))
                pieces, size = [], 0
            pieces.append(entry)
            size += len(entry)
        if pieces:
            chunks.append(b"".join(pieces))
        return chunks

    async def _round_trip(self, call: Any, chunk: bytes) -> Results:
        """Send one batch message and read its one answer; every way the call can fail
        becomes a transport error."""
        try:
            await call.write(chunk)
            reply = await call.read()
        except grpc.aio.AioRpcError as err:
            raise _rpc_failure(err, "WriteBatch") from None
        except asyncio.InvalidStateError:
            # The call had ended already (the server went away between batches).
            code, details = await call.code(), await call.details()
            raise StreamBroken(f"WriteBatch: gRPC status {code.name}: {details}") from None
        if reply is EOF:
            raise StreamBroken("WriteBatch: the server ended the stream before answering")
        try:
            return batch_pb2.SinkBatchResult.FromString(reply).results
        except DecodeError as err:
            raise ContractViolation(
                f"WriteBatch: an answer of {len(reply)} bytes is not a SinkBatchResult ({err})"
            ) from None
