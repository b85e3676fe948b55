"""KafkaSink against a real broker: keys and headers as written, outcomes, round trips.

What the sink wrote is read back with a plain consumer (or our KafkaSource for the round
trip), so these tests check the records on the broker, not the sink's intentions.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from sink_runtime.config import KafkaSinkConfig, KafkaSourceConfig, KeyHeadersConfig
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import SinkError
from sink_runtime.dataplane.sinks.kafka import KafkaSink
from sink_runtime.dataplane.sources.kafka import KafkaSource
from sink_runtime.types import Datum, Status
from tests.support.kafka_broker import KafkaBroker, read_at_least

pytestmark = pytest.mark.kafka


def sink_config(broker: KafkaBroker, topic: str, **kw: Any) -> KafkaSinkConfig:
    return KafkaSinkConfig(brokers=[broker.bootstrap], topic=topic, **kw)


@asynccontextmanager
async def started(config: KafkaSinkConfig, **kw: Any) -> AsyncIterator[KafkaSink]:
    sink = KafkaSink(config, **kw)
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


async def test_split_keys_become_record_key_and_headers(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("split"), 1)
    config = sink_config(
        kafka_broker,
        topic,
        headers=KeyHeadersConfig(keys="split", static={"x-team": "payments", "trace": "static"}),
    )
    datums = [
        Datum(
            "in:0:7",
            b"v0",
            keys=("a", "b:c"),
            headers={"trace": "t0", "__key_len": "9", "__key_5": "stale"},
        ),
        Datum("in:0:8", b"v1"),
    ]
    async with started(config, name="primary") as sink:
        assert sink.is_ready()
        responses = await sink.write(datums)
    assert [(r.id, r.status) for r in responses] == [
        ("in:0:7", Status.SUCCESS),
        ("in:0:8", Status.SUCCESS),
    ]
    r0, r1 = kafka_broker.consume(topic, 2)
    assert r0.key == b"a:b:c"
    assert r0.value == b"v0"
    assert dict(r0.headers) == {
        "trace": b"static",  # static wins over the message's own header
        "x-team": b"payments",
        "__key_len": b"2",  # key headers win; the stale __key_5 is gone
        "__key_0": b"a",
        "__key_1": b"b:c",
    }
    assert r1.key is None  # no keys, no record key
    assert dict(r1.headers) == {"x-team": b"payments", "trace": b"static", "__key_len": b"0"}


async def test_single_keys_header_custom_separator_and_name(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("single"), 1)
    config = sink_config(
        kafka_broker,
        topic,
        key_separator="/",
        headers=KeyHeadersConfig(keys="single", keys_header="x-keys", propagate=False),
    )
    async with started(config) as sink:
        await sink.write([Datum("i", b"v", keys=("a/b", "ü", ""), headers={"dropped": "1"})])
    (record,) = kafka_broker.consume(topic, 1)
    assert record.key == "a/b/ü/".encode()
    assert record.header_names() == ["x-keys"]
    assert json.loads(record.header("x-keys") or b"") == ["a/b", "ü", ""]


async def test_no_key_headers_and_no_record_key(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("none"), 1)
    config = sink_config(kafka_broker, topic, set_key=False, headers=KeyHeadersConfig(keys="none"))
    async with started(config) as sink:
        await sink.write([Datum("i", b"v", keys=("a",), headers={"h": "1"})])
    (record,) = kafka_broker.consume(topic, 1)
    assert record.key is None
    assert record.headers == [("h", b"1")]


async def test_round_trip_keeps_multipart_keys_and_partition_order(
    kafka_broker: KafkaBroker,
) -> None:
    key_sets = [("a", "b"), ("a:b",), ("a", "", "b"), ("ключ", "🔑"), (), ("x:y", "z")]
    sent = [
        Datum(
            f"src:0:{i}", f"{i}".encode(), keys=key_sets[i % len(key_sets)], headers={"n": str(i)}
        )
        for i in range(60)
    ]
    for layout in ("split", "single"):
        out = kafka_broker.create_topic(kafka_broker.unique_topic(f"rt-{layout}"), 3)
        config = sink_config(kafka_broker, out, headers=KeyHeadersConfig(keys=layout))
        async with started(config) as sink:
            for start in range(0, len(sent), 20):
                responses = await sink.write(sent[start : start + 20])
                assert all(r.status is Status.SUCCESS for r in responses)
        source = KafkaSource(
            KafkaSourceConfig(
                brokers=[kafka_broker.bootstrap],
                topics=[out],
                consumer_group=f"g-{uuid.uuid4().hex}",
            ),
            metrics=Metrics(),
        )
        await source.start()
        try:
            batches = await read_at_least(source, len(sent))
        finally:
            await source.close()
        got = [d for b in batches for d in b.datums]
        by_value = {d.value: d for d in got}
        assert len(got) == len(sent)
        for d in sent:
            back = by_value[d.value]
            assert back.keys == d.keys, layout
            assert back.headers["n"] == d.headers["n"]
        # Same record key -> same partition, and each partition holds its datums in write order.
        partition_of: dict[tuple[str, ...], set[int]] = {}
        for d in got:
            partition_of.setdefault(d.keys, set()).add(batches_partition(batches, d.id))
        assert all(len(p) == 1 for keys, p in partition_of.items() if keys)
        for p in range(3):
            values = [int(d.value) for d in got if batches_partition(batches, d.id) == p]
            assert values == sorted(values)


def batches_partition(batches: list[Any], datum_id: str) -> int:
    for b in batches:
        if any(d.id == datum_id for d in b.datums):
            return int(datum_id.rsplit(":", 2)[1])
    raise KeyError(datum_id)


async def test_oversized_message_fails_alone(kafka_broker: KafkaBroker) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("big"), 1)
    big = b"x" * 2_000_000
    datums = [Datum("s:0:1", b"small"), Datum("s:0:2", big), Datum("s:0:3", b"small too")]

    # Refused by librdkafka before sending (its message.max.bytes is 1 MB by default).
    async with started(sink_config(kafka_broker, topic)) as sink:
        ok1, too_big, ok2 = await sink.write(datums)
    assert ok1.status is Status.SUCCESS and ok2.status is Status.SUCCESS
    assert too_big.status is Status.FAILURE
    assert too_big.id == "s:0:2"
    assert too_big.err.startswith(f"kafka topic {topic}: MSG_SIZE_TOO_LARGE: ")
    assert "Message size too large" in too_big.err

    # Refused by the broker (the client allows it, the topic's limit does not).
    config = sink_config(kafka_broker, topic, config={"message.max.bytes": "5000000"})
    async with started(config) as sink:
        ok1, too_big, ok2 = await sink.write(datums)
    assert (ok1.status, too_big.status, ok2.status) == (
        Status.SUCCESS,
        Status.FAILURE,
        Status.SUCCESS,
    )
    assert too_big.err == f"kafka topic {topic}: MSG_SIZE_TOO_LARGE: Broker: Message size too large"
    assert [r.value for r in kafka_broker.consume(topic, 4)] == [b"small", b"small too"] * 2


async def test_broker_down_fails_with_reason_then_recovers(
    broker_restored: KafkaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    broker = broker_restored
    topic = broker.create_topic(broker.unique_topic("sinkdown"), 1)
    caplog.set_level(logging.WARNING, logger="sink_runtime.dataplane.sinks.kafka")
    broker.stop()
    config = sink_config(broker, topic, config={"reconnect.backoff.max.ms": "500"})
    async with started(config, name="fallback", delivery_timeout_s=2) as sink:
        assert not sink.is_ready()
        assert f"kafka sink fallback: cannot reach brokers {broker.bootstrap}" in caplog.text
        (failed,) = await sink.write([Datum("d:0:1", b"lost?")])
        assert failed.status is Status.FAILURE
        assert failed.err.startswith(f"kafka topic {topic}: _MSG_TIMED_OUT: ")

        broker.start()
        (ok,) = await sink.write([Datum("d:0:1", b"delivered")])
        assert ok.status is Status.SUCCESS
        assert sink.is_ready()
    assert [r.value for r in broker.consume(topic, 1)] == [b"delivered"]


async def test_write_before_start_is_a_sink_error(kafka_broker: KafkaBroker) -> None:
    sink = KafkaSink(sink_config(kafka_broker, "never"), name="serve")
    with pytest.raises(SinkError, match="kafka sink serve: write\\(\\) before start\\(\\)"):
        await sink.write([Datum("i", b"v")])


async def test_owned_config_key_is_refused_at_start(kafka_broker: KafkaBroker) -> None:
    sink = KafkaSink(sink_config(kafka_broker, "t", config={"acks": "1"}), name="on_success")
    with pytest.raises(ValueError, match=r"onSuccess\.config: librdkafka key 'acks' is set by"):
        await sink.start()
