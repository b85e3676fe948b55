"""Exactly-once Kafka to Kafka (`sink.exactlyOnce`), proved from outside on the real broker.

The data plane runs as the container runs it (`python -m sink_runtime.dataplane`). What is
counted is what a reader of the output topics with `isolation.level=read_committed` sees:
every input record exactly once, in its partition's order, none missing, none twice. Each
fault is made at a moment the broker shows a transaction open with records in it (the output
partitions' last stable offset below their high watermark, read while the data plane is
frozen with SIGSTOP), so the fault always lands mid-transaction; the same fault on the same
pipeline without the option shows the duplicates exactly-once removes.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from sink_runtime.config import (
    Backoff,
    BatchConfig,
    KafkaSinkConfig,
    KafkaSourceConfig,
    ObservabilityConfig,
    RetryStrategy,
    RuntimeConfig,
)
from sink_runtime.dataplane.sinks.kafka_transaction import INSTANCE_ENV
from tests.support.dataplane_process import DataPlaneProcess, wait_committed
from tests.support.kafka_broker import KafkaBroker
from tests.support.waiting import until, until_async

pytestmark = pytest.mark.kafka

RECORDS = 1500
PARTITIONS = 3
KEYS = 17
WAIT_S = 120.0


@dataclass
class Pipeline:
    broker: KafkaBroker
    source: str
    output: str
    dlq: str
    group: str
    workdir: Path

    def config(self, *, exactly_once: bool) -> RuntimeConfig:
        # One record per produce batch: the output topic's size limit applies to a whole
        # batch, and only the large records are to be refused. A short message timeout: an
        # abort waits for the records in flight up to it (a dead broker, a refused record).
        connection: dict[str, Any] = {
            "brokers": [self.broker.bootstrap],
            "config": {"batch.num.messages": "1", "message.timeout.ms": "5000"},
        }
        return RuntimeConfig(
            name="eos",
            source=KafkaSourceConfig(
                brokers=connection["brokers"],
                topics=[self.source],
                consumer_group=self.group,
                # A short session: a killed or frozen member is out of the group soon.
                config={"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"},
            ),
            sink=KafkaSinkConfig(**connection, topic=self.output, exactly_once=exactly_once),
            fallback=KafkaSinkConfig(**connection, topic=self.dlq),
            retry_strategy=RetryStrategy(
                backoff=Backoff(interval_ms=10, cap_ms=100, jitter=0.0, steps=2),
                on_failure="fallback",
            ),
            batch=BatchConfig(size=100, timeout_ms=100),
            observability=ObservabilityConfig(metrics_port=0, metrics_host="127.0.0.1"),
            shutdown_grace_ms=10_000,
        )

    def data_plane(self, name: str, *, exactly_once: bool, instance: str = "") -> DataPlaneProcess:
        dp = DataPlaneProcess(
            self.workdir,
            self.config(exactly_once=exactly_once),
            name,
            env={INSTANCE_ENV: instance or name},
        )
        dp.start()
        return dp


@pytest.fixture
def pipeline(kafka_broker: KafkaBroker, tmp_path: Path) -> Pipeline:
    broker = kafka_broker
    source = broker.create_topic(broker.unique_topic("eos-in"), partitions=PARTITIONS)
    # The output refuses records over 2 KiB (the broker says so, inside the transaction);
    # the dead-letter topic takes them.
    output = broker.create_topic(
        broker.unique_topic("eos-out"), partitions=PARTITIONS, config={"max.message.bytes": "2048"}
    )
    dlq = broker.create_topic(broker.unique_topic("eos-dlq"), partitions=1)
    return Pipeline(broker, source, output, dlq, f"eos-{uuid.uuid4().hex[:8]}", tmp_path)


@pytest.fixture
def processes() -> Iterator[list[DataPlaneProcess]]:
    started: list[DataPlaneProcess] = []
    yield started
    for dp in started:
        if dp.proc is not None and dp.proc.poll() is None:
            dp.proc.send_signal(signal.SIGCONT)
        dp.stop()


def big(i: int) -> bool:
    """The input records too large for the output topic (each goes to the dead-letter topic)."""
    return i % 150 == 7


def produce_input(p: Pipeline) -> None:
    records = [
        {
            "value": (f"v{i}:".encode() + b"x" * (4096 if big(i) else 100)),
            "key": f"k{i % KEYS}".encode(),
            "headers": [("n", str(i).encode())],
        }
        for i in range(RECORDS)
    ]
    p.broker.produce(p.source, records)


def read_committed(broker: KafkaBroker, topic: str) -> list[tuple[int, int]]:
    """Every record of `topic` a read_committed reader sees: (partition, n), in each
    partition's order; read until the end of every partition (librdkafka's EOF event)."""
    md = broker.admin().list_topics(topic=topic, timeout=10).topics[topic]
    parts = sorted(md.partitions)
    consumer = Consumer(
        broker.client_config(
            **{
                "group.id": f"count-{uuid.uuid4().hex}",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "enable.auto.commit": False,
            }
        )
    )
    out: list[tuple[int, int]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + WAIT_S
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        while len(at_end) < len(parts):
            assert time.monotonic() < deadline, f"{topic}: no end after {WAIT_S}s ({at_end})"
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                err = msg.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF or err.retriable(), err
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                    continue
                at_end.discard(msg.partition())
                headers = dict(msg.headers() or [])
                out.append((msg.partition(), int(headers["n"])))
    finally:
        consumer.close()
    return out


def open_transaction(broker: KafkaBroker, topic: str) -> bool:
    """Whether `topic` holds records of a transaction not yet committed or aborted: a
    partition whose last stable offset is below its high watermark."""
    md = broker.admin().list_topics(topic=topic, timeout=10).topics[topic]
    offsets: dict[str, list[int]] = {}
    for isolation in ("read_uncommitted", "read_committed"):
        consumer = Consumer(
            broker.client_config(
                **{"group.id": f"wm-{uuid.uuid4().hex}", "isolation.level": isolation}
            )
        )
        try:
            offsets[isolation] = [
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in sorted(md.partitions)
            ]
        finally:
            consumer.close()
    return offsets["read_committed"] != offsets["read_uncommitted"]


def written_not_committed(p: Pipeline) -> int:
    """Records in the output topics beyond what the group committed (at-least-once)."""
    committed = sum(p.broker.committed(p.group, p.source).values())
    written = sum(p.broker.end_offsets(p.output).values()) + sum(
        p.broker.end_offsets(p.dlq).values()
    )
    return written - committed


def freeze_mid_transaction(
    dp: DataPlaneProcess, mid: Callable[[], bool], *, why: str = "a transaction open with records"
) -> None:
    """SIGSTOP `dp` at a moment `mid()` is true of the broker (tried again until it is)."""

    def frozen_mid() -> bool | None:
        assert dp.proc is not None and dp.proc.poll() is None, dp.describe()
        dp.send_signal(signal.SIGSTOP)
        if mid():
            return True
        dp.send_signal(signal.SIGCONT)
        return None

    until(frozen_mid, f"{dp.name} frozen with {why}", within=WAIT_S, details=dp.describe)


def logged(dp: DataPlaneProcess, *texts: str) -> bool | None:
    """True once the data plane's log holds one of `texts` (None until then)."""
    log = dp.log()
    return True if any(t in log for t in texts) else None


