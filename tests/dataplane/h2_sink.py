"""A sink.v1 server written on raw HTTP/2 (`h2`), for the frame-level cases of the sink client.

grpcio servers (scripted_sink.py) cannot be told to shrink a flow-control window to a few
hundred bytes, to answer a stream with a headers-only "Trailers-Only" status, to send GOAWAY
in the middle of a batch, to set the compressed flag on a message, or to misbehave the way a
hostile sink can. This server can: it is a real HTTP/2 peer on a Unix socket (IsReady
answered, SinkFn spoken per docs/design/contract.md), and each SinkFn stream it accepts
follows the next entry of its `plan` (the last entry repeats):

- `ok`: handshake, then every batch answered SUCCESS (results, then a separate EOT);
- `unavailable`: a Trailers-Only answer at once, grpc-status 14 with a percent-encoded message;
- `internal`: handshake, then the first batch ends the stream with trailers grpc-status 13;
- `goaway`: handshake, then GOAWAY and a closed connection as soon as a batch starts arriving;
- `goaway-window`: the same with a WINDOW_UPDATE after the GOAWAY (HTTP/2 allows it; grpcio
  servers that shut down send it);
- `compressed`: handshake, then the batch's results with the compressed flag set;
- `silent`: reads everything and never answers anything, not even the handshake;
- `headers`: answers the stream with the header block `headers` (unvalidated: any bytes);
- `flood-empty`, `flood-byte`: handshake, then each batch answered by empty (or 1-byte)
  messages without end and no EOT, as fast as the client's windows allow;
- `flood-empty-idle`, `flood-byte-idle`: the same flood, starting in the handshake answer's
  DATA frame;
- `ping-no-read`, `settings-no-read`: handshake, then once a batch starts arriving, PING (or
  SETTINGS) frames without end while reading nothing more;
- `double-eot`: every batch answered SUCCESS, then a second EOT;
- `stray-success`: every batch answered FAILURE and EOT, then SUCCESS for the same ids and
  another EOT (what a retry of the batch must not take for its answer);
- `huge-prefix`: handshake, then a batch answered by a length prefix of 2^32 - 1 bytes;
- `partial`: handshake, then a batch answered by a message that declares `partial_length`
  bytes and stops after half of them.

It records what each stream received (`batches`), the ids it answered SUCCESS (`succeeded`),
what the client said when it ended a stream or the connection (`resets`: RST_STREAM and GOAWAY
with their debug data) and the largest DATA frame the client sent. `send_stray` sends a message
on the last stream whenever a test wants it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from sink_runtime import serverinfo
from sink_runtime.config import UserSinkConfig, constants
from sink_runtime.proto import sink_pb2

UNAVAILABLE_MESSAGE = "sink is warming up: 50%"  # sent as "sink%20is%20warming%20up%3A%2050%25"
INTERNAL_MESSAGE = "café db down"  # sent as "caf%C3%A9%20db%20down"

# Raw frames (RFC 9113 §4.1: 24-bit length, type, flags, 31-bit stream id): a PING with 8
# bytes of opaque data, a SETTINGS frame setting HEADER_TABLE_SIZE to 4096, and a connection
# WINDOW_UPDATE of 1 KiB.
PING_FRAME = bytes([0, 0, 8, 0x6, 0, 0, 0, 0, 0]) + b"hostile!"
SETTINGS_FRAME = bytes([0, 0, 6, 0x4, 0, 0, 0, 0, 0]) + bytes([0, 1, 0, 0, 16, 0])
WINDOW_UPDATE_FRAME = bytes([0, 0, 4, 0x8, 0, 0, 0, 0, 0]) + (1024).to_bytes(4, "big")


def _frame(message: bytes, flag: int = 0) -> bytes:
    return bytes([flag]) + len(message).to_bytes(4, "big") + message


def _split(buffer: bytearray) -> list[bytes]:
    out = []
    while len(buffer) >= 5:
        length = int.from_bytes(buffer[1:5], "big")
        if len(buffer) < 5 + length:
            break
        out.append(bytes(buffer[5 : 5 + length]))
        del buffer[: 5 + length]
    return out


def _answer(ids: list[str], status: int) -> bytes:
    results = [sink_pb2.SinkResponse.Result(id=i, status=status) for i in ids]  # type: ignore[arg-type]
    return _frame(sink_pb2.SinkResponse(results=results).SerializeToString())


_EOT = _frame(
    sink_pb2.SinkResponse(status=sink_pb2.TransmissionStatus(eot=True)).SerializeToString()
)
_FLOODS = {"flood-empty": b"", "flood-byte": b"x"}


@dataclass
class Reset:
    """The client ended a stream (RST_STREAM) or the connection (GOAWAY)."""

    stream: int  # the SinkFn stream's number (1 for the first), 0 for IsReady's connection
    frame: str  # "RST_STREAM" or "GOAWAY"
    code: str  # the HTTP/2 error code's name
    debug: str  # GOAWAY's debug data


@dataclass
class _Stream:
    behaviour: str
    number: int  # 1 for the first SinkFn stream this server accepted
    inbox: bytearray = field(default_factory=bytearray)
    handshaken: bool = False
    batch: list[str] = field(default_factory=list)


@dataclass
class _Connection:
    conn: h2.connection.H2Connection
    writer: asyncio.StreamWriter
    streams: dict[int, _Stream] = field(default_factory=dict)
    window_opened: asyncio.Event = field(default_factory=asyncio.Event)
    hostile: asyncio.Task[None] | None = None  # a flood or the frames of a peer not reading
    read_more: bool = True


@dataclass
class H2Sink:
    directory: Path
    plan: list[str]
    initial_window: int = 65_535
    name: str = "h2sink"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # for `headers`
    partial_length: int = 0  # for `partial`
    batches: list[tuple[int, list[str]]] = field(default_factory=list)  # (stream no., ids)
    succeeded: set[str] = field(default_factory=set)
    resets: list[Reset] = field(default_factory=list)
    streams: int = 0
    largest_data_frame: int = 0
    last_stream: tuple[_Connection, int] | None = None  # the last SinkFn stream handshaken
    _server: Any = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

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
            "use_batch_extension": False,
        }
        return UserSinkConfig(**(options | overrides))

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.socket_path)
        serverinfo.write_server_info(
            self.server_info_path,
            serverinfo.ServerInfo(
                protocol="uds",
                language="go",
                minimum_numaflow_version=constants.MINIMUM_NUMAFLOW_VERSION,
                version="0.1.0",
                metadata={},
            ),
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=False,
                header_encoding="utf-8",
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.initial_window},
        )
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        c = _Connection(conn, writer)
        try:
            while c.read_more and (data := await reader.read(65536)):
                for event in conn.receive_data(data):
                    if not self._on_event(c, event):
                        await self._write(c)
                        return
                c.window_opened.set()
                await self._write(c)
            if not c.read_more and c.hostile is not None:
                await c.hostile  # it writes until the client drops the connection
        except (ConnectionError, asyncio.CancelledError, h2.exceptions.ProtocolError):
            pass
        finally:
            if c.hostile is not None:
                c.hostile.cancel()
            writer.close()
            self._tasks.discard(task)

    def _on_event(self, c: _Connection, event: Any) -> bool:
        """Handle one event; False to close the connection."""
        conn = c.conn
        if isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
            stream = c.streams.get(getattr(event, "stream_id", 0) or 0)
            numbers = [s.number for s in c.streams.values()]
            number = stream.number if stream else max(numbers, default=0)
            if isinstance(event, h2.events.StreamReset):
                self.resets.append(Reset(number, "RST_STREAM", _code(event.error_code), ""))
            else:
                debug = (event.additional_data or b"").decode("utf-8", "replace")
                self.resets.append(Reset(number, "GOAWAY", _code(event.error_code), debug))
            return True
        if isinstance(event, h2.events.RequestReceived):
            path = dict(event.headers)[":path"]
            sid = event.stream_id
            if path.endswith("/IsReady"):
                conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
                ready = sink_pb2.ReadyResponse(ready=True).SerializeToString()
                conn.send_data(sid, _frame(ready))
                conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
                return True
            behaviour = self.plan[min(self.streams, len(self.plan) - 1)]
            self.streams += 1
            c.streams[sid] = _Stream(behaviour, self.streams)
            if behaviour == "unavailable":
                conn.send_headers(
                    sid,
                    [
                        (":status", "200"),
                        ("content-type", "application/grpc"),
                        ("grpc-status", "14"),
                        ("grpc-message", "sink%20is%20warming%20up%3A%2050%25"),
                    ],
                    end_stream=True,
                )
            elif behaviour == "headers":
                conn.send_headers(sid, self.headers)
            return True
        if isinstance(event, h2.events.DataReceived):
            self.largest_data_frame = max(self.largest_data_frame, len(event.data))
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = c.streams.get(event.stream_id)
            if stream is None or stream.behaviour in ("unavailable", "silent", "headers"):
                return True
            stream.inbox += event.data
            return self._on_messages(c, event.stream_id, stream)
        return True

    def _on_messages(self, c: _Connection, sid: int, stream: _Stream) -> bool:
        conn = c.conn
        behaviour = stream.behaviour
        for message in _split(stream.inbox):
            request = sink_pb2.SinkRequest.FromString(message)
            if not stream.handshaken:
                stream.handshaken = True
                conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
                hello = _frame(
                    sink_pb2.SinkResponse(
                        handshake=sink_pb2.Handshake(sot=True)
                    ).SerializeToString()
                )
                if behaviour.endswith("-idle"):
                    # The flood's first messages share the handshake's DATA frame, so they
                    # are there before the client could send a batch.
                    flood = _frame(_FLOODS[behaviour[:-5]])
                    conn.send_data(sid, hello + flood * 1000)
                    self._start_hostile(c, self._flood(c, sid, _FLOODS[behaviour[:-5]]))
                else:
                    conn.send_data(sid, hello)
                self.last_stream = (c, sid)
                continue
            if behaviour.startswith("goaway"):
                conn.close_connection(last_stream_id=sid)
                if behaviour == "goaway-window":
                    c.writer.write(conn.data_to_send() + WINDOW_UPDATE_FRAME)
                return False
            if behaviour.endswith("-no-read"):
                frame = PING_FRAME if behaviour == "ping-no-read" else SETTINGS_FRAME
                self._start_hostile(c, self._frames_without_reading(c, frame))
                c.read_more = False
                return True
            if not request.HasField("status"):
                stream.batch.append(request.request.id)
                continue
            self.batches.append((stream.number, stream.batch))
            ids, stream.batch = stream.batch, []
            self._answer_batch(c, sid, behaviour, ids)
        return True

    def _answer_batch(self, c: _Connection, sid: int, behaviour: str, ids: list[str]) -> None:
        conn = c.conn
        if behaviour == "internal":
            conn.send_headers(
                sid,
                [("grpc-status", "13"), ("grpc-message", "caf%C3%A9%20db%20down")],
                end_stream=True,
            )
        elif behaviour in _FLOODS:
            self._start_hostile(c, self._flood(c, sid, _FLOODS[behaviour]))
        elif behaviour == "huge-prefix":
            conn.send_data(sid, b"\x00\xff\xff\xff\xff" + b"\x00" * 64)
        elif behaviour == "partial":
            conn.send_data(sid, b"\x00" + self.partial_length.to_bytes(4, "big"))
            self._start_hostile(c, self._send(c, sid, b"\x00" * (self.partial_length // 2)))
        elif behaviour == "stray-success":
            stray = _answer(ids, sink_pb2.SUCCESS) + _EOT
            conn.send_data(sid, _answer(ids, sink_pb2.FAILURE) + _EOT + stray)
        else:
            answer = _answer(ids, sink_pb2.SUCCESS)
            if behaviour == "compressed":
                answer = bytes([1]) + answer[1:]
            conn.send_data(sid, answer + _EOT + (_EOT if behaviour == "double-eot" else b""))
            self.succeeded.update(ids)

    async def send_stray(self, message: bytes) -> None:
        """`message` (unframed) on the last SinkFn stream, now, whatever the client is doing."""
        assert self.last_stream is not None
        c, sid = self.last_stream
        c.conn.send_data(sid, _frame(message))
        await self._write(c)

    def _start_hostile(self, c: _Connection, work: Any) -> None:
        c.hostile = asyncio.ensure_future(work)

    async def _send(self, c: _Connection, sid: int, data: bytes) -> None:
        """`data` on the stream as the client's windows allow."""
        view = memoryview(data)
        sent = 0
        with contextlib.suppress(ConnectionError, h2.exceptions.ProtocolError):
            while sent < len(data) and not c.writer.is_closing():
                room = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
                if room <= 0:
                    await self._window(c)
                    continue
                c.conn.send_data(sid, view[sent : sent + room])
                sent += room
                await self._write(c)
            await asyncio.Event().wait()  # keep the connection; the client gives up

    async def _flood(self, c: _Connection, sid: int, message: bytes) -> None:
        """`message` without end, as fast as the client's windows allow."""
        framed = _frame(message)
        with contextlib.suppress(ConnectionError, h2.exceptions.ProtocolError):
            while not c.writer.is_closing():
                room = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
                if room < len(framed):
                    await self._window(c)
                    continue
                c.conn.send_data(sid, framed * (room // len(framed)))
                await self._write(c)

    async def _frames_without_reading(self, c: _Connection, frame: bytes) -> None:
        """`frame` without end; nothing the client sends is read any more."""
        await self._write(c)
        block = frame * 4096
        with contextlib.suppress(ConnectionError):
            while True:
                c.writer.write(block)
                await c.writer.drain()

    async def _write(self, c: _Connection) -> None:
        """What h2 has to send; once the client stopped reading nothing is (the loop goes on
        reading what the client said last: its RST_STREAM and GOAWAY)."""
        out = c.conn.data_to_send()
        if c.writer.is_closing():
            return
        c.writer.write(out)
        with contextlib.suppress(ConnectionError):
            await c.writer.drain()

    async def _window(self, c: _Connection) -> None:
        c.window_opened.clear()
        await c.window_opened.wait()


def _code(code: object) -> str:
    try:
        return h2.errors.ErrorCodes(int(code)).name  # type: ignore[call-overload]
    except (ValueError, TypeError):
        return str(code)
