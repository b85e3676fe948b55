"""The whole data plane as the container runs it: Kafka -> user-defined sink -> commit.

`python -m sink_runtime.dataplane --config FILE` runs in a subprocess against the real broker;
the user's sink is our SDK server (real gRPC over a Unix socket) in the test process. What is
asserted comes from outside the data plane: what the sink received, the group's committed
offsets as the broker reports them, and the records in the fallback topic.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from sink_runtime.config import (
    KafkaSinkConfig,
    KafkaSourceConfig,
)
from sink_runtime.types import Datum, Response
from tests.support.dataplane_process import (
    WAIT_S,
    kafka_to_sink,
    start_data_plane,
    wait_committed,
)
from tests.support.kafka_broker import KafkaBroker
from tests.support.recording_sink import Answer, RecordingSink, SdkSink, ok

pytestmark = pytest.mark.kafka


@pytest.fixture
def user_sink(sdk_sink: Any) -> Any:
    """Start an SDK sink whose per-datum answers come from `answer`."""

    async def start(answer: Answer = ok) -> SdkSink:
        sink: SdkSink = await sdk_sink(RecordingSink(answer))
        return sink

    return start


def produce(broker: KafkaBroker, topic: str, count: int) -> list[str]:
    """`count` keyed records (multi-part keys in split key headers); their datum ids."""
    records = [
        {
            "value": f"value-{i}".encode(),
            "key": f"k{i % 5}".encode(),
            "headers": [
                ("__key_len", b"2"),
                ("__key_0", f"k{i % 5}".encode()),
                ("__key_1", f"part:{i}".encode()),
                ("n", str(i).encode()),
            ],
        }
        for i in range(count)
    ]
    return [f"{topic}:{p}:{o}" for p, o in broker.produce(topic, records)]


async def test_kafka_to_user_sink_routes_and_commits(
    kafka_broker: KafkaBroker, user_sink: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("dp-in"), partitions=2)
    dlq = kafka_broker.create_topic(kafka_broker.unique_topic("dp-dlq"), partitions=1)
    group = f"dp-{uuid.uuid4().hex[:8]}"
    ids = await asyncio.to_thread(produce, kafka_broker, topic, 300)
    fallback_ids = set(ids[::37])
    flaky_ids = set(ids[5::50])

    def answer(d: Datum, n: int) -> Response:
        if d.id in fallback_ids:
            return Response.fallback(d.id, "rejected by schema")
        if d.id in flaky_ids and n <= 2:
            return Response.failure(d.id, "deadlock, retry")
        return Response.ok(d.id)

    sink = await user_sink(answer)
    config = kafka_to_sink(
        kafka_broker,
        topic,
        group,
        sink.config(),
        fallback=KafkaSinkConfig(brokers=[kafka_broker.bootstrap], topic=dlq),
    )
    dp = start_data_plane(tmp_path, config)
    try:
        await wait_committed(kafka_broker, group, topic, dp)
    finally:
        code = await dp.stopped()
    assert code == 0, dp.log()

    rec = sink.recorder
    assert set(rec.ids) == set(ids)
    assert all(rec.count(i) == 3 for i in flaky_ids)
    by_id = {d.id: d for d in rec.datums}
    # Multi-part keys rebuilt from the key headers; the other headers kept.
    n0 = ids[0]
    assert by_id[n0].keys == ("k0", "part:0")
    assert by_id[n0].headers["n"] == "0"
    assert by_id[n0].value == b"value-0"
    # Per partition, the sink saw the offsets in order (first deliveries).
    for partition in (0, 1):
        offsets = [int(i.rsplit(":", 1)[1]) for i in rec.ids if i.split(":")[1] == str(partition)]
        first_seen = list(dict.fromkeys(offsets))
        assert first_seen == sorted(first_seen)

    moved = await asyncio.to_thread(kafka_broker.consume, dlq, len(fallback_ids))
    assert {r.header("x-udsink-source").decode() for r in moved} == fallback_ids  # type: ignore[union-attr]
    assert {r.header("x-udsink-status") for r in moved} == {b"FALLBACK"}
    assert {r.header("x-udsink-error") for r in moved} == {b"rejected by schema"}
    log = dp.log()
    assert "stopping: no new batches" in log


async def test_killed_and_restarted_data_plane_loses_nothing(
    kafka_broker: KafkaBroker, user_sink: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("dp-kill"), partitions=2)
    group = f"dp-{uuid.uuid4().hex[:8]}"
    ids = await asyncio.to_thread(produce, kafka_broker, topic, 1000)

    def slow_ok(d: Datum, n: int) -> Response:
        time.sleep(0.0005)  # about 25 ms per batch: the kill lands mid-stream
        return Response.ok(d.id)

    sink = await user_sink(slow_ok)
    # A killed member holds its partitions until its session times out: keep that short.
    source = KafkaSourceConfig(
        brokers=[kafka_broker.bootstrap],
        topics=[topic],
        consumer_group=group,
        config={"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"},
    )
    config = kafka_to_sink(kafka_broker, topic, group, sink.config(), source=source)
    first = start_data_plane(tmp_path, config)
    deadline = time.monotonic() + WAIT_S
    while len(sink.recorder.ids) < 300 and time.monotonic() < deadline:
        assert first.proc.poll() is None, first.log()
        await asyncio.sleep(0.02)
    await first.stopped(signal.SIGKILL)
    before = await asyncio.to_thread(kafka_broker.committed, group, topic)
    assert sum(before.values()) < len(ids)

    second = start_data_plane(tmp_path, config)
    try:
        await wait_committed(kafka_broker, group, topic, second)
    finally:
        assert await second.stopped() == 0, second.log()
    received = sink.recorder.ids
    assert set(received) == set(ids)  # nothing lost
    duplicates = len(received) - len(set(received))
    # Only what was in flight (read but not committed) at the kill is delivered again.
    assert duplicates <= len(ids) - sum(before.values())
