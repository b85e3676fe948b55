"""The blackhole sink: accepts everything and keeps nothing.

For benchmarks (the cost of the data plane alone) and for runs where only the metrics matter.
"""

from __future__ import annotations

from collections.abc import Sequence

from sink_runtime.dataplane.protocols import AllSucceeded
from sink_runtime.types import Datum, Response


class BlackholeSink:
    def __init__(self, *, name: str = "blackhole") -> None:
        self.name = name
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def write(self, datums: Sequence[Datum]) -> Sequence[Response]:
        return AllSucceeded([d.id for d in datums])

    def is_ready(self) -> bool:
        return self._started

    async def reset(self) -> None:
        """Nothing here outlives a write."""

    async def close(self) -> None:
        self._started = False
