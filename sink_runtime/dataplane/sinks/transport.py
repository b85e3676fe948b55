"""The sink client's transport: one batch of encoded datums out, their results back.

`UserSinkClient` (udsink.py) keeps what the sink contract asks of a client (timeouts, the
oversized check, liveness, decoding and counting the answers) and reaches the sink only through
`SinkTransport`. Two implementations speak the two paths of docs/design/contract.md:
- `sink_v1_transport.SinkV1Transport`: `sink.v1.Sink/SinkFn` over our own HTTP/2 stream
  (grpc_stream.py), the path every Numaflow SDK serves;
- `grpcio_transport.BatchTransport`: the batch extension `udsink.v1.BatchSink/WriteBatch` over
  grpcio, when the sink advertises it.
Both ask IsReady over grpcio before opening their stream.

Every failure of either stack reaches the client as one of three errors, mapped at each
transport's edge (grpcio's and grpc_stream's own exceptions stay inside their modules):
- `StreamBroken`: the stream ended under the batch or could not be opened (the server went
  away, aborted the call with a gRPC status, was not there); reconnecting may help;
- `ContractViolation`: the sink sent what the wire contract forbids (an answer that is not the
  path's message, a message between batches, a flood, malformed frames); the stream was reset
  and a new one starts clean. Which ids a batch's results name is not checked here: those are
  returned as they came, and the forwarder's contract check judges them once for both paths;
- `DeadlineExceeded`: the deadline the caller gave passed; it names what was awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from sink_runtime import codec
from sink_runtime.proto import sink_pb2
from sink_runtime.types import Datum

# One answer message's results; a batch's answers are a list of them, in arrival order.
Results: TypeAlias = Sequence[sink_pb2.SinkResponse.Result]
Replies: TypeAlias = list[Results]

SINK_FN = "/sink.v1.Sink/SinkFn"
IS_READY = "/sink.v1.Sink/IsReady"
WRITE_BATCH = "/udsink.v1.BatchSink/WriteBatch"

# The HTTP/2 :authority every sink connection sends. Left alone, grpcio sends the
# percent-encoded socket path, and the Rust SDK's server (tonic/hyper) rejects that as an
# invalid authority by resetting the stream; a plain host name is accepted by every SDK's server.
SINK_AUTHORITY = "localhost"


class TransportError(Exception):
    """The transport could not carry the batch (one of the subclasses below)."""


class StreamBroken(TransportError):
    """The stream ended or could not be opened; a new connection may carry the batch."""


class ContractViolation(TransportError):
    """The sink sent what the wire contract forbids; the stream was reset."""


class DeadlineExceeded(TransportError):
    """The caller's deadline passed while the transport waited for `awaiting`."""

    def __init__(self, awaiting: str) -> None:
        super().__init__(f"no answer by the deadline, waiting for {awaiting}")
        self.awaiting = awaiting


# Told when the sink broke the wire contract, as it happens (also between batches, when nobody
# waits on the stream); the text says what the sink did and what became of the stream.
ViolationHook: TypeAlias = Callable[[ContractViolation], None]


class SinkTransport(Protocol):
    """One sink's connection, carrying strictly one batch at a time."""

    # The path's name in logs: "sink.v1" or "batch".
    path: str

    async def ready(self, deadline: float) -> None:
        """Until the sink answers IsReady with ready=true.

        DeadlineExceeded at `deadline` (event loop time); StreamBroken when IsReady fails
        otherwise.
        """

    async def connect(self, deadline: float) -> bool:
        """Be ready to carry the next batch: keep the open stream, open a new one on the open
        connection, or connect anew (IsReady, then the stream and its handshake). True when it
        connected anew. Raises the module's errors; DeadlineExceeded at `deadline`."""

    async def send(self, entries: Sequence[bytes], deadline: float) -> Replies:
        """One batch's answers, as the sink sent them.

        `entries` are the batch's requests, each encoded as field 1 of its enclosing message
        (`codec.field_prefix` + `codec.encode_request`), each within the max message size.
        Raises the module's errors; after any of them the stream is not reused (`reset`).
        """

    async def reset(self) -> None:
        """Drop the stream and the connection; the next `connect` starts anew."""

    async def close(self) -> None:
        """Drop everything for good."""


def encode_entries(datums: Sequence[Datum]) -> list[bytes]:
    """`SinkTransport.send`'s entries for `datums`: each request encoded once, as field 1 of
    its enclosing message, so the same bytes are a complete `SinkRequest{request}` (sink.v1)
    and one entry of `SinkBatch.requests`, and each one's size is known before sending."""
    encode, prefix, tag = codec.encode_request, codec.field_prefix, codec.REQUEST_TAG
    return [prefix(tag, len(e)) + e for e in map(encode, datums)]


@dataclass
class Wait:
    """What a bounded wait is for, named by DeadlineExceeded when the deadline passes."""

    awaiting: str


@contextlib.asynccontextmanager
async def bounded(deadline: float, awaiting: str) -> AsyncIterator[Wait]:
    """Bound the block by `deadline` (event loop time): DeadlineExceeded naming what the
    block awaited then (the yielded Wait, which the block updates as it goes)."""
    wait = Wait(awaiting)
    try:
        async with asyncio.timeout_at(deadline):
            yield wait
    except TimeoutError:
        raise DeadlineExceeded(wait.awaiting) from None
