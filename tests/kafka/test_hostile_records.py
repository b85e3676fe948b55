"""Records no producer should write, through the real broker and the real data plane.

One partition holds, between two plain records, every kind of record a producer can make a
broker store and deliver: CreateTimes anywhere in the int64 range (after year 9999, before
year 1, from 2**33 s on where a float loses the millisecond, negative), header names and
values and keys that are not UTF-8 (header names written byte for byte by
tests/support/kafka_raw.py: no client library writes them), empty and null keys, values and
headers, 10,000 headers on one record, malformed key headers, and a value of several MiB.

The data plane runs as its container runs it (`python -m sink_runtime.dataplane`) into an
SDK sink that refuses one of the records, so the failure policy (`fallback`, a Kafka DLQ)
routes it. Asserted from outside: every record reaches the sink as docs/concepts.md says
("Records no producer should write"), the refused one reaches the DLQ with the reasons, the
partition is committed to its end without a restart, and every commit seen on the way only
covers records the sink had already been given. A second test reads the same records
in-process with and without the C conversion and holds both to the same Datums.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from sink_runtime import codec
from sink_runtime.config import (
    Backoff,
    KafkaSinkConfig,
    KafkaSourceConfig,
    RetryStrategy,
)
from sink_runtime.config.constants import SOURCE_ERROR_HEADER
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.sources.kafka import KafkaSource
from sink_runtime.types import EPOCH, Datum, Response
from tests.support.conversion import python_only
from tests.support.dataplane_process import DataPlaneProcess, kafka_to_sink, wait_committed
from tests.support.kafka_broker import KafkaBroker, read_at_least
from tests.support.kafka_raw import RawRecord, produce_raw
from tests.support.recording_sink import RecordingSink, SdkFactory

pytestmark = pytest.mark.kafka

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
T0 = 1_700_000_000_000
HUGE = 5 * 1024 * 1024
# The topic takes what a broker may be configured to take: any CreateTime (Kafka 4 refuses
# times more than an hour ahead by default; older brokers took any), values up to 8 MiB.
TOPIC_CONFIG = {"message.timestamp.after.max.ms": str(INT64_MAX), "max.message.bytes": "8388608"}
UNCONVERTED = (
    "record not converted (ValueError: a header name is not valid UTF-8); delivered without "
    "its headers"
)
TEN_THOUSAND = [(f"h{i:05}", f"v{i}".encode()) for i in range(10_000)]
READ_TIME = None  # the expected event time of a record whose timestamp is not used


@dataclass(frozen=True)
class Hostile:
    """One record to write, and the Datum the sink must be given for it."""

    name: str
    record: Mapping[str, Any] | RawRecord
    keys: tuple[str, ...] = ()
    value: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    event_time: datetime | None = READ_TIME


def at(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def bad_names(value: bytes) -> RawRecord:
    return RawRecord(
        value=value,
        key=b"k-" + value,
        headers=[(b"ok", b"1"), (b"bad\xff\xfe", b"2"), (b"also-ok", None)],
        timestamp_ms=T0,
    )


CASES = [
    Hostile(
        "plain before", {"value": b"1st", "key": b"k", "timestamp": T0}, ("k",), b"1st", {}, at(T0)
    ),
    Hostile("CreateTime INT64_MAX", {"value": b"a", "timestamp": INT64_MAX}, (), b"a", {}, LATEST),
    Hostile("first ms after 9999", {"timestamp": 253_402_300_800_000}, event_time=LATEST),
    Hostile("last ms of 9999", {"timestamp": 253_402_300_799_999}, event_time=LATEST),
    Hostile("2**33 s + 7 ms", {"timestamp": 2**33 * 1000 + 7}, event_time=at(2**33 * 1000 + 7)),
    Hostile("before year 1", {"timestamp": -62_135_596_800_001}),
    Hostile("CreateTime -2", {"timestamp": -2}),
    Hostile("CreateTime INT64_MIN", {"timestamp": INT64_MIN}),
    Hostile(
        "header name not UTF-8, refused by the sink",
        bad_names(b"refused"),
        ("k-refused",),
        b"refused",
        {SOURCE_ERROR_HEADER: UNCONVERTED},
        at(T0),
    ),
    Hostile(
        "header name not UTF-8, accepted by the sink",
        bad_names(b"taken"),
        ("k-taken",),
        b"taken",
        {SOURCE_ERROR_HEADER: UNCONVERTED},
        at(T0),
    ),
    Hostile(
        "key and header value not UTF-8",
        {"key": b"\xff\xfek", "headers": [("h", b"\xff\x00x")], "timestamp": T0},
        ("\ufffd\ufffdk",),
        headers={"h": "\ufffd\x00x"},
        event_time=at(T0),
    ),
    Hostile(
        "empty key, value, header name and value",
        {"key": b"", "value": b"", "headers": [("", b"")], "timestamp": T0},
        ("",),
        headers={"": ""},
        event_time=at(T0),
    ),
    Hostile(
        "null key, value and header value",
        {"key": None, "value": None, "headers": [("h", None)], "timestamp": T0},
        headers={"h": ""},
        event_time=at(T0),
    ),
    Hostile("no headers at all", {"timestamp": T0}, event_time=at(T0)),
    Hostile(
        "10,000 headers",
        {"key": b"many", "headers": TEN_THOUSAND, "timestamp": T0},
        ("many",),
        headers={n: v.decode() for n, v in TEN_THOUSAND},
        event_time=at(T0),
    ),
    Hostile(
        "malformed key headers",
        {"key": b"rk", "headers": [("__key_len", b"99"), ("__key_0", b"a")], "timestamp": T0},
        ("rk",),
        headers={"__key_len": "99", "__key_0": "a"},
        event_time=at(T0),
    ),
    Hostile(
        "key header not UTF-8",
        {"key": b"rk", "headers": [("__key_len", b"1"), ("__key_0", b"\xff")], "timestamp": T0},
        ("rk",),
        headers={"__key_len": "1", "__key_0": "\ufffd"},
        event_time=at(T0),
    ),
    Hostile(
        "a value of 5 MiB",
        {"key": b"big", "value": bytes(range(256)) * (HUGE // 256), "timestamp": T0},
        ("big",),
        bytes(range(256)) * (HUGE // 256),
        event_time=at(T0),
    ),
    Hostile(
        "plain after", {"value": b"end", "key": b"k", "timestamp": T0}, ("k",), b"end", {}, at(T0)
    ),
]
REFUSED = CASES[8]
CLAMPED = 2  # INT64_MAX and the first ms after 9999: the last ms of 9999 is taken as it is


def produce(broker: KafkaBroker, topic: str) -> list[str]:
    """Every case, in order, on partition 0: their datum ids."""
    producer = Producer(broker.client_config(**{"message.max.bytes": 16 * 1024 * 1024}))
    reports: list[Any] = []
    ids = []
    for case in CASES:
        if isinstance(case.record, RawRecord):
            (offset,) = produce_raw(broker.bootstrap, topic, [case.record])
        else:
            reports.clear()
            producer.produce(
                topic, partition=0, on_delivery=lambda e, m: reports.append((e, m)), **case.record
            )
            assert producer.flush(30) == 0, case.name
            ((err, msg),) = reports
            assert err is None, f"{case.name}: {err}"
            offset = msg.offset()
        ids.append(f"{topic}:0:{offset}")
    assert ids == [f"{topic}:0:{i}" for i in range(len(CASES))]
    return ids


@pytest.fixture(scope="module")
def hostile(kafka_broker: KafkaBroker) -> tuple[str, list[str]]:
    """A topic holding every case, and their datum ids."""
    topic = kafka_broker.unique_topic("hostile")
    kafka_broker.create_topic(topic, 1, config=TOPIC_CONFIG)
    return topic, produce(kafka_broker, topic)


def check(d: Datum, case: Hostile, read_between: tuple[datetime, datetime]) -> None:
    assert (d.keys, d.value) == (case.keys, case.value), case.name
    assert dict(d.headers) == dict(case.headers), case.name
    if case.event_time is READ_TIME:
        assert read_between[0] <= d.event_time <= read_between[1], case.name
    else:
        assert d.event_time == case.event_time, case.name


class CommitWatch:
    """Samples the group's committed offset while the data plane runs: (when, offset)."""

    def __init__(self, broker: KafkaBroker, group: str, topic: str) -> None:
        self.broker, self.group, self.topic = broker, group, topic
        self.samples: list[tuple[float, int]] = []

    async def run(self) -> None:
        while True:
            committed = await asyncio.to_thread(self.broker.committed, self.group, self.topic)
            self.samples.append((time.monotonic(), committed.get(0, 0)))
            await asyncio.sleep(0.1)


