"""The generator source: synthetic messages at a given rate, for demos, load tests, local runs.

Datum ids look like Kafka positions, `generator:<partition>:<offset>`, so sinks see the same id
shape they will see in production. A key always maps to the same partition, like Kafka's
partitioner, so per-key order can be observed. The source remembers what was acknowledged
(`committed`: partition -> next offset), which is what a test or `udsink run` reports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sink_runtime.config import GeneratorSourceConfig
from sink_runtime.dataplane.protocols import SourceBatch
from sink_runtime.types import EPOCH, NO_HEADERS, Datum, trusted_datum

ID_PREFIX = "generator"


class GeneratorSource:
    def __init__(
        self,
        config: GeneratorSourceConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._clock = clock
        self._produced = 0
        self._next_offset = [0] * config.partitions
        self._keys: list[tuple[str, ...]] = [(f"key-{i}",) for i in range(config.key_count)]
        self._filler = bytes(
            b"abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(config.value_size)
        )
        self._started_at: float | None = None
        self._closed = False
        # What was acknowledged: partition -> next offset (highest acked offset + 1).
        self.committed: dict[int, int] = {}
        self.acked = 0

    @property
    def produced(self) -> int:
        return self._produced

    async def start(self) -> None:
        self._started_at = self._clock()

    def _remaining(self) -> int | None:
        if self.config.count == 0:
            return None
        return self.config.count - self._produced

    def _allowed_now(self) -> int:
        """How many more messages the rate allows at this moment."""
        if self.config.rate == 0:
            return 1 << 62
        started = self._started_at if self._started_at is not None else self._clock()
        budget = int((self._clock() - started) * self.config.rate) + 1
        return budget - self._produced

    async def read(self, max_messages: int, timeout_s: float) -> SourceBatch:
        deadline = self._clock() + timeout_s
        while True:
            remaining = self._remaining()
            if self._closed or remaining == 0:
                return SourceBatch(datums=[])
            want = max_messages if remaining is None else min(max_messages, remaining)
            n = min(want, self._allowed_now())
            now = self._clock()
            if n >= want or (n > 0 and now >= deadline):
                return self._make(n)
            if now >= deadline:
                return SourceBatch(datums=[])
            # Sleep until the rate allows the whole batch, or the read times out.
            started = self._started_at if self._started_at is not None else now
            full_at = started + (self._produced + want) / self.config.rate
            await asyncio.sleep(max(0.0, min(full_at, deadline) - now))

    def _make(self, n: int) -> SourceBatch:
        event_time = datetime.now(UTC)
        partitions = self.config.partitions
        key_count = self.config.key_count
        filler = self._filler
        size = len(filler)
        datums: list[Datum] = []
        upto: dict[int, int] = {}
        offsets = self._next_offset
        make = trusted_datum
        for seq in range(self._produced, self._produced + n):
            if key_count:
                k = seq % key_count
                keys = self._keys[k]
                partition = k % partitions
            else:
                keys = ()
                partition = seq % partitions
            offset = offsets[partition]
            offsets[partition] = offset + 1
            upto[partition] = offset + 1
            did = f"{ID_PREFIX}:{partition}:{offset}"
            stamp = str(seq).encode()
            value = (stamp + filler[len(stamp) :]) if size > len(stamp) else filler
            datums.append(make(did, value, keys, event_time, EPOCH, NO_HEADERS, None))
        self._produced += n
        return SourceBatch(datums=datums, token=upto)

    async def ack(self, batch: SourceBatch) -> int:
        upto = batch.token
        if isinstance(upto, dict):
            for partition, next_offset in upto.items():
                if next_offset > self.committed.get(partition, 0):
                    self.committed[partition] = next_offset
        self.acked += len(batch.datums)
        return len(batch.datums)

    async def still_owned(self, datums: list[Datum], batch: SourceBatch) -> list[Datum]:
        return datums

    @property
    def exhausted(self) -> bool:
        remaining = self._remaining()
        return remaining is not None and remaining <= 0

    def is_ready(self) -> bool:
        return self._started_at is not None and not self._closed

    async def close(self) -> None:
        self._closed = True
