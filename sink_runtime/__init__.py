"""udsink's sink SDK: write a sink, serve it, and it runs under udsink or Numaflow.

from sink_runtime import Datum, Response, Responses, serve

def handler(datums):
    return Responses.of(Response.ok(d.id) for d in datums)

serve(handler)
"""

from sink_runtime.types import Datum, Message, Metadata, Response, Responses, Status

__all__ = ["Datum", "Message", "Metadata", "Response", "Responses", "Status"]
