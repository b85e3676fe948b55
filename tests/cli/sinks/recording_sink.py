"""A test sink for `udsink run`: records every datum it gets, answers by a header.

It files what it sees under RECORD_DIR by the container type `udsink run` gave it, so a
primary and a fallback sink can run this same program side by side:
- `<RECORD_DIR>/<container type>.jsonl`: one JSON object per datum (`id`, `keys`, `headers`,
  `value`), appended as batches arrive;
- `<RECORD_DIR>/<container type>.pid`: this process's id, written before serving;
- `<RECORD_DIR>/<container type>.env.json`: its environment variables named `TEST_*`.
As the primary (`udsink`) it answers by the header `x-test-answer`: `fallback` -> FALLBACK,
`failure` -> FAILURE, `hang` -> it never answers (the handler sleeps); OK for the others. In
any other role it answers OK. Per batch it prints one line to stdout and one to stderr.
"""

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sink_runtime import Datum, Response, Responses, serve
from sink_runtime.config import constants

ANSWER_HEADER = "x-test-answer"
FALLBACK_REASON = "the test asked for the fallback"
ROLE = os.environ[constants.CONTAINER_TYPE_ENV]
RECORD_DIR = Path(os.environ["RECORD_DIR"])


FAILURE_REASON = "the test asked for a FAILURE"


def answer(d: Datum) -> Response:
    asked = d.headers.get(ANSWER_HEADER) if ROLE == constants.CONTAINER_UDSINK else None
    if asked == "fallback":
        return Response.fallback(d.id, FALLBACK_REASON)
    if asked == "failure":
        return Response.failure(d.id, FAILURE_REASON)
    if asked == "hang":
        time.sleep(3600)
    return Response.ok(d.id)


def as_record(d: Datum) -> str:
    value = d.value.decode("utf-8", "replace")
    return json.dumps(
        {"id": d.id, "keys": list(d.keys), "headers": dict(d.headers), "value": value}
    )


def record(datums: Iterator[Datum]) -> Responses:
    batch = list(datums)
    print(f"recording_sink stdout: batch of {len(batch)} from {batch[0].id}", flush=True)
    print(f"recording_sink stderr: batch of {len(batch)} from {batch[0].id}", file=sys.stderr)
    with open(RECORD_DIR / f"{ROLE}.jsonl", "a", encoding="utf-8") as out:
        out.write("".join(as_record(d) + "\n" for d in batch))
    return Responses.of(answer(d) for d in batch)


if __name__ == "__main__":
    test_env = {k: v for k, v in os.environ.items() if k.startswith("TEST_")}
    (RECORD_DIR / f"{ROLE}.env.json").write_text(json.dumps(test_env), encoding="utf-8")
    (RECORD_DIR / f"{ROLE}.pid").write_text(str(os.getpid()), encoding="utf-8")
    serve(record)
