"""A no-op sink served by pynumaflow (sync or async server), for bench/sdk_server.py.

Runs with the python of the pynumaflow venv (tests/support/pynumaflow_env.py), never with
udsink's: the two sink.v1 stubs cannot share one process.
Usage: python bench/pynumaflow_sink_server.py sync|async SOCKET_PATH SERVER_INFO_PATH
"""

import sys
from collections.abc import AsyncIterable, Iterator

from pynumaflow.sinker import Datum, Response, Responses, SinkAsyncServer, SinkServer


def sync_sink(datums: Iterator[Datum]) -> Responses:
    out = Responses()
    for d in datums:
        out.append(Response.as_success(d.id))
    return out


async def async_sink(datums: AsyncIterable[Datum]) -> Responses:
    out = Responses()
    async for d in datums:
        out.append(Response.as_success(d.id))
    return out


if __name__ == "__main__":
    mode, sock, info = sys.argv[1:4]
    if mode == "async":
        SinkAsyncServer(async_sink, sock_path=sock, server_info_file=info).start()
    else:
        SinkServer(sync_sink, sock_path=sock, server_info_file=info).start()
