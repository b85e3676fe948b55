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
messages mean (the sink contract) stays with the caller, `sink_v1_transport.SinkV1Transport`,
which maps this module's GrpcStreamError to the sink transports' errors (transport.py).

Everything the server sends is untrusted, and each kind of misbehaviour has a bounded outcome:
- Received bytes are acknowledged (HTTP/2 WINDOW_UPDATE) only while the unread complete
  messages cost less than `BACKLOG_BYTES`, each message counting its length plus
  `MESSAGE_COST` (an empty message is not free); more than `MAX_UNREAD_MESSAGES` unread
  messages end the stream. A server that sends without end fills at most the backlog, our
  receive window and that many messages.
- A message is at most `max_message_bytes`; a longer length prefix ends the stream at once.
- While the caller expects nothing (`refuse_messages`), any message ends the stream.
- `h2` acknowledges every PING and SETTINGS frame: more than `MAX_CONTROL_FRAMES` of them
  within `CONTROL_WINDOW_S` and no message from the server end the connection (a flood), and
  so does our output waiting unsent past `OUTBOUND_LIMIT` (a server that does not read what
  we send, acknowledgements included); unsent output is dropped with the connection.
- Malformed headers (a `:status` or `grpc-status` that is not ASCII digits, bytes that are
  not UTF-8, anything `h2` refuses) end the stream; nothing the server sends raises out of
  the protocol callbacks.
- The client never offers compression, so a message with the compressed flag set ends the
  stream too.
Each of these resets the stream (RST_STREAM, then GOAWAY whose debug data names the reason),
closes the connection and fails pending and later reads and writes with a GrpcStreamError
naming the reason; `on_violation` is told at once, so the caller can report it even while it
reads nothing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import socket
import time
import urllib.parse
from collections.abc import Callable, Sequence
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
# Unread complete messages costing more than this hold back our flow-control acknowledgements.
BACKLOG_BYTES: Final = 1024 * 1024
# What one unread message costs besides its bytes: its bytes object and its queue slot.
MESSAGE_COST: Final = 64
# More unread messages than this end the stream. The caller reads answers as they arrive and a
# batch has at most 10,000 datums (at most 10,001 answers), so only a flood gets here.
MAX_UNREAD_MESSAGES: Final = 65_536
# Output queued in the kernel-facing transport above this waits for it to drain.
_WRITE_HIGH_WATER: Final = 1024 * 1024
# `write` hands the transport at most this much at a time and waits while it is paused, so
# our own output stays under _WRITE_HIGH_WATER plus one chunk.
_WRITE_CHUNK: Final = _WRITE_HIGH_WATER
# Our output waiting unsent above this ends the connection: the server does not read, and
# what grows is our acknowledgements of its PING and SETTINGS frames.
OUTBOUND_LIMIT: Final = 4 * _WRITE_HIGH_WATER
# PING and SETTINGS frames each make us send an acknowledgement. More than this many within
# CONTROL_WINDOW_S and no message from the server end the connection: gRPC servers send a
# keepalive PING every few seconds at most, and BDP PINGs only while data flows (a batch's
# answers follow them).
MAX_CONTROL_FRAMES: Final = 10_000
CONTROL_WINDOW_S: Final = 60.0
# The reason a reset names goes into GOAWAY's debug data, cut to this many bytes.
_DEBUG_DATA_BYTES: Final = 512
# The socket's send buffer we ask for (the kernel caps it at twice net.core.wmem_max): a
# batch then leaves in fewer, larger sends with less left in the transport's own buffer
# (less CPU per message to the sink: docs/benchmarks.md).
_SEND_BUFFER_BYTES: Final = 4 * 1024 * 1024

_CODES: Final = {code.value[0]: code for code in grpc.StatusCode}
_PREFIX: Final = 5  # 1 byte compressed flag + 4 bytes big-endian length
# An HTTP status is three ASCII digits; a grpc-status one or more (str.isdigit also accepts
# '²' and other scripts' digits, and int() reads some of them).
_HTTP_STATUS: Final = re.compile(r"[0-9]{3}")
_GRPC_STATUS: Final = re.compile(r"[0-9]{1,10}")

logger = logging.getLogger(__name__)


