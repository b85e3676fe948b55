"""One gRPC bidirectional stream over HTTP/2 on a Unix socket, spoken with the `h2` library.

Why not grpcio here: grpcio's asyncio API costs tens of microseconds of CPU per message
(one `write` call per message, each a trip through its core and completion queue), which
bounds `sink.v1`, a protocol of one message per datum, near 15,000 datums/s. The wire does not
need that: HTTP/2 lets a client put a whole batch of length-prefixed gRPC messages into a few
DATA frames, and a reply carrying many results arrives the same way. This module does exactly
that and nothing else: the HTTP/2 connection (preface, SETTINGS, flow control in both
directions, PING and SETTINGS acknowledgements from `h2`, GOAWAY, RST_STREAM) and the gRPC
framing of one stream (request headers, 5-byte message prefixes, response headers, trailers
with `grpc-status` / `grpc-message`, a headers-only "Trailers-Only" error answer). What the
messages mean (the sink contract) stays with the caller, `udsink.UserSinkClient`.

Memory is bounded: received bytes are acknowledged to the server (HTTP/2 WINDOW_UPDATE) only
while fewer than `BACKLOG_BYTES` of complete messages wait unread, so a server that sends
without end fills at most that plus our receive window. A message is at most
`max_message_bytes`; a longer length prefix ends the stream. The client never offers
compression, so a message with the compressed flag set is reported as the server's error.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import urllib.parse
from typing import Final

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

# Our receive window (per stream and for the connection): answers of a batch are small, but a
# wide window lets a server send them without waiting for our acknowledgements.
RECEIVE_WINDOW_BYTES: Final = 4 * 1024 * 1024
# Unread complete messages above this size hold back our flow-control acknowledgements.
BACKLOG_BYTES: Final = 1024 * 1024
# Output queued in the kernel-facing transport above this waits for it to drain.
_WRITE_HIGH_WATER: Final = 1024 * 1024
# The socket's send buffer we ask for (the kernel caps it at twice net.core.wmem_max): a
# batch then leaves in fewer, larger sends with less left in the transport's own buffer
# (about 0.7 µs less CPU per 1 KiB message to the Go sink, docs/benchmarks.md).
_SEND_BUFFER_BYTES: Final = 4 * 1024 * 1024

_CODES: Final = {code.value[0]: code for code in grpc.StatusCode}
_PREFIX: Final = 5  # 1 byte compressed flag + 4 bytes big-endian length


def frame(message: bytes) -> bytes:
    """`message` with its gRPC length prefix (uncompressed)."""
    return len(message).to_bytes(_PREFIX, "big") + message


class GrpcStreamError(Exception):
    """The stream ended with an error: a gRPC status, a reset, or a lost connection."""

    def __init__(self, what: str, code: grpc.StatusCode) -> None:
        super().__init__(what)
        self.code = code


def _status_error(status: str | None, message: str | None) -> GrpcStreamError | None:
    """None for grpc-status 0 (OK); otherwise the error the trailers name."""
    if status is None:
        return GrpcStreamError(
            "the server ended the stream without a grpc-status", grpc.StatusCode.INTERNAL
        )
    try:
        number = int(status)
    except ValueError:
        number = -1
    if number == 0:
        return None
    code = _CODES.get(number, grpc.StatusCode.UNKNOWN)
    details = urllib.parse.unquote(message or "", errors="replace")
    return GrpcStreamError(f"gRPC status {code.name}: {details}", code)


# gRPC's mapping of an HTTP status without a grpc-status (the server is not speaking gRPC).
_HTTP_CODES: Final = {
    400: grpc.StatusCode.INTERNAL,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.UNAVAILABLE,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}


class GrpcStream(asyncio.Protocol):
    """A client's one gRPC stream on its own HTTP/2 connection; use `GrpcStream.open`."""

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW_BYTES,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
            },
        )
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self._h2.local_settings = settings
        self._transport: asyncio.Transport | None = None
        self._stream_id = 0
        self._inbox = bytearray()  # received bytes not yet split into messages
        self._messages: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0  # size of the unread complete messages
        self._unacknowledged = 0  # flow-controlled bytes not yet acknowledged
        self._failure: GrpcStreamError | None = None
        self._ended = False  # the server ended the stream with grpc-status OK
        self._trailers_seen = False
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._paused = False

    # --- opening and closing ---

    @classmethod
    async def open(
        cls, socket_path: str, method: str, *, authority: str, max_message_bytes: int
    ) -> GrpcStream:
        """Connect to `socket_path` and start a call of `method` (e.g. `/pkg.Svc/Method`)."""
        loop = asyncio.get_running_loop()
        stream = cls(max_message_bytes)
        try:
            await loop.create_unix_connection(lambda: stream, socket_path)
        except OSError as err:
            raise GrpcStreamError(
                f"cannot connect to {socket_path}: {err.strerror or err}",
                grpc.StatusCode.UNAVAILABLE,
            ) from None
        stream._start(method, authority)
        return stream

    def _start(self, method: str, authority: str) -> None:
        conn = self._h2
        conn.initiate_connection()
        conn.increment_flow_control_window(RECEIVE_WINDOW_BYTES - 65_535)
        self._stream_id = conn.get_next_available_stream_id()
        conn.send_headers(
            self._stream_id,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", method),
                (":authority", authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-accept-encoding", "identity"),
                ("user-agent", "udsink-dataplane"),
            ],
        )
        self._flush()

    def close(self) -> None:
        """End the connection (GOAWAY, then close); pending reads and writes fail."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            try:
                self._h2.close_connection()
                self._flush()
            except h2.exceptions.ProtocolError:
                pass
            transport.close()
        self._fail(GrpcStreamError("the client closed the stream", grpc.StatusCode.CANCELLED))

    @property
    def broken(self) -> bool:
        """True once the stream can carry nothing more."""
        return self._failure is not None or self._ended

    # --- sending ---

    async def write(self, data: bytes) -> None:
        """Send `data` (already framed gRPC messages) in as few DATA frames as the server allows."""
        self._check_open()
        conn, sid = self._h2, self._stream_id
        view = memoryview(data)
        sent, total = 0, len(data)
        while sent < total:
            window = conn.local_flow_control_window(sid)
            if window <= 0:
                self._flush()
                await self._wait_writable()
                continue
            frame_size = conn.max_outbound_frame_size
            end = sent + min(window, total - sent)
            try:
                while sent < end:
                    step = min(frame_size, end - sent)
                    conn.send_data(sid, view[sent : sent + step])
                    sent += step
            except h2.exceptions.ProtocolError as err:
                raise GrpcStreamError(
                    f"cannot send on the stream: {err}", grpc.StatusCode.UNAVAILABLE
                ) from None
            self._flush()
            if self._paused:
                await self._wait_writable()

    async def _wait_writable(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()
        try:
            await self._writable
        finally:
            self._writable = None
        self._check_open()

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._ended:
            raise GrpcStreamError(
                "the server had already ended the stream (grpc-status OK)", grpc.StatusCode.OK
            )

    def _flush(self) -> None:
        out = self._h2.data_to_send()
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(out)

    # --- receiving ---

    async def read(self) -> bytes | None:
        """The next message, or None when the server ended the stream with grpc-status OK.

        Messages that arrived before an error are returned first; then the error is raised.
        """
        while not self._messages:
            if self._failure is not None:
                raise self._failure
            if self._ended:
                return None
            self._readable = asyncio.get_running_loop().create_future()
            try:
                await self._readable
            finally:
                self._readable = None
        message = self._messages.popleft()
        self._queued_bytes -= len(message)
        if self._unacknowledged and self._queued_bytes <= BACKLOG_BYTES:
            self._acknowledge()
        return message

    def _acknowledge(self) -> None:
        size, self._unacknowledged = self._unacknowledged, 0
        if self._failure is None and not self._ended:
            self._h2.acknowledge_received_data(size, self._stream_id)
            self._flush()

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER_BYTES)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        why = f": {exc}" if exc else ""
        self._fail(
            GrpcStreamError(
                f"the connection to the server was lost{why}", grpc.StatusCode.UNAVAILABLE
            )
        )

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_writer()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as err:
            self._fail(
                GrpcStreamError(
                    f"HTTP/2 protocol error from the server: {err}", grpc.StatusCode.INTERNAL
                )
            )
            self._flush()
            if self._transport is not None:
                self._transport.close()
            return
        for event in events:
            self._on_event(event)
        self._flush()
        readable = self._readable
        if (
            readable is not None
            and not readable.done()
            and (self._messages or self._failure is not None or self._ended)
        ):
            readable.set_result(None)

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            self._on_data(event)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._wake_writer()
        elif isinstance(event, h2.events.ResponseReceived):
            self._on_headers(_headers(event.headers))
        elif isinstance(event, h2.events.TrailersReceived):
            self._on_trailers(_headers(event.headers))
        elif isinstance(event, h2.events.StreamEnded):
            self._on_end()
        elif isinstance(event, h2.events.StreamReset):
            name = _error_name(event.error_code)
            code = (
                grpc.StatusCode.UNAVAILABLE
                if event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
                else grpc.StatusCode.CANCELLED
                if event.error_code == h2.errors.ErrorCodes.CANCEL
                else grpc.StatusCode.INTERNAL
            )
            self._fail(GrpcStreamError(f"the server reset the stream (RST_STREAM {name})", code))
        elif isinstance(event, h2.events.ConnectionTerminated):
            # h2 sends nothing more after a GOAWAY, so even a graceful one ends our stream;
            # the caller reconnects and sends its batch again.
            debug = (event.additional_data or b"").decode("utf-8", "replace")
            self._fail(
                GrpcStreamError(
                    f"the server closed the connection (GOAWAY {_error_name(event.error_code)}"
                    f"{', ' + debug if debug else ''})",
                    grpc.StatusCode.UNAVAILABLE,
                )
            )

    def _on_headers(self, headers: dict[str, str]) -> None:
        status = headers.get(":status")
        if "grpc-status" in headers:  # Trailers-Only: the call ends here (StreamEnded follows)
            self._on_trailers(headers)
            return
        if status != "200":
            number = int(status) if status and status.isdigit() else 0
            self._fail(
                GrpcStreamError(
                    f"the server answered HTTP status {status} (not a gRPC server?)",
                    _HTTP_CODES.get(number, grpc.StatusCode.UNKNOWN),
                )
            )
            return
        content_type = headers.get("content-type", "")
        if not content_type.startswith("application/grpc"):
            self._fail(
                GrpcStreamError(
                    f"the server answered content-type {content_type!r}, not application/grpc",
                    grpc.StatusCode.UNKNOWN,
                )
            )

    def _on_trailers(self, headers: dict[str, str]) -> None:
        self._trailers_seen = True
        error = _status_error(headers.get("grpc-status"), headers.get("grpc-message"))
        if error is not None:
            self._fail(error)
        elif self._inbox:
            self._fail(
                GrpcStreamError(
                    f"the stream ended inside a message ({len(self._inbox)} bytes of it came)",
                    grpc.StatusCode.INTERNAL,
                )
            )
        else:
            self._ended = True

    def _on_end(self) -> None:
        if not self._trailers_seen and self._failure is None:
            self._fail(
                GrpcStreamError(
                    "the server ended the stream without a grpc-status", grpc.StatusCode.INTERNAL
                )
            )

    def _on_data(self, event: h2.events.DataReceived) -> None:
        self._unacknowledged += event.flow_controlled_length
        if event.stream_id != self._stream_id or self._failure is not None:
            self._acknowledge_elsewhere(event.stream_id)
            return
        inbox = self._inbox
        inbox += event.data
        pos, size, limit = 0, len(inbox), self.max_message_bytes
        messages = self._messages
        while size - pos >= _PREFIX:
            flag = inbox[pos]
            length = int.from_bytes(inbox[pos + 1 : pos + _PREFIX], "big")
            if flag != 0:
                self._fail(
                    GrpcStreamError(
                        f"the server sent a message with the compressed flag set (flag {flag}, "
                        f"{length} bytes) although this client offers no compression "
                        "(grpc-accept-encoding: identity)",
                        grpc.StatusCode.INTERNAL,
                    )
                )
                return
            if length > limit:
                self._fail(
                    GrpcStreamError(
                        f"the server sent a message of {length} bytes, over the max message "
                        f"size of {limit} bytes (maxMessageBytes)",
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                    )
                )
                return
            start = pos + _PREFIX
            if size - start < length:
                break
            messages.append(bytes(inbox[start : start + length]))
            self._queued_bytes += length
            pos = start + length
        if pos:
            del inbox[:pos]
        if self._queued_bytes <= BACKLOG_BYTES:
            self._acknowledge()

    def _acknowledge_elsewhere(self, stream_id: int) -> None:
        """Data nobody reads (another stream, or ours after it failed) still frees the
        connection's window (h2 leaves a closed stream's window alone)."""
        size, self._unacknowledged = self._unacknowledged, 0
        if size:
            self._h2.acknowledge_received_data(size, stream_id)

    def _fail(self, error: GrpcStreamError) -> None:
        if self._failure is None and not self._ended:
            self._failure = error
        self._wake_writer()
        readable = self._readable
        if readable is not None and not readable.done():
            readable.set_result(None)

    def _wake_writer(self) -> None:
        writable = self._writable
        if writable is not None and not writable.done():
            writable.set_result(None)


def _headers(pairs: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:  # type: ignore[attr-defined]
        out[str(name)] = str(value)
    return out


def _error_name(code: object) -> str:
    try:
        return h2.errors.ErrorCodes(int(code)).name  # type: ignore[call-overload]
    except (ValueError, TypeError):
        return f"error code {code}"
