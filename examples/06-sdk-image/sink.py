"""A sink packaged on the udsink SDK image: it prints each message's key and size, and
acknowledges it. The image is the three lines of the Dockerfile next to this file."""

from collections.abc import Iterator

from sink_runtime import Datum, Response, Responses, serve


def print_sink(datums: Iterator[Datum]) -> Responses:
    responses = Responses()
    for d in datums:
        print(f"{d.id} key={'/'.join(d.keys) or '-'} bytes={len(d.value)}", flush=True)
        responses.append(Response.ok(d.id))
    return responses


if __name__ == "__main__":
    serve(print_sink)
