"""A test sink that runs but never writes its server-info file: its setup() never returns.

`<RECORD_DIR>/udsink.pid` gets this process's id, so a test can check it was stopped.
"""

import asyncio
import os
from pathlib import Path

from sink_runtime import DatumIterator, Response, Responses, Sinker, serve
from sink_runtime.config import constants


class StuckSink(Sinker):
    async def setup(self) -> None:
        await asyncio.sleep(3600)  # waits on something that never answers

    def handler(self, datums: DatumIterator) -> Responses:
        return Responses.of(Response.ok(d.id) for d in datums)


if __name__ == "__main__":
    (Path(os.environ["RECORD_DIR"]) / f"{constants.CONTAINER_UDSINK}.pid").write_text(
        str(os.getpid()), encoding="utf-8"
    )
    serve(StuckSink())
