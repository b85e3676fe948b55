"""A sink.v1 server written on raw HTTP/2 (`h2`), for the frame-level cases of the sink client.

grpcio servers (scripted_sink.py) cannot be told to shrink a flow-control window to a few
hundred bytes, to answer a stream with a headers-only "Trailers-Only" status, to send GOAWAY
in the middle of a batch, or to set the compressed flag on a message. This server can: it is a
real HTTP/2 peer on a Unix socket (IsReady answered, SinkFn spoken per CONTRACT.md), and each
SinkFn stream it accepts follows the next entry of its `plan`:

- `ok`: handshake, then every batch answered SUCCESS (results, then a separate EOT);
- `unavailable`: a Trailers-Only answer at once, grpc-status 14 with a percent-encoded message;
- `internal`: handshake, then the first batch ends the stream with trailers grpc-status 13;
- `goaway`: handshake, then GOAWAY and a closed connection as soon as a batch starts arriving;
- `compressed`: handshake, then the batch's results with the compressed flag set.

It records what each stream received (`batches`) and the largest DATA frame the client sent.
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
import h2.events
import h2.settings

from sink_runtime import serverinfo
from sink_runtime.config import UserSinkConfig, constants
from sink_runtime.proto import sink_pb2

UNAVAILABLE_MESSAGE = "sink is warming up: 50%"  # sent as "sink%20is%20warming%20up%3A%2050%25"
INTERNAL_MESSAGE = "café db down"  # sent as "caf%C3%A9%20db%20down"


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


@dataclass
class _Stream:
    behaviour: str
    number: int  # 1 for the first SinkFn stream this server accepted
    inbox: bytearray = field(default_factory=bytearray)
    handshaken: bool = False
    batch: list[str] = field(default_factory=list)


@dataclass
class H2Sink:
    directory: Path
    plan: list[str]
    initial_window: int = 65_535
    name: str = "h2sink"
    batches: list[tuple[int, list[str]]] = field(default_factory=list)  # (stream no., ids)
    streams: int = 0
    largest_data_frame: int = 0
    _server: Any = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def socket_path(self) -> str:
        return str(self.directory / f"{self.name}.sock")

    def config(self, **overrides: Any) -> UserSinkConfig:
        options: dict[str, Any] = {
            "socket_path": self.socket_path,
            "server_info_path": str(self.directory / f"{self.name}-server-info"),
            "startup_timeout_ms": 10_000,
            "use_batch_extension": False,
        }
        return UserSinkConfig(**(options | overrides))

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.socket_path)
        serverinfo.write_server_info(
            str(self.directory / f"{self.name}-server-info"),
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
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.initial_window},
        )
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, _Stream] = {}
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if not self._on_event(conn, streams, event):
                        writer.write(conn.data_to_send())
                        await writer.drain()
                        return
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    def _on_event(
        self, conn: h2.connection.H2Connection, streams: dict[int, _Stream], event: Any
    ) -> bool:
        """Handle one event; False to close the connection."""
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
            streams[sid] = _Stream(behaviour, self.streams)
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
            return True
        if isinstance(event, h2.events.DataReceived):
            self.largest_data_frame = max(self.largest_data_frame, len(event.data))
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = streams.get(event.stream_id)
            if stream is None or stream.behaviour == "unavailable":  # answered already
                return True
            stream.inbox += event.data
            return self._on_messages(conn, event.stream_id, stream)
        return True

    def _on_messages(self, conn: h2.connection.H2Connection, sid: int, stream: _Stream) -> bool:
        for message in _split(stream.inbox):
            request = sink_pb2.SinkRequest.FromString(message)
            if not stream.handshaken:
                stream.handshaken = True
                conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
                hello = sink_pb2.SinkResponse(handshake=sink_pb2.Handshake(sot=True))
                conn.send_data(sid, _frame(hello.SerializeToString()))
                continue
            if stream.behaviour == "goaway":
                conn.close_connection(last_stream_id=sid)
                return False
            if not request.HasField("status"):
                stream.batch.append(request.request.id)
                continue
            self.batches.append((stream.number, stream.batch))
            ids, stream.batch = stream.batch, []
            if stream.behaviour == "internal":
                conn.send_headers(
                    sid,
                    [("grpc-status", "13"), ("grpc-message", "caf%C3%A9%20db%20down")],
                    end_stream=True,
                )
                return True
            results = sink_pb2.SinkResponse(
                results=[sink_pb2.SinkResponse.Result(id=i, status=sink_pb2.SUCCESS) for i in ids]
            ).SerializeToString()
            flag = 1 if stream.behaviour == "compressed" else 0
            eot = sink_pb2.SinkResponse(status=sink_pb2.TransmissionStatus(eot=True))
            conn.send_data(sid, _frame(results, flag) + _frame(eot.SerializeToString()))
        return True
