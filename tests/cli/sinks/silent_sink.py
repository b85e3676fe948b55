"""A test sink that runs but never writes its server-info file: its setup() never returns.

`<RECORD_DIR>/udsink.pid` gets this process's id first thing, before the SDK's imports (which
take seconds on a loaded machine, longer than the test's start-up timeout), so a test can
always check it was stopped.
"""

import os
from pathlib import Path

(Path(os.environ["RECORD_DIR"]) / "udsink.pid").write_text(str(os.getpid()), encoding="utf-8")

import asyncio  # noqa: E402

from sink_runtime import DatumIterator, Response, Responses, Sinker, serve  # noqa: E402


class StuckSink(Sinker):
    async def setup(self) -> None:
        await asyncio.sleep(3600)  # waits on something that never answers

    def handler(self, datums: DatumIterator) -> Responses:
        return Responses.of(Response.ok(d.id) for d in datums)


if __name__ == "__main__":
    serve(StuckSink())
