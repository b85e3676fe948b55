"""Rebalances with records in flight: members that join and leave a group, each a KafkaSource
and a Forwarder in this process over a slow sink, never commit a record no sink handled.

A monitor polls the group's committed offsets from the broker every 50 ms and compares each
with what the sinks had answered before the poll; at the end every record must have been
handled. With the eager protocol (librdkafka's default assignors) a scale-up revokes every
partition of every member and most come straight back to the same member (where the old
rules lost records); cooperative-sticky moves only the partitions that change owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from sink_runtime.config import KafkaSourceConfig
from sink_runtime.dataplane.forwarder import Forwarder, Sinks
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import AllSucceeded
from sink_runtime.dataplane.sources.kafka import KafkaSource
from sink_runtime.types import Datum, Response
from tests.support.kafka_broker import KafkaBroker

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

PARTITIONS = 6
PER_PARTITION = 1000
BATCH = 100
PER_MESSAGE_S = 0.01  # a 100-record batch takes a second: rebalances find batches in flight
POLL_S = 0.05


class SlowSink:
    """A correct sink that takes `PER_MESSAGE_S` per message and records what it answered."""

    name = "primary"

    def __init__(self, handled: set[str]) -> None:
        self.handled = handled
        self.received = 0

    async def start(self) -> None:
        pass

    async def write(self, datums: Sequence[Datum]) -> Sequence[Response]:
        await asyncio.sleep(len(datums) * PER_MESSAGE_S)
        ids = [d.id for d in datums]
        self.handled.update(ids)
        self.received += len(ids)
        return AllSucceeded(ids)

    def is_ready(self) -> bool:
        return True

    async def reset(self) -> None:
        pass

    async def close(self) -> None:
        pass


@dataclass
class Member:
    source: KafkaSource
    forwarder: Forwarder
    sink: SlowSink
    metrics: Metrics
    task: asyncio.Task[None]


@asynccontextmanager
async def member(config: KafkaSourceConfig, handled: set[str]) -> AsyncIterator[Member]:
    metrics = Metrics()
    source = KafkaSource(config, metrics=metrics)
    sink = SlowSink(handled)
    fwd = Forwarder(source, Sinks(sink), metrics=metrics, batch_size=BATCH, batch_timeout_s=0.2)
    await source.start()
    task = asyncio.create_task(fwd.run())
    m = Member(source, fwd, sink, metrics, task)
    try:
        yield m
    finally:
        fwd.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        await source.close()


@dataclass
class Monitor:
    """Polls the group's committed offsets; keeps every commit that covered an unhandled id."""

    broker: KafkaBroker
    group: str
    topic: str
    handled: set[str]  # every id a sink answered
    violations: list[str] = field(default_factory=list)
    polls: int = 0
    last: dict[int, int] = field(default_factory=dict)

    async def run(self) -> None:
        while True:
            committed = await asyncio.to_thread(self.broker.committed, self.group, self.topic)
            seen = set(self.handled)  # after the poll: a commit follows its handling
            self.polls += 1
            self.last = committed
            for p, upto in committed.items():
                missing = [o for o in range(upto) if f"{self.topic}:{p}:{o}" not in seen]
                if missing:
                    self.violations.append(
                        f"poll {self.polls}: {self.topic}[{p}] committed {upto} with "
                        f"{len(missing)} offsets never handled (first {missing[:3]})"
                    )
            await asyncio.sleep(POLL_S)


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f}s: {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("assignor", ["range,roundrobin", "cooperative-sticky"])
async def test_scale_up_and_down_never_commits_an_unhandled_record(
    kafka_broker: KafkaBroker, assignor: str
) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("rebalance"), PARTITIONS)
    total = PARTITIONS * PER_PARTITION
    kafka_broker.produce(
        topic,
        [{"value": str(i).encode(), "partition": i % PARTITIONS} for i in range(total)],
        timeout_s=60,
    )
    group = f"g-{uuid.uuid4().hex[:10]}"
    config = KafkaSourceConfig(
        brokers=[kafka_broker.bootstrap],
        topics=[topic],
        consumer_group=group,
        config={
            "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "500",
            "partition.assignment.strategy": assignor,
        },
    )
    handled: set[str] = set()
    monitor = Monitor(kafka_broker, group, topic, handled)
    watching = asyncio.create_task(monitor.run())
    try:
        async with member(config, handled) as a, contextlib.AsyncExitStack() as stack:
            b = await stack.enter_async_context(member(config, handled))
            await until(lambda: len(handled) >= 0.3 * total, 120, "30% handled")
            c = await stack.enter_async_context(member(config, handled))
            await until(lambda: len(handled) >= 0.65 * total, 120, "65% handled")
            b.forwarder.stop()
            await asyncio.wait_for(b.task, 30)
            await b.source.close()
            await until(lambda: sum(monitor.last.values()) == total, 180, "everything committed")
            members = (a, b, c)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    assert not monitor.violations, "\n".join(monitor.violations[:20])
    never = PARTITIONS * PER_PARTITION - len(handled)
    assert never == 0, f"{never} records committed and never handled"
    received = sum(m.sink.received for m in members)
    acked = sum(int(m.metrics.value("udsink_acked_total")) for m in members)
    assert acked <= received, f"{acked} messages acknowledged, {received} handled by the sinks"
