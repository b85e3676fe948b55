"""The log sink: one log line per message (id, keys, headers, value preview); always SUCCESS.

For local runs and for watching what a pipeline produces (as an on-success or serve sink too).
Lines go to this module's logger, so they share the data plane's log format.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sink_runtime.config import LogSinkConfig
from sink_runtime.types import Datum, Response

logger = logging.getLogger(__name__)


def describe(datum: Datum, preview_bytes: int) -> str:
    """The line logged for one datum; the value is cut to `preview_bytes`."""
    value = datum.value[:preview_bytes]
    cut = "..." if len(datum.value) > preview_bytes else ""
    preview = value.decode("utf-8", errors="backslashreplace")
    return (
        f"id={datum.id} keys={list(datum.keys)} headers={dict(datum.headers)} "
        f"value={preview!r}{cut} ({len(datum.value)} bytes)"
    )


class LogSink:
    def __init__(self, config: LogSinkConfig | None = None, *, name: str = "log") -> None:
        self.name = name
        self.preview_bytes = (config or LogSinkConfig()).value_preview_bytes
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def write(self, datums: Sequence[Datum]) -> Sequence[Response]:
        preview = self.preview_bytes
        for d in datums:
            logger.info("[%s] %s", self.name, describe(d, preview))
        return [Response.ok(d.id) for d in datums]

    def is_ready(self) -> bool:
        return self._started

    async def reset(self) -> None:
        """Nothing here outlives a write."""

    async def close(self) -> None:
        self._started = False
