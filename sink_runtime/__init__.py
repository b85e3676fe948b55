"""udsink's sink SDK: write a sink, serve it, and it runs under udsink or Numaflow.

    from collections.abc import Iterator
    from sink_runtime import Datum, Response, Responses, serve

    def sink(datums: Iterator[Datum]) -> Responses:
        return Responses.of(Response.ok(d.id) for d in datums)

    serve(sink)

See docs/sdk.md for handler forms (functions or Sinker classes, sync or async), statuses,
setup/close hooks, error isolation and the environment a sink runs in; `sink_runtime.testing`
is the kit for a sink's tests (docs/sdk.md, "Testing your sink").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sink_runtime.types import Datum, Message, Metadata, Response, Responses, Status

if TYPE_CHECKING:
    from sink_runtime.handler import (
        DatumIterator,
        Sinker,
        SinkFunction,
        SinkHandler,
        isolate_errors,
    )
    from sink_runtime.server import SinkServer, serve, serve_async

# The handler and server modules load grpc; they are imported on first use, so importing
# `sink_runtime.config` (all the operator needs from the runtime) does not pay for it.
_LAZY = {
    "DatumIterator": "sink_runtime.handler",
    "Sinker": "sink_runtime.handler",
    "SinkFunction": "sink_runtime.handler",
    "SinkHandler": "sink_runtime.handler",
    "isolate_errors": "sink_runtime.handler",
    "SinkServer": "sink_runtime.server",
    "serve": "sink_runtime.server",
    "serve_async": "sink_runtime.server",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sink_runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
