"""At-least-once, proven from outside: random sink failures plus SIGKILLed data planes.

Over 10,000 keyed records on 3 partitions, the data plane (`python -m sink_runtime.dataplane`,
a subprocess) feeds our SDK sink in this process, which answers FAILURE for ~5% of deliveries,
FALLBACK for ~1% of ids and FAILURE forever for a few more (retries exhausted, then the
fallback topic). The data plane is SIGKILLed at seeded random points and restarted each time.
Everything asserted comes from outside the data plane: what the sink answered, the fallback
topic as consumed from the broker, and the group's committed offsets as the broker reports
them. A second, smaller scenario checks `onFailure: drop` against the /metrics endpoint.

Randomness is seeded (`UDSINK_ALO_SEED` overrides the seed, printed with the counts) and the
failure decisions are a hash of (seed, id, delivery number), so a failing run can be replayed.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import time
import urllib.request
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sink_runtime.config import (
    Backoff,
    BatchConfig,
    KafkaSinkConfig,
    KafkaSourceConfig,
    ObservabilityConfig,
    RetryStrategy,
    RuntimeConfig,
    constants,
)
from sink_runtime.types import Datum, Response, Status
from tests.support.dataplane_process import (
    WAIT_S,
    DataPlaneProcess,
    start_data_plane,
    wait_committed,
)
from tests.support.kafka_broker import KafkaBroker, Record
from tests.support.recording_sink import RecordingSink

pytestmark = pytest.mark.kafka

SEED = int(os.environ.get("UDSINK_ALO_SEED", "20240603"))
MESSAGES = 10_000
PARTITIONS = 3
KILLS = 4
FAILURE_PER_MILLE = 50  # FAILURE answers: ~5% of deliveries
FALLBACK_SHARE = 0.01  # ids the sink always answers FALLBACK
EXHAUSTING_SHARE = 0.003  # ids the sink always answers FAILURE: retries run out
RETRY_STEPS = 3
DROP_STEPS = 2
# A SIGKILLed member keeps its partitions until its session times out: 6 s is the broker's
# minimum (group.min.session.timeout.ms), so each restart costs about that much.
FAST_SESSION = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


@dataclass(frozen=True, slots=True)
class Produced:
    """What was written for one record, to compare deliveries and fallback records against."""

    id: str
    partition: int
    offset: int
    keys: tuple[str, ...]
    value: bytes


@dataclass(slots=True)
class Answers:
    """Every answer the sink gave, in order: (id, status)."""

    log: list[tuple[str, Status]] = field(default_factory=list)

    def ok_counts(self) -> Counter[str]:
        return Counter(i for i, s in list(self.log) if s is Status.SUCCESS)


@dataclass(frozen=True, slots=True)
class Kill:
    """One SIGKILL: deliveries seen before it, committed offsets right after it."""

    after_deliveries: int
    committed: dict[int, int]
    in_flight: frozenset[str]  # delivered before the kill, not covered by a commit
    answered_ok: frozenset[str]  # ids the sink had answered OK by then

    def committed_without_ok(self, ids: list[str]) -> list[str]:
        """Ids the group had committed that the sink had not answered OK (fallback only)."""
        return [
            i
            for i in ids
            if position(i)[1] < self.committed.get(position(i)[0], 0) and i not in self.answered_ok
        ]


def key_parts(i: int) -> tuple[str, ...]:
    """One to three key parts; some hold the separator or non-ASCII text."""
    parts = (f"tenant-{i % 7}", f"order:{i}", f"région-{i % 3}")
    return parts[: 1 + i % 3]


def produce_keyed(
    broker: KafkaBroker, topic: str, count: int, partitions: int
) -> dict[str, Produced]:
    """`count` records with split key headers, round-robin over the partitions; by datum id."""
    records = []
    for i in range(count):
        keys = key_parts(i)
        headers = [(constants.KEY_LEN_HEADER, str(len(keys)).encode())]
        headers += [(f"{constants.KEY_HEADER_PREFIX}{n}", k.encode()) for n, k in enumerate(keys)]
        headers.append(("n", str(i).encode()))
        records.append(
            {
                "value": f"value-{i}".encode(),
                "key": "|".join(keys).encode(),
                "headers": headers,
                "partition": i % partitions,
            }
        )
    written = broker.produce(topic, records, timeout_s=60)
    out: dict[str, Produced] = {}
    for i, (p, o) in enumerate(written):
        rec_id = f"{topic}:{p}:{o}"
        out[rec_id] = Produced(rec_id, p, o, key_parts(i), f"value-{i}".encode())
    return out


def position(datum_id: str) -> tuple[int, int]:
    _, p, o = datum_id.rsplit(":", 2)
    return int(p), int(o)


def fails_this_time(datum_id: str, delivery: int) -> bool:
    digest = zlib.crc32(f"{SEED}:{datum_id}:{delivery}".encode())
    return digest % 1000 < FAILURE_PER_MILLE


def keys_from_record(rec: Record) -> tuple[str, ...]:
    n = int(rec.header(constants.KEY_LEN_HEADER) or b"0")
    return tuple(
        (rec.header(f"{constants.KEY_HEADER_PREFIX}{i}") or b"").decode() for i in range(n)
    )


def in_flight_at_kill(recorder: RecordingSink, committed: dict[int, int]) -> frozenset[str]:
    """Ids the sink has seen whose offsets the group has not committed."""
    return frozenset(
        i for i in list(recorder.deliveries) if position(i)[1] >= committed.get(position(i)[0], 0)
    )


async def wait_deliveries(recorder: RecordingSink, count: int, dp: DataPlaneProcess) -> None:
    deadline = time.monotonic() + WAIT_S
    while sum(len(b) for b in list(recorder.batches)) < count:
        if dp.proc.poll() is not None:
            raise AssertionError(f"data plane exited ({dp.proc.returncode}):\n{dp.log()[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} deliveries after {WAIT_S}s")
        await asyncio.sleep(0.005)


async def test_random_failures_and_kills_lose_nothing(
    kafka_broker: KafkaBroker, sdk_sink: Any, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("alo-in"), PARTITIONS)
    dlq = kafka_broker.create_topic(kafka_broker.unique_topic("alo-dlq"), 1)
    group = f"alo-{uuid.uuid4().hex[:8]}"
    produced = await asyncio.to_thread(produce_keyed, kafka_broker, topic, MESSAGES, PARTITIONS)
    ids = sorted(produced, key=position)
    chosen = rng.sample(ids, int(MESSAGES * (FALLBACK_SHARE + EXHAUSTING_SHARE)))
    fallback_ids = frozenset(chosen[: int(MESSAGES * FALLBACK_SHARE)])
    exhausting_ids = frozenset(chosen[int(MESSAGES * FALLBACK_SHARE) :])
    answers = Answers()

    def answer(d: Datum, n: int) -> Response:
        if d.id in fallback_ids:
            r = Response.fallback(d.id, f"rejected by schema: {d.id}")
        elif d.id in exhausting_ids or fails_this_time(d.id, n):
            r = Response.failure(d.id, f"deadlock on {d.id}, delivery {n}")
        else:
            r = Response.ok(d.id)
        answers.log.append((d.id, r.status))
        return r

    recorder = RecordingSink(answer)
    sink = await sdk_sink(recorder)
    source = KafkaSourceConfig(
        brokers=[kafka_broker.bootstrap], topics=[topic], consumer_group=group, config=FAST_SESSION
    )
    config = RuntimeConfig(
        source=source,
        sink=sink.config(),
        batch=BatchConfig(size=200, timeout_ms=100),
        retry_strategy=RetryStrategy(
            backoff=Backoff(interval_ms=2, factor=2.0, cap_ms=20, jitter=0.0, steps=RETRY_STEPS),
            on_failure="fallback",
        ),
        fallback=KafkaSinkConfig(brokers=[kafka_broker.bootstrap], topic=dlq),
        observability=ObservabilityConfig(metrics_port=0, metrics_host="127.0.0.1"),
        shutdown_grace_ms=10_000,
    )
    # Kill points: one random delivery count in each of KILLS equal slices of the run.
    span = (MESSAGES * 0.9 - 500) / KILLS
    kill_points = [int(500 + span * k + rng.uniform(0, span * 0.8)) for k in range(KILLS)]
    kills: list[Kill] = []
    dp = start_data_plane(tmp_path, config)
    try:
        for point in kill_points:
            await wait_deliveries(recorder, point, dp)
            # Land anywhere: mid sink call, mid fallback write, mid commit.
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            await dp.stopped(signal.SIGKILL)
            committed = await asyncio.to_thread(kafka_broker.committed, group, topic)
            pending = in_flight_at_kill(recorder, committed)  # before the restart
            kills.append(Kill(point, committed, pending, frozenset(answers.ok_counts())))
            dp = start_data_plane(tmp_path, config)
        await wait_committed(kafka_broker, group, topic, dp)
    finally:
        code = await dp.stopped()
    assert code == 0, dp.log()[-4000:]
    assert len(kills) == KILLS

    moved = await asyncio.to_thread(kafka_broker.consume_all, dlq)
    moved_by_id: dict[str, list[Record]] = {}
    for rec in moved:
        src = (rec.header(constants.FALLBACK_SOURCE_HEADER) or b"").decode()
        moved_by_id.setdefault(src, []).append(rec)
    oks = answers.ok_counts()

    # Zero lost: every id answered OK by the sink or is in the fallback topic.
    lost = [i for i in ids if oks[i] == 0 and i not in moved_by_id]
    assert not lost, f"{len(lost)} ids lost, first {lost[:10]}"
    assert set(moved_by_id) <= set(ids)
    assert fallback_ids <= set(moved_by_id) and exhausting_ids <= set(moved_by_id)
    assert not any(oks[i] for i in fallback_ids | exhausting_ids)
    # No commit ever covered a message before it was answered OK or moved to the fallback.
    for k in kills:
        early = [i for i in k.committed_without_ok(ids) if i not in moved_by_id]
        assert not early, f"committed before handled at kill {k}: {early[:10]}"

    # Fallback records carry the error headers, the original value and the keys, exactly.
    for src, recs in moved_by_id.items():
        want = produced[src]
        for rec in recs:
            assert rec.value == want.value
            assert keys_from_record(rec) == want.keys
            assert rec.key == ":".join(want.keys).encode()
            status = rec.header(constants.FALLBACK_STATUS_HEADER)
            error = (rec.header(constants.FALLBACK_ERROR_HEADER) or b"").decode()
            attempts = int(rec.header(constants.FALLBACK_ATTEMPTS_HEADER) or b"0")
            if src in fallback_ids:
                assert (status, error) == (b"FALLBACK", f"rejected by schema: {src}")
                assert attempts == 1
            else:
                assert status == b"FAILURE" and error.startswith(f"deadlock on {src}, delivery")
                assert attempts == RETRY_STEPS + 1

    # Keys rebuilt from the split headers on every delivery; values and headers kept.
    for d in recorder.datums:
        want = produced[d.id]
        assert (d.keys, d.value) == (want.keys, want.value), d.id
        assert d.headers["n"] == want.value.decode().removeprefix("value-")

    # Per partition, first deliveries follow the offsets.
    first_seen = list(dict.fromkeys(recorder.ids))
    for p in range(PARTITIONS):
        offsets = [o for q, o in map(position, first_seen) if q == p]
        assert offsets == sorted(offsets), f"partition {p} delivered out of order"
    assert len(first_seen) == MESSAGES

    # Duplicates: more than one terminal outcome (OK answer or fallback record) for an id.
    # Only ids in flight at a kill may have them, and no more than were in flight.
    outcomes = {i: oks[i] + len(moved_by_id.get(i, [])) for i in ids}
    duplicated = {i: n - 1 for i, n in outcomes.items() if n > 1}
    duplicates = sum(duplicated.values())
    in_flight = [k.in_flight for k in kills]
    redelivered = frozenset().union(*in_flight)
    assert set(duplicated) <= redelivered, sorted(set(duplicated) - redelivered)[:10]
    assert duplicates <= sum(len(s) for s in in_flight)

    deliveries = sum(len(v) for v in recorder.deliveries.values())
    failures = sum(1 for _, s in answers.log if s is Status.FAILURE)
    print(
        f"\nat-least-once (seed {SEED}): {MESSAGES} messages on {PARTITIONS} partitions, "
        f"{len(kills)} SIGKILLs after {[k.after_deliveries for k in kills]} deliveries; "
        f"{deliveries} sink deliveries, {failures} FAILURE answers; "
        f"in flight at the kills {[len(s) for s in in_flight]}; "
        f"duplicates {duplicates} (ids {len(duplicated)}); fallback records {len(moved)} "
        f"({len(fallback_ids)} FALLBACK ids, {len(exhausting_ids)} retries exhausted); lost 0"
    )


async def test_drop_policy_counts_drops_and_delivers_the_rest(
    kafka_broker: KafkaBroker, sdk_sink: Any, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("alo-drop"), 2)
    group = f"alo-drop-{uuid.uuid4().hex[:8]}"
    produced = await asyncio.to_thread(produce_keyed, kafka_broker, topic, 1_000, 2)
    doomed = frozenset(random.Random(SEED).sample(sorted(produced), 25))

    def answer(d: Datum, n: int) -> Response:
        if d.id in doomed:
            return Response.failure(d.id, f"cannot store {d.id}")
        return Response.ok(d.id)

    recorder = RecordingSink(answer)
    sink = await sdk_sink(recorder)
    config = RuntimeConfig(
        source=KafkaSourceConfig(
            brokers=[kafka_broker.bootstrap], topics=[topic], consumer_group=group
        ),
        sink=sink.config(),
        batch=BatchConfig(size=100, timeout_ms=100),
        retry_strategy=RetryStrategy(
            backoff=Backoff(interval_ms=2, cap_ms=10, jitter=0.0, steps=DROP_STEPS),
            on_failure="drop",
        ),
        observability=ObservabilityConfig(metrics_port=0, metrics_host="127.0.0.1"),
    )
    dp = start_data_plane(tmp_path, config)
    try:
        await wait_committed(kafka_broker, group, topic, dp)
        metrics = await asyncio.to_thread(read_metrics, dp)
    finally:
        code = await dp.stopped()
    assert code == 0, dp.log()[-4000:]

    assert metric(metrics, 'udsink_dropped_total{reason="retries-exhausted"}') == len(doomed)
    assert metric(metrics, "udsink_acked_total") == len(produced)
    for i in produced:
        assert recorder.count(i) == (DROP_STEPS + 1 if i in doomed else 1), i
    log = dp.log()
    for i in doomed:
        assert f"message {i} dropped (onFailure=drop)" in log, i
    print(f"\ndrop policy: {len(produced)} messages, {len(doomed)} dropped (from /metrics)")


def read_metrics(dp: DataPlaneProcess) -> str:
    """GET /metrics of the running data plane (its port is in its start-up log line)."""
    found = re.search(r"serving /metrics.* on 127\.0\.0\.1:(\d+)", dp.log())
    assert found is not None, f"no metrics port in the log:\n{dp.log()[-2000:]}"
    url = f"http://127.0.0.1:{found.group(1)}{constants.METRICS_PATH}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {sample} in /metrics:\n{text[:3000]}")
