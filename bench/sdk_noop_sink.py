"""A no-op sink served by udsink's SDK, for bench/sdk_server.py (sync or async handler).

Usage: python bench/sdk_noop_sink.py sync|async   (paths from UDSINK_SOCKET_PATH etc.)
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator

from sink_runtime import Datum, Response, Responses, serve


def sync_sink(datums: Iterator[Datum]) -> Responses:
    return Responses.of([Response.ok(d.id) for d in datums])


async def async_sink(datums: AsyncIterator[Datum]) -> Responses:
    return Responses.of([Response.ok(d.id) async for d in datums])


if __name__ == "__main__":
    serve(async_sink if sys.argv[1:] == ["async"] else sync_sink, log_level="WARNING")
