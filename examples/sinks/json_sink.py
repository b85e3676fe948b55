"""A sink that dead-letters what it cannot parse: JSON values go on, the rest to the fallback.

`Response.on_success(id)` without a message sends the datum itself to the on-success sink;
`Response.fallback(id, reason)` hands it to the fallback sink (a dead-letter topic) at once,
with no retry, and the reason travels as the fallback record's error header.
"""

import json
from collections.abc import Iterator

from sink_runtime import Datum, Response, Responses, serve


def json_sink(datums: Iterator[Datum]) -> Responses:
    responses = Responses()
    for d in datums:
        try:
            json.loads(d.value)
        except ValueError as err:
            responses.append(Response.fallback(d.id, f"not JSON: {err}"))
            continue
        responses.append(Response.on_success(d.id))
    return responses


if __name__ == "__main__":
    serve(json_sink)
