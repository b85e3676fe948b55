"""A test sink for `udsink run`: records every datum it gets, answers by a header.

It files what it sees under RECORD_DIR by the container type `udsink run` gave it, so a
primary and a fallback sink can run this same program side by side:
- `<RECORD_DIR>/<container type>.jsonl`: one JSON object per datum (`id`, `keys`, `headers`,
  `value`), appended as batches arrive;
- `<RECORD_DIR>/<container type>.pid`: this process's id, written before serving.
As the primary (`udsink`) it answers FALLBACK for a datum with the header
`x-test-answer: fallback` and OK for the others; in any other role it answers OK.
"""

import json
import os
from collections.abc import Iterator
from pathlib import Path

from sink_runtime import Datum, Response, Responses, serve
from sink_runtime.config import constants

ANSWER_HEADER = "x-test-answer"
FALLBACK_REASON = "the test asked for the fallback"
ROLE = os.environ[constants.CONTAINER_TYPE_ENV]
RECORD_DIR = Path(os.environ["RECORD_DIR"])


def answer(d: Datum) -> Response:
    if ROLE == constants.CONTAINER_UDSINK and d.headers.get(ANSWER_HEADER) == "fallback":
        return Response.fallback(d.id, FALLBACK_REASON)
    return Response.ok(d.id)


def as_record(d: Datum) -> str:
    value = d.value.decode("utf-8", "replace")
    return json.dumps(
        {"id": d.id, "keys": list(d.keys), "headers": dict(d.headers), "value": value}
    )


def record(datums: Iterator[Datum]) -> Responses:
    batch = list(datums)
    with open(RECORD_DIR / f"{ROLE}.jsonl", "a", encoding="utf-8") as out:
        out.write("".join(as_record(d) + "\n" for d in batch))
    return Responses.of(answer(d) for d in batch)


if __name__ == "__main__":
    (RECORD_DIR / f"{ROLE}.pid").write_text(str(os.getpid()), encoding="utf-8")
    serve(record)