async def until_logged(dp: DataPlaneProcess, what: str, *texts: str) -> None:
    await until_async(partial(logged, dp, *texts), what, within=WAIT_S, details=dp.describe)


async def frozen_exactly_once(
    pipeline: Pipeline, processes: list[DataPlaneProcess], name: str
) -> DataPlaneProcess:
    """An exactly-once data plane on the produced input, frozen mid-transaction."""
    await asyncio.to_thread(produce_input, pipeline)
    dp = pipeline.data_plane(name, exactly_once=True)
    processes.append(dp)
    mid = partial(open_transaction, pipeline.broker, pipeline.output)
    await asyncio.to_thread(freeze_mid_transaction, dp, mid)
    return dp


def assert_exactly_once(p: Pipeline) -> None:
    """Every input record exactly once in output + dead-letter, in order per partition."""
    seen = read_committed(p.broker, p.output)
    dead = read_committed(p.broker, p.dlq)
    counts = Counter(n for _, n in seen) + Counter(n for _, n in dead)
    twice = sorted(n for n, c in counts.items() if c > 1)
    missing = sorted(set(range(RECORDS)) - set(counts))
    assert not twice and not missing, f"twice: {twice[:20]}, missing: {missing[:20]}"
    assert {n for _, n in dead} == {i for i in range(RECORDS) if big(i)}
    # A key's records come from one input partition, in order, and go to one output
    # partition: there they keep that order.
    for key in range(KEYS):
        ns = [n for _, n in seen if n % KEYS == key]
        assert ns == sorted(ns), f"key k{key} out of order"


