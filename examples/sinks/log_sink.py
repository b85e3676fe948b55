"""The smallest useful sink: log every datum and acknowledge it.

Run it locally: `UDSINK_SOCKET_PATH=/tmp/sink.sock python examples/sinks/log_sink.py`.
In a pod, Numaflow or udsink sets the paths (see docs/sdk.md).
"""

import logging
from collections.abc import Iterator

from sink_runtime import Datum, Response, Responses, serve

log = logging.getLogger("log_sink")


def log_sink(datums: Iterator[Datum]) -> Responses:
    responses = Responses()
    for d in datums:
        log.info("datum %s keys=%s value=%r", d.id, list(d.keys), d.value[:100])
        responses.append(Response.ok(d.id))
    return responses


if __name__ == "__main__":
    serve(log_sink)
