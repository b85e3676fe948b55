"""KafkaSource against a real broker: datums, keys, commits, redelivery, rebalance, outages.

Records are written with a plain producer and offsets are checked with the broker's own view
of the group (committed offsets), never with the source's internals.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from sink_runtime.config import KafkaSourceConfig
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.sources.kafka import LAG_REFRESH_S, KafkaSource
from tests.support.kafka_broker import KafkaBroker, read_at_least
from tests.support.waiting import until_async

pytestmark = pytest.mark.kafka

SourceFactory = Callable[..., Any]


def source_config(broker: KafkaBroker, topic: str, group: str, **kw: Any) -> KafkaSourceConfig:
    return KafkaSourceConfig(brokers=[broker.bootstrap], topics=[topic], consumer_group=group, **kw)


@asynccontextmanager
async def started(
    config: KafkaSourceConfig, metrics: Metrics | None = None
) -> AsyncIterator[KafkaSource]:
    source = KafkaSource(config, metrics=metrics or Metrics())
    await source.start()
    try:
        yield source
    finally:
        await source.close()


def group() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


async def test_records_become_datums(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("datums"), 1)
    ts = 1_700_000_000_123
    kafka_broker.produce(
        topic,
        [
            # split key headers win over the record key
            {
                "value": b"v0",
                "key": b"a:b:c",
                "headers": [
                    ("__key_len", b"2"),
                    ("__key_0", b"a:b"),
                    ("__key_1", b"c"),
                    ("trace", b"t0"),
                ],
                "timestamp": ts,
            },
            # the single layout
            {"value": b"v1", "key": b"k", "headers": [("__keys", '["x", "", "ü:"]'.encode())]},
            # no key headers: the record key is the single key
            {"value": b"v2", "key": "schlüssel".encode()},
            # no key at all; a null value; repeated and null headers; invalid UTF-8
            {
                "value": None,
                "headers": [("dup", b"1"), ("dup", b"2"), ("empty", None), ("bin", b"\xff\xfe")],
            },
        ],
    )
    async with started(source_config(kafka_broker, topic, group())) as source:
        (batch,) = await read_at_least(source, 4)
    d0, d1, d2, d3 = batch.datums
    assert [d.id for d in batch.datums] == [f"{topic}:0:{i}" for i in range(4)]

    assert d0.keys == ("a:b", "c")
    assert d0.value == b"v0"
    assert d0.event_time == datetime.fromtimestamp(ts / 1000, UTC)
    assert dict(d0.headers) == {"__key_len": "2", "__key_0": "a:b", "__key_1": "c", "trace": "t0"}

    assert d1.keys == ("x", "", "ü:")
    assert d2.keys == ("schlüssel",)
    assert d2.event_time.tzinfo is not None

    assert d3.keys == ()
    assert d3.value == b""
    assert dict(d3.headers) == {"dup": "2", "empty": "", "bin": "\ufffd\ufffd"}


async def test_keys_from_headers_off_uses_record_key(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("nohdr"), 1)
    kafka_broker.produce(
        topic, [{"value": b"v", "key": b"rk", "headers": [("__key_len", b"1"), ("__key_0", b"h")]}]
    )
    config = source_config(kafka_broker, topic, group(), keys_from_headers=False)
    async with started(config) as source:
        (batch,) = await read_at_least(source, 1)
    assert batch.datums[0].keys == ("rk",)


async def test_malformed_key_headers_fall_back_and_are_counted(
    kafka_broker: KafkaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("malformed"), 1)
    kafka_broker.produce(
        topic,
        [
            {"value": b"0", "key": b"rk0", "headers": [("__key_len", b"2"), ("__key_0", b"a")]},
            {"value": b"1", "key": b"rk1", "headers": [("__key_len", b"x")]},
            {"value": b"2", "key": b"rk2", "headers": [("__keys", b"not json")]},
            {"value": b"3", "headers": [("__key_len", b"1"), ("__key_0", b"\xc3")]},
            {"value": b"4", "key": b"ok", "headers": [("__key_len", b"1"), ("__key_0", b"k")]},
        ],
    )
    metrics = Metrics()
    caplog.set_level(logging.WARNING, logger="sink_runtime.dataplane.sources.kafka")
    async with started(source_config(kafka_broker, topic, group()), metrics) as source:
        batches = await read_at_least(source, 5)
    datums = [d for b in batches for d in b.datums]
    assert [d.keys for d in datums] == [("rk0",), ("rk1",), ("rk2",), (), ("k",)]
    assert metrics.value("udsink_malformed_key_headers_total") == 4
    text = caplog.text
    assert "malformed key headers, record key used instead" in text
    assert f"{topic}:0:0: header __key_len=2 but __key_1 is missing" in text


async def test_ack_commits_highest_plus_one_per_partition_in_order(
    kafka_broker: KafkaBroker,
) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("commit"), 3)
    per_partition = {0: 5, 1: 3, 2: 7}
    kafka_broker.produce(
        topic,
        [
            {"value": f"{p}-{i}".encode(), "partition": p}
            for p, n in per_partition.items()
            for i in range(n)
        ],
    )
    g = group()
    metrics = Metrics()
    async with started(source_config(kafka_broker, topic, g), metrics) as source:
        batches = await read_at_least(source, sum(per_partition.values()))
        assert kafka_broker.committed(g, topic) == {}
        for batch in batches:
            await source.ack(batch)
        datums = [d for b in batches for d in b.datums]
        assert kafka_broker.committed(g, topic) == per_partition
        assert source.is_ready()
        # Lag is refreshed from the broker every LAG_REFRESH_S, not at each commit.
        await until_async(
            lambda: all(
                metrics.value("udsink_consumer_lag_messages", topic=topic, partition=str(p)) == 0
                for p in per_partition
            ),
            "no lag on any partition once everything read is committed",
            within=3 * LAG_REFRESH_S,
        )

    # Order per partition is the produced order, and ids name the record's position.
    for p, n in per_partition.items():
        mine = [d for d in datums if d.id.startswith(f"{topic}:{p}:")]
        assert [d.value for d in mine] == [f"{p}-{i}".encode() for i in range(n)]
        assert [d.id for d in mine] == [f"{topic}:{p}:{i}" for i in range(n)]


async def test_a_batch_closes_at_its_byte_limit_and_keeps_every_record(
    kafka_broker: KafkaBroker,
) -> None:
    """batch.maxBytes: a batch's values stay within the limit (a larger record alone), no
    record is lost or reordered across the cut, and the commits cover exactly what was read."""
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("bytes"), 1)
    sizes = [3000] * 7 + [9000] + [3000] * 4  # the 9000-byte record is over the limit alone
    kafka_broker.produce(topic, [{"value": bytes([i]) * n} for i, n in enumerate(sizes)])
    g = group()
    source = KafkaSource(
        source_config(kafka_broker, topic, g), metrics=Metrics(), batch_max_bytes=8000
    )
    await source.start()
    try:
        batches = []
        read = 0
        async with asyncio.timeout(30):
            while read < len(sizes):
                batch = await source.read(500, 0.5)
                if batch.datums:
                    batches.append(batch)
                    read += len(batch.datums)
        for batch in batches:
            await source.ack(batch)
    finally:
        await source.close()
    values = [d.value for b in batches for d in b.datums]
    assert values == [bytes([i]) * n for i, n in enumerate(sizes)]
    for batch in batches:
        total = sum(len(d.value) for d in batch.datums)
        assert total <= 8000 or len(batch.datums) == 1, [len(d.value) for d in batch.datums]
    assert [len(b.datums) for b in batches if len(b.datums[0].value) == 9000] == [1]
    assert kafka_broker.committed(g, topic) == {0: len(sizes)}


async def test_unacked_batch_is_redelivered_to_the_next_member(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("redeliver"), 1)
    kafka_broker.produce(topic, [{"value": str(i).encode()} for i in range(10)])
    g = group()
    async with started(source_config(kafka_broker, topic, g)) as first:
        acked = await read_at_least(first, 4)
        for batch in acked:
            await first.ack(batch)
        handled = sum(len(b.datums) for b in acked)
        unacked = await read_at_least(first, 10 - handled)
        assert unacked  # read, never acked: the member goes away with it in flight
    assert kafka_broker.committed(g, topic) == {0: handled}

    async with started(source_config(kafka_broker, topic, g)) as second:
        again = await read_at_least(second, 10 - handled)
        assert [d.id for b in again for d in b.datums] == [d.id for b in unacked for d in b.datums]
        for batch in again:
            await second.ack(batch)
    assert kafka_broker.committed(g, topic) == {0: 10}


async def test_out_of_order_acks_wait_for_earlier_batches(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("order"), 1)
    kafka_broker.produce(topic, [{"value": str(i).encode()} for i in range(6)])
    g = group()
    async with started(source_config(kafka_broker, topic, g)) as source:
        first = await read_at_least(source, 3)
        handled = sum(len(b.datums) for b in first)
        second = await read_at_least(source, 6 - handled)
        for batch in second:
            await source.ack(batch)
        # The later batch is done, the earlier one is not: nothing may be committed yet.
        assert kafka_broker.committed(g, topic) == {}
        for batch in first:
            await source.ack(batch)
        assert kafka_broker.committed(g, topic) == {0: 6}


async def test_revoked_partitions_are_not_committed(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("rebalance"), 2)
    kafka_broker.produce(
        topic, [{"value": f"{p}-{i}".encode(), "partition": p} for p in (0, 1) for i in range(4)]
    )
    g = group()
    async with started(source_config(kafka_broker, topic, g)) as a:
        in_flight = await read_at_least(a, 8)
        assert a.assignment == {(topic, 0), (topic, 1)}
        seen: list[str] = []
        later = []
        async with started(source_config(kafka_broker, topic, g)) as b:
            # Both members poll until the group has rebalanced onto both of them.
            for _ in range(60):
                if a.assignment and b.assignment:
                    break
                ra, rb = await asyncio.gather(a.read(100, 0.5), b.read(100, 0.5))
                later += [(a, ra), (b, rb)]
            assert len(a.assignment) == 1
            assert len(b.assignment) == 1
            # The batch read before the rebalance is finished now: none of its partitions
            # is committed (they were revoked), so the new owners get them again.
            for batch in in_flight:
                await a.ack(batch)
            assert kafka_broker.committed(g, topic) == {}
            for owner, batch in later:
                await owner.ack(batch)
                seen += [d.id for d in batch.datums]
            more = []
            for owner in (a, b):
                more += [(owner, r) for r in await _drain(owner)]
            for owner, batch in more:
                await owner.ack(batch)
                seen += [d.id for d in batch.datums]
        assert sorted(seen) == sorted(d.id for batch in in_flight for d in batch.datums)
        assert kafka_broker.committed(g, topic) == {0: 4, 1: 4}


async def _drain(source: KafkaSource) -> list[Any]:
    """Batches read until a read comes back empty."""
    out = []
    while (batch := await source.read(100, 1.0)).datums:
        out.append(batch)
    return out


async def test_commit_failure_is_counted_and_batch_redelivered(
    kafka_broker: KafkaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("commitfail"), 1)
    kafka_broker.produce(topic, [{"value": str(i).encode()} for i in range(3)])
    g = group()
    # The smallest poll interval the broker allows (its minimum session timeout is 6 s).
    config = source_config(
        kafka_broker,
        topic,
        g,
        config={"session.timeout.ms": "6000", "max.poll.interval.ms": "6000"},
    )
    metrics = Metrics()
    caplog.set_level(logging.WARNING, logger="sink_runtime.dataplane.sources.kafka")
    async with started(config, metrics) as source:
        batches = await read_at_least(source, 3)
        # Handling takes longer than the poll interval: the member is evicted meanwhile (the
        # time itself is the fault, so it is waited out).
        await asyncio.sleep(7)
        for batch in batches:
            await source.ack(batch)  # must not raise
        assert metrics.value("udsink_commit_failures_total") == 1
        assert "commit failed (UNKNOWN_MEMBER_ID" in caplog.text
        assert kafka_broker.committed(g, topic) == {}
        # The member rejoins and gets the batch again: nothing is lost.
        again = await read_at_least(source, 3)
        assert [d.id for b in again for d in b.datums] == [d.id for b in batches for d in b.datums]
        for batch in again:
            await source.ack(batch)
    assert kafka_broker.committed(g, topic) == {0: 3}


async def test_broker_down_at_start_then_up(
    broker_restored: KafkaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    broker = broker_restored
    topic = broker.create_topic(broker.unique_topic("down"), 2)
    broker.produce(topic, [{"value": str(i).encode(), "partition": i % 2} for i in range(6)])
    g = group()
    caplog.set_level(logging.WARNING, logger="sink_runtime.dataplane.sources.kafka")
    broker.stop()
    # Reconnect attempts back off up to 10 s by default; keep the test short.
    config = source_config(broker, topic, g, config={"reconnect.backoff.max.ms": "500"})
    async with started(config) as source:
        assert not source.is_ready()
        assert (await source.read(10, 0.5)).datums == []
        assert not source.is_ready()
        assert f"cannot reach brokers {broker.bootstrap}" in caplog.text
        assert "not ready, retrying" in caplog.text

        broker.start()
        batches = await read_at_least(source, 6, timeout_s=60)
        assert source.is_ready()
        for batch in batches:
            await source.ack(batch)
    assert sorted(d.value for b in batches for d in b.datums) == [str(i).encode() for i in range(6)]
    assert broker.committed(g, topic) == {0: 3, 1: 3}
