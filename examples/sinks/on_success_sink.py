"""A sink that persists each datum and sends a follow-up message to the on-success sink.

`Response.on_success(id, message)` means "persisted, and send this downstream". The message
here carries the datum's keys, value and headers plus headers saying what happened: headers
on the on-success message are udsink's add-headers API (`Message.add_headers`); Numaflow
ignores them, udsink's data plane writes them (for example as Kafka record headers). Without a
message, `Response.on_success(id)` sends the original datum on.
"""

from collections.abc import Iterator

from sink_runtime import Datum, Message, Response, Responses, serve

STORE: dict[str, bytes] = {}  # stands in for a real database


def on_success_sink(datums: Iterator[Datum]) -> Responses:
    responses = Responses()
    for d in datums:
        STORE[d.id] = d.value
        follow_up = Message(d.value, keys=d.keys).add_headers(
            {**d.headers, "x-stored-by": "on-success-example", "x-source-id": d.id}
        )
        responses.append(Response.on_success(d.id, follow_up))
    return responses


if __name__ == "__main__":
    serve(on_success_sink)