def frame(message: bytes) -> bytes:
    """`message` with its gRPC length prefix (uncompressed)."""
    return len(message).to_bytes(_PREFIX, "big") + message


def framed(messages: Sequence[bytes]) -> bytes:
    """`messages` each with its gRPC length prefix, back to back, joined once."""
    parts: list[bytes] = []
    append = parts.append
    for message in messages:
        append(len(message).to_bytes(_PREFIX, "big"))
        append(message)
    return b"".join(parts)


class GrpcStreamError(Exception):
    """The stream ended with an error: a gRPC status, a reset, or a lost connection.

    `violation` is True when the client ended the stream for what the server sent.
    """

    def __init__(self, what: str, code: grpc.StatusCode, *, violation: bool = False) -> None:
        super().__init__(what)
        self.code = code
        self.violation = violation


def _status_error(status: str | None, message: str | None) -> GrpcStreamError | None:
    """None for grpc-status 0 (OK); otherwise the error the trailers name."""
    if status is None:
        return GrpcStreamError(
            "the server ended the stream without a grpc-status", grpc.StatusCode.INTERNAL
        )
    if not _GRPC_STATUS.fullmatch(status):
        return GrpcStreamError(
            f"the server sent a malformed grpc-status {status[:64]!r} (not ASCII digits)",
            grpc.StatusCode.INTERNAL,
            violation=True,
        )
    number = int(status)
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
        # Told, once, when the client ends the stream for what the server sent.
        self.on_violation: Callable[[GrpcStreamError], None] | None = None
        settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW_BYTES,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
            },
        )
        # Headers stay bytes (header_encoding None): `_headers` decodes them without raising.
        self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self._h2.local_settings = settings
        self._transport: asyncio.Transport | None = None
        self._stream_id = 0
        self._inbox = bytearray()  # received bytes not yet split into messages
        self._messages: collections.deque[bytes] = collections.deque()
        self._queued_cost = 0  # the unread complete messages: bytes plus MESSAGE_COST each
        self._unacknowledged = 0  # flow-controlled bytes not yet acknowledged
        self._failure: GrpcStreamError | None = None
        self._ended = False  # the server ended the stream with grpc-status OK
        self._trailers_seen = False
        self._refusing: str | None = None  # why no message is expected now (refuse_messages)
        self._control_frames = 0  # PING and SETTINGS received since _control_since ...
        self._control_since = time.monotonic()  # ... with no message from the server
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
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.close_connection()
            self._flush()
            self._drop(transport)
        self._fail(GrpcStreamError("the client closed the stream", grpc.StatusCode.CANCELLED))

    @staticmethod
    def _drop(transport: asyncio.Transport) -> None:
        """Close the connection; output a server has not read is dropped with it (closing
        gracefully would keep it, and the socket, until that server reads)."""
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    @property
    def broken(self) -> bool:
        """True once the stream can carry nothing more."""
        return self._failure is not None or self._ended

    @property
    def failure(self) -> GrpcStreamError | None:
        """Why the stream failed, if it did."""
        return self._failure

    def refuse_messages(self, why: str) -> None:
        """Expect no message until `accept_messages`: one that is waiting unread, or arrives,
        ends the stream as a violation whose reason says it came `why` (e.g. "between
        batches")."""
        self._refusing = why
        if self._messages or self._inbox:
            self._refuse()

    def accept_messages(self) -> None:
        """Messages are expected again (`refuse_messages`)."""
        self._refusing = None

    def _refuse(self) -> None:
        sent = []
        if self._messages:
            size = sum(len(m) for m in self._messages)
            sent.append(f"{len(self._messages)} messages ({size} bytes)")
        if self._inbox:
            sent.append(f"{len(self._inbox)} bytes of a message")
        self._violate(
            f"the server sent {' and '.join(sent)} {self._refusing}, when no message may come"
        )

    # --- sending ---

    async def write(self, data: bytes) -> None:
        """Send `data` (already framed gRPC messages) in as few DATA frames as the server allows."""
        self._check_open()
        conn, sid = self._h2, self._stream_id
        view = memoryview(data)
        sent, total = 0, len(data)
        while sent < total:
            if self._paused:
                await self._wait_writable()
                continue
            window = conn.local_flow_control_window(sid)
            if window <= 0:
                await self._wait_writable()
                continue
            frame_size = conn.max_outbound_frame_size
            end = sent + min(window, total - sent, _WRITE_CHUNK)
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
        self._queued_cost -= len(message) + MESSAGE_COST
        if self._unacknowledged and self._queued_cost <= BACKLOG_BYTES:
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
        if self._transport is None or self._transport.is_closing():
            return  # a reset connection: nothing more is read
        try:
            for event in self._h2.receive_data(data):
                self._on_event(event)
                if self._transport is None or self._transport.is_closing():
                    return
        except h2.exceptions.ProtocolError as err:
            if _closed_before(err):
                # A GOAWAY earlier in this read (its event is lost with the exception), then
                # frames HTTP/2 allows after it and h2 refuses: the server went away.
                self._fail(
                    GrpcStreamError(
                        "the server closed the connection (GOAWAY)", grpc.StatusCode.UNAVAILABLE
                    )
                )
                self._drop(self._transport)
                return
            # h2 has queued its GOAWAY for this.
            self._violate(f"HTTP/2 protocol error from the server: {err}")
            return
        except Exception as err:
            # Whatever else what the server sent makes h2 or the framing raise ends the stream
            # here: an exception out of this callback would be asyncio's fatal error.
            logger.debug("unexpected failure on the server's data", exc_info=True)
            self._violate(
                f"the server sent what the client cannot parse ({type(err).__name__}: {err})"
            )
            return
        self._flush()
        transport = self._transport
        if transport is not None and transport.get_write_buffer_size() > OUTBOUND_LIMIT:
            self._exhausted(
                f"the server does not read what the client sends: "
                f"{transport.get_write_buffer_size()} bytes wait unsent (over "
                f"{OUTBOUND_LIMIT}) while it keeps sending frames that must be answered "
                "(PING, SETTINGS)"
            )
            return
        self._wake_reader()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            self._control_frames = 0
            self._on_data(event)
        elif isinstance(event, h2.events.WindowUpdated):
            self._wake_writer()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._wake_writer()
            self._on_control_frame()
        elif isinstance(event, h2.events.PingReceived):
            self._on_control_frame()
        elif isinstance(event, h2.events.ResponseReceived):
            self._control_frames = 0
            self._on_headers(_headers(event.headers))
        elif isinstance(event, h2.events.TrailersReceived):
            self._control_frames = 0
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

    def _on_control_frame(self) -> None:
        now = time.monotonic()
        if now - self._control_since > CONTROL_WINDOW_S:
            self._control_frames, self._control_since = 0, now
        elif self._control_frames == 0:
            self._control_since = now
        self._control_frames += 1
        if self._control_frames > MAX_CONTROL_FRAMES:
            self._exhausted(
                f"the server sent {self._control_frames} PING and SETTINGS frames (each "
                f"answered) within {CONTROL_WINDOW_S:g}s and no message: a flood"
            )

    def _on_headers(self, headers: dict[str, str]) -> None:
        status = headers.get(":status", "")
        if not _HTTP_STATUS.fullmatch(status):
            self._violate(
                f"the server sent a malformed :status {status[:64]!r} (not three ASCII digits)"
            )
            return
        if "grpc-status" in headers:  # Trailers-Only: the call ends here (StreamEnded follows)
            self._on_trailers(headers)
            return
        if status != "200":
            self._fail(
                GrpcStreamError(
                    f"the server answered HTTP status {status} (not a gRPC server?)",
                    _HTTP_CODES.get(int(status), grpc.StatusCode.UNKNOWN),
                )
            )
            return
        content_type = headers.get("content-type", "")
        if not content_type.startswith("application/grpc"):
            self._fail(
                GrpcStreamError(
                    f"the server answered content-type {content_type[:64]!r}, not application/grpc",
                    grpc.StatusCode.UNKNOWN,
                )
            )

    def _on_trailers(self, headers: dict[str, str]) -> None:
        self._trailers_seen = True
        error = _status_error(headers.get("grpc-status"), headers.get("grpc-message"))
        if error is not None and error.violation:
            self._abort(error, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        elif error is not None:
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
        cost = self._queued_cost
        while size - pos >= _PREFIX:
            flag = inbox[pos]
            length = int.from_bytes(inbox[pos + 1 : pos + _PREFIX], "big")
            if flag != 0:
                self._violate(
                    f"the server sent a message with the compressed flag set (flag {flag}, "
                    f"{length} bytes) although this client offers no compression "
                    "(grpc-accept-encoding: identity)"
                )
                return
            if length > limit:
                self._exhausted(
                    f"the server sent a message of {length} bytes, over the max message "
                    f"size of {limit} bytes (maxMessageBytes)"
                )
                return
            start = pos + _PREFIX
            if size - start < length:
                break
            messages.append(bytes(inbox[start : start + length]))
            cost += length + MESSAGE_COST
            pos = start + length
            if len(messages) > MAX_UNREAD_MESSAGES:
                self._queued_cost = cost
                self._exhausted(
                    f"the server sent more than {MAX_UNREAD_MESSAGES} messages that were "
                    f"not read yet ({cost} bytes with their overhead): a flood"
                )
                return
        if pos:
            del inbox[:pos]
        self._queued_cost = cost
        if self._refusing is not None and (messages or inbox):
            self._refuse()
            return
        if cost <= BACKLOG_BYTES:
            self._acknowledge()

    def _acknowledge_elsewhere(self, stream_id: int) -> None:
        """Data nobody reads (another stream, or ours after it failed) still frees the
        connection's window (h2 leaves a closed stream's window alone)."""
        size, self._unacknowledged = self._unacknowledged, 0
        if size:
            self._h2.acknowledge_received_data(size, stream_id)

    def _violate(
        self,
        what: str,
        code: grpc.StatusCode = grpc.StatusCode.INTERNAL,
        reason: h2.errors.ErrorCodes = h2.errors.ErrorCodes.PROTOCOL_ERROR,
    ) -> None:
        """End the stream for `what` the server sent (`_abort`)."""
        self._abort(GrpcStreamError(what, code, violation=True), reason)

    def _exhausted(self, what: str) -> None:
        """End the stream for a flood or an overflow (`_violate`)."""
        self._violate(
            what, grpc.StatusCode.RESOURCE_EXHAUSTED, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        )

    def _abort(self, error: GrpcStreamError, reason: h2.errors.ErrorCodes) -> None:
        """End the stream and the connection for what the server sent: RST_STREAM with
        `reason`, GOAWAY whose debug data is `error`'s text, unsent output dropped."""
        first = self._failure is None and not self._ended
        self._fail(error)
        self._messages.clear()
        self._inbox.clear()
        self._queued_cost = 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            debug = str(error).encode()[:_DEBUG_DATA_BYTES]
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.reset_stream(self._stream_id, reason)
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.close_connection(reason, additional_data=debug)
            self._flush()
            self._drop(transport)
        if first and error.violation and self.on_violation is not None:
            self.on_violation(error)

    def _fail(self, error: GrpcStreamError) -> None:
        if self._failure is None and not self._ended:
            self._failure = error
        self._wake_writer()
        self._wake_reader()

    def _wake_reader(self) -> None:
        readable = self._readable
        if (
            readable is not None
            and not readable.done()
            and (self._messages or self._failure is not None or self._ended)
        ):
            readable.set_result(None)

    def _wake_writer(self) -> None:
        writable = self._writable
        if writable is not None and not writable.done():
            writable.set_result(None)


def _headers(pairs: object) -> dict[str, str]:
    """Header names and values as text; bytes that are not UTF-8 are replaced, never raised."""
    out: dict[str, str] = {}
    for name, value in pairs:  # type: ignore[attr-defined]
        out[_text(name)] = _text(value)
    return out


def _text(raw: object) -> str:
    if isinstance(raw, bytes | bytearray | memoryview):
        return bytes(raw).decode("utf-8", "replace")
    return str(raw)


def _closed_before(err: h2.exceptions.ProtocolError) -> bool:
    """Whether h2 refused a frame because the connection was closed already (its state
    machine's error for any frame after a GOAWAY)."""
    return isinstance(err.__cause__, KeyError) and str(err).endswith(
        f"in state {h2.connection.ConnectionState.CLOSED}"
    )


def _error_name(code: object) -> str:
    try:
        return h2.errors.ErrorCodes(int(code)).name  # type: ignore[call-overload]
    except (ValueError, TypeError):
        return f"error code {code}"
