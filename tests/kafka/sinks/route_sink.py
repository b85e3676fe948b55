"""A sink for `udsink run` that sends every datum on to one of the secondary sinks.

By the datum's offset modulo 3: 0 -> FALLBACK (the fallback sink), 1 -> SERVE with the value
prefixed by `served:` (the serve sink), 2 -> ON_SUCCESS (the on-success sink gets the datum).
So one run moves records through each of the three secondary Kafka sinks.
"""

from collections.abc import Iterator

from sink_runtime import Datum, Response, Responses, serve


def answer(d: Datum) -> Response:
    offset = int(d.id.rsplit(":", 1)[1])
    match offset % 3:
        case 0:
            return Response.fallback(d.id, "routed to the fallback by the test")
        case 1:
            return Response.serve(d.id, b"served:" + d.value)
        case _:
            return Response.on_success(d.id)


def handler(datums: Iterator[Datum]) -> Responses:
    return Responses.of(answer(d) for d in datums)


if __name__ == "__main__":
    serve(handler)
