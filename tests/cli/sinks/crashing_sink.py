"""A test sink that dies mid-run: it acknowledges datums until it has seen CRASH_AFTER of
them, then says why on stderr and exits with code 3 without answering the batch in hand.

`<RECORD_DIR>/udsink.answered` gets the id of every datum it answered OK, one per line: all
that may be committed. `<RECORD_DIR>/udsink.pid` gets this process's id.
"""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

from sink_runtime import Datum, Response, Responses, serve
from sink_runtime.config import constants

CRASH_EXIT_CODE = 3
LIMIT = int(os.environ["CRASH_AFTER"])
RECORD_DIR = Path(os.environ["RECORD_DIR"])
ANSWERED = RECORD_DIR / f"{constants.CONTAINER_UDSINK}.answered"
PID_FILE = RECORD_DIR / f"{constants.CONTAINER_UDSINK}.pid"
seen = 0


def answer_until_crash(datums: Iterator[Datum]) -> Responses:
    global seen
    batch = list(datums)
    seen += len(batch)
    if seen > LIMIT:
        print(f"crashing_sink: giving up after {LIMIT} datums (on purpose)", file=sys.stderr)
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
    with open(ANSWERED, "a", encoding="utf-8") as out:
        out.write("".join(d.id + "\n" for d in batch))
    return Responses.of(Response.ok(d.id) for d in batch)


if __name__ == "__main__":
    (RECORD_DIR / f"{constants.CONTAINER_UDSINK}.pid").write_text(
        str(os.getpid()), encoding="utf-8"
    )
    serve(answer_until_crash)