async def test_every_hostile_record_is_delivered_or_routed_and_the_partition_moves_on(
    kafka_broker: KafkaBroker,
    hostile: tuple[str, list[str]],
    sdk_sink: SdkFactory,
    tmp_path: Path,
) -> None:
    topic, ids = hostile
    refused_id = ids[CASES.index(REFUSED)]
    dlq = kafka_broker.create_topic(kafka_broker.unique_topic("hostile-dlq"), 1)
    group = f"hostile-{uuid.uuid4().hex[:8]}"

    def answer(d: Datum, n: int) -> Response:
        if d.id == refused_id:
            return Response.failure(d.id, f"cannot store: {d.headers.get(SOURCE_ERROR_HEADER)}")
        return Response.ok(d.id)

    recorder = RecordingSink(answer)
    sink = await sdk_sink(recorder)
    config = kafka_to_sink(
        kafka_broker,
        topic,
        group,
        sink.config(),
        fallback=KafkaSinkConfig(brokers=[kafka_broker.bootstrap], topic=dlq),
        retry_strategy=RetryStrategy(
            backoff=Backoff(interval_ms=5, cap_ms=50, jitter=0.0, steps=3), on_failure="fallback"
        ),
    )
    dp = DataPlaneProcess(tmp_path, config, observed=True)
    watch = CommitWatch(kafka_broker, group, topic)
    started = datetime.now(UTC)
    dp.start()
    watching = asyncio.ensure_future(watch.run())
    try:
        await wait_committed(kafka_broker, group, topic, dp)
        finished = datetime.now(UTC)
        altered = {
            kind: dp.metric("udsink_records_altered_total", kind=kind)
            for kind in ("timestamp-clamped", "unconvertible")
        }
        malformed = dp.metric("udsink_malformed_key_headers_total")
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        code = await dp.stopped()
    log = dp.log()
    assert code == 0, log[-4000:]
    assert "data plane failed" not in log and log.count("joining group") == 1, log[-4000:]

    # Each record reached the sink once (the refused one once per attempt), as documented.
    first = {}
    for d in recorder.datums:
        first.setdefault(d.id, d)
    assert list(first) == ids
    for case, datum_id in zip(CASES, ids, strict=True):
        check(first[datum_id], case, (started, finished))
        assert recorder.count(datum_id) == (4 if case is REFUSED else 1), case.name
    # The refused one went by the failure policy, with both reasons.
    (moved,) = await asyncio.to_thread(kafka_broker.consume, dlq, 1)
    assert moved.header("x-udsink-source") == refused_id.encode()
    assert moved.header("x-udsink-status") == b"FAILURE"
    assert moved.header(SOURCE_ERROR_HEADER) == UNCONVERTED.encode()
    assert moved.header("x-udsink-error") == f"cannot store: {UNCONVERTED}".encode()
    assert moved.value == REFUSED.value
    # Counted: the clamped timestamps, the unconvertible records, the malformed key headers.
    assert altered == {"timestamp-clamped": CLAMPED, "unconvertible": 2}
    assert malformed == 2
    # No commit ever covered a record before the sink had it.
    given = {i: recorder.deliveries[i][0] for i in ids}
    assert watch.samples, "no committed offset was sampled"
    for when, upto in watch.samples:
        early = [i for i in ids[:upto] if given[i] > when]
        assert not early, f"committed up to {upto} before the sink was given {early}"


async def read_all(broker: KafkaBroker, topic: str, count: int) -> list[Datum]:
    config = KafkaSourceConfig(
        brokers=[broker.bootstrap], topics=[topic], consumer_group=f"h-{uuid.uuid4().hex[:8]}"
    )
    source = KafkaSource(config, metrics=Metrics())
    await source.start()
    try:
        batches = await read_at_least(source, count)
    finally:
        await source.close()
    return [d for b in batches for d in b.datums]


async def test_the_c_and_python_conversions_agree_on_hostile_records(
    kafka_broker: KafkaBroker, hostile: tuple[str, list[str]]
) -> None:
    topic, ids = hostile
    started = datetime.now(UTC)
    in_c = await read_all(kafka_broker, topic, len(ids))
    with python_only():
        in_python = await read_all(kafka_broker, topic, len(ids))
    read_between = (started, datetime.now(UTC))
    assert [d.id for d in in_c] == [d.id for d in in_python] == ids
    for case, c, p in zip(CASES, in_c, in_python, strict=True):
        check(c, case, read_between)
        check(p, case, read_between)
        if case.event_time is not READ_TIME:
            assert codec.encode_request(c) == codec.encode_request(p), case.name
