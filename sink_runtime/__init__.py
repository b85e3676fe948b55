"""udsink's sink SDK: write a sink, serve it, and it runs under udsink or Numaflow.

    from collections.abc import Iterator
    from sink_runtime import Datum, Response, Responses, serve

    def sink(datums: Iterator[Datum]) -> Responses:
        return Responses.of(Response.ok(d.id) for d in datums)

    serve(sink)

See docs/sdk.md for handler forms (functions or Sinker classes, sync or async), statuses,
setup/close hooks, error isolation and the environment a sink runs in.
"""

from sink_runtime.handler import DatumIterator, Sinker, SinkFunction, SinkHandler, isolate_errors
from sink_runtime.server import SinkServer, serve, serve_async
from sink_runtime.types import Datum, Message, Metadata, Response, Responses, Status

__all__ = [
    "Datum",
    "DatumIterator",
    "Message",
    "Metadata",
    "Response",
    "Responses",
    "SinkFunction",
    "SinkHandler",
    "SinkServer",
    "Sinker",
    "Status",
    "isolate_errors",
    "serve",
    "serve_async",
]
