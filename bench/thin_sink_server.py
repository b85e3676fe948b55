"""The thinnest sink.v1 server we could write in Python: the ceiling for bench/sdk_server.py.

No SDK, no Datum, no validation: read the handshake, collect the ids of a batch until EOT,
answer SUCCESS for each in one message, then the EOT message. Any real sink server does at
least this much per datum, so its throughput over sink.v1 is bounded by this one's.

Usage: python bench/thin_sink_server.py SOCKET_PATH SERVER_INFO_PATH
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import grpc

from sink_runtime.proto import sink_pb2, sink_pb2_grpc

EOF_MARK: object = grpc.aio.EOF  # type: ignore[attr-defined]
HANDSHAKE = sink_pb2.SinkResponse(handshake=sink_pb2.Handshake(sot=True))
EOT = sink_pb2.SinkResponse(status=sink_pb2.TransmissionStatus(eot=True))
Result = sink_pb2.SinkResponse.Result


class ThinSink(sink_pb2_grpc.SinkServicer):
    async def SinkFn(self, request_iterator: Any, context: Any) -> None:
        read, write = context.read, context.write
        await read()  # the handshake
        await write(HANDSHAKE)
        while True:
            ids = []
            while True:
                msg = await read()
                if msg is EOF_MARK:
                    return
                if msg.status.eot:
                    break
                ids.append(msg.request.id)
            await write(sink_pb2.SinkResponse(results=[Result(id=i) for i in ids]))
            await write(EOT)

    async def IsReady(self, request: Any, context: Any) -> sink_pb2.ReadyResponse:
        return sink_pb2.ReadyResponse(ready=True)


def write_info(path: str) -> None:
    info: dict[str, object] = {"protocol": "uds", "language": "python", "version": "0"}
    info |= {"minimum_numaflow_version": "1.4.0-z", "metadata": {}}
    Path(path).write_text(json.dumps(info) + "U+005C__END__")


async def main(socket_path: str, info_path: str) -> None:
    server = grpc.aio.server()
    sink_pb2_grpc.add_SinkServicer_to_server(ThinSink(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"unix:{socket_path}")
    await server.start()
    write_info(info_path)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)
    os.unlink(info_path)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