async def run_to_the_end(p: Pipeline, dp: DataPlaneProcess) -> None:
    await wait_committed(p.broker, p.group, p.source, dp)


async def test_a_batch_and_its_dead_letters_commit_together(
    pipeline: Pipeline, processes: list[DataPlaneProcess]
) -> None:
    await asyncio.to_thread(produce_input, pipeline)
    dp = pipeline.data_plane("eos", exactly_once=True)
    processes.append(dp)
    await run_to_the_end(pipeline, dp)
    assert await dp.stopped() == 0, dp.describe()
    await asyncio.to_thread(assert_exactly_once, pipeline)
    assert "starts again" in dp.log(), "the oversized records should have aborted a transaction"


@pytest.mark.parametrize("exactly_once", [True, False], ids=["exactly-once", "at-least-once"])
async def test_sigkill_mid_transaction(
    pipeline: Pipeline, processes: list[DataPlaneProcess], exactly_once: bool
) -> None:
    await asyncio.to_thread(produce_input, pipeline)
    first = pipeline.data_plane("first", exactly_once=exactly_once, instance="one")
    processes.append(first)
    if exactly_once:
        mid = partial(open_transaction, pipeline.broker, pipeline.output)
        await asyncio.to_thread(freeze_mid_transaction, first, mid)
    else:
        mid = partial(written_not_committed, pipeline)
        await asyncio.to_thread(freeze_mid_transaction, first, mid, why="writes not committed")
        extra = await asyncio.to_thread(written_not_committed, pipeline)
    assert first.proc is not None
    first.proc.kill()
    first.proc.wait()
    # The same instance again: its producer fences the killed one's and aborts its transaction.
    second = pipeline.data_plane("second", exactly_once=exactly_once, instance="one")
    processes.append(second)
    await run_to_the_end(pipeline, second)
    assert await second.stopped() == 0, second.describe()
    if exactly_once:
        await asyncio.to_thread(assert_exactly_once, pipeline)
        return
    # Without the option the records written after the last commit are written again.
    seen = await asyncio.to_thread(read_committed, pipeline.broker, pipeline.output)
    dead = await asyncio.to_thread(read_committed, pipeline.broker, pipeline.dlq)
    counts = Counter(n for _, n in seen) + Counter(n for _, n in dead)
    assert set(counts) == set(range(RECORDS))
    assert sum(counts.values()) - RECORDS >= extra > 0


async def test_a_zombie_that_keeps_producing_is_fenced(
    pipeline: Pipeline, processes: list[DataPlaneProcess]
) -> None:
    zombie = await frozen_exactly_once(pipeline, processes, "zombie")
    heir = pipeline.data_plane("heir", exactly_once=True)
    processes.append(heir)
    # The heir takes every partition once the zombie's session expired, and commits it all
    # (its reads of the zombie's partitions start from the zombie's last committed offsets).
    await run_to_the_end(pipeline, heir)
    zombie.send_signal(signal.SIGCONT)
    # The zombie finishes its batch's writes and tries to commit them with its old
    # generation: refused, so its transaction is aborted.
    await until_logged(zombie, "the zombie's transaction aborted", "starts again", "not committed")
    assert await heir.stopped() == 0, heir.describe()
    assert await zombie.stopped() == 0, zombie.describe()
    await asyncio.to_thread(assert_exactly_once, pipeline)


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_broker_gone_mid_transaction(
    pipeline: Pipeline, processes: list[DataPlaneProcess], broker_restored: KafkaBroker, how: str
) -> None:
    dp = await frozen_exactly_once(pipeline, processes, "eos")
    await asyncio.to_thread(getattr(broker_restored, how))
    dp.send_signal(signal.SIGCONT)
    # The data plane meets the dead broker mid-transaction, then the broker comes back.
    await until_logged(
        dp, "the data plane noticing the broker is gone", "starts again", "unreachable"
    )
    await asyncio.to_thread(broker_restored.start)
    await run_to_the_end(pipeline, dp)
    assert await dp.stopped() == 0, dp.describe()
    await asyncio.to_thread(assert_exactly_once, pipeline)
