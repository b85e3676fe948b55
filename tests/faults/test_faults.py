"""Fault injection, outside in: the data plane stays safe and live under broker outages,
misbehaving sinks, evictions and undeliverable records.

Each test runs the real data plane as a process against the real broker and a sink process
(tests/faults/fault_sink.py), and judges it only from outside: what the sink recorded, what the
broker holds as committed offsets, and the data plane's /livez, /readyz and /metrics.
Safety: nothing is lost and no commit covers a message the sink (or the dead-letter topic) did
not take. Liveness: progress resumes within a bound, or the data plane says it is not live.
Random choices are seeded (harness.SEED, printed in every failure) and bounded in time.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from sink_runtime.config import KafkaSinkConfig
from tests.faults import harness
from tests.faults.harness import (
    all_ids,
    assert_commits_covered,
    committed_total,
    data_plane,
    eventually,
    fault_sink,
    group_name,
    kafka_config,
    produce_numbered,
    scenario,
)
from tests.support.kafka_broker import KafkaBroker, cluster_id

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]


# --- 1 and 6: broker outages ---


async def test_repeated_broker_outages_the_same_process_resumes_and_tells_the_truth(
    broker_restored: KafkaBroker, tmp_path: Path
) -> None:
    """Four broker outages of 15-22 s in the middle of a stream (batches and commits in
    flight), each a stop or a kill: every time the same data plane process stays live, says
    on /readyz that the brokers are away, commits everything once they are back and becomes
    ready again by itself, with no restart. Nothing is lost or skipped, only commits the
    broker accepted count as acknowledged, and a SIGTERM after the storm exits cleanly."""
    broker = broker_restored
    r = harness.rng("outages")
    topic = broker.create_topic(broker.unique_topic("outage"), 4)
    grp = group_name("outage")
    rounds, per_round = 4, 1500
    slow = ("--mode", "slow", "--after", "0", "--times", "0", "--delay", "0.05")
    async with fault_sink(tmp_path / "sink", *slow) as sink:
        config = kafka_config(broker, topic, grp, sink.config(), batch=50)
        with data_plane(tmp_path, config) as dp:
            assert dp.proc is not None
            produced = 0
            for n in range(rounds):
                produce_numbered(broker, topic, per_round, 4, start=produced)
                before = produced
                produced += per_round
                # Mid-stream: part of this round delivered, batches and commits in flight.
                await eventually(
                    lambda: len(sink.ids()) >= before + per_round // 4,  # noqa: B023
                    60,
                    f"round {n}: flowing",
                    dp.describe,
                )
                kind = "kill" if r.random() < 0.5 else "stop"
                if kind == "kill":
                    broker.kill()
                else:
                    broker.stop()
                down_at, down_s = time.monotonic(), r.uniform(15, 22)
                # Readiness follows the consumer's real state, not a blocked commit.
                await eventually(
                    lambda: dp.get("/readyz")[0] == 503,
                    8,
                    f"round {n} ({kind}): /readyz reports the outage",
                    dp.describe,
                )
                # The outage's length is the fault itself: a window, polled for liveness.
                while time.monotonic() - down_at < down_s:
                    assert dp.get("/livez")[0] == 200, f"round {n}: not live\n{dp.describe()}"
                    await asyncio.sleep(1)
                broker.start()
                await eventually(
                    lambda: committed_total(broker, grp, topic) == produced,  # noqa: B023
                    90,
                    f"round {n} ({kind}): all {produced} offsets committed after the broker "
                    "came back",
                    dp.describe,
                )
                await eventually(
                    lambda: dp.get("/readyz")[0] == 200, 30, f"round {n}: ready", dp.describe
                )
                assert dp.get("/livez")[0] == 200, dp.describe()
                assert dp.proc.poll() is None, f"round {n}: the data plane exited\n{dp.describe()}"
            assert all_ids(topic, produced, 4) <= sink.ids(), dp.describe()
            assert_commits_covered(broker, grp, topic, sink.ids(), dp)
            # Only commits the broker accepted count as acknowledged.
            delivered = len(sink.deliveries())
            acked = dp.metric("udsink_acked_total")
            assert produced <= acked <= delivered, (
                f"{acked} acknowledged: {produced} produced, {delivered} deliveries\n"
                f"{dp.describe()}"
            )
            dp.send_signal(signal.SIGTERM)
            assert dp.wait(30) == 0, dp.describe()
            assert "did not finish within" not in dp.log(), dp.describe()


async def test_sigterm_during_a_broker_outage_exits(
    broker_restored: KafkaBroker, tmp_path: Path
) -> None:
    broker = broker_restored
    topic = broker.create_topic(broker.unique_topic("outage-term"), 2)
    grp = group_name("outage-term")
    produce_numbered(broker, topic, 400, 2)
    async with fault_sink(tmp_path / "sink") as sink:
        config = kafka_config(broker, topic, grp, sink.config(), batch=50)
        with data_plane(tmp_path, config) as dp:
            await eventually(lambda: len(sink.ids()) > 100, 60, "flowing", dp.describe)
            broker.kill()
            await eventually(
                lambda: dp.get("/readyz")[0] == 503, 10, "/readyz sees the outage", dp.describe
            )
            dp.send_signal(signal.SIGTERM)
            code = dp.wait(40)
            broker.start()
            assert code is not None, f"still running 40 s after SIGTERM\n{dp.describe()}"
            assert_commits_covered(broker, grp, topic, sink.ids(), dp)


# --- 2: a sink that stops answering ---


@pytest.mark.parametrize("mode", ["hang", "no-eot"])
async def test_a_sink_that_stops_answering_is_noticed_and_reset(
    kafka_broker: KafkaBroker, tmp_path: Path, mode: str
) -> None:
    faulty = ("--mode", mode, "--after", "2", "--times", "1")
    async with scenario(
        kafka_broker, tmp_path, mode, records=500, sink_args=faulty, write_timeout_ms=3000
    ) as sc:
        await sc.run_to_completion(500)
        assert sc.dp.metric("udsink_sink_write_timeouts_total", sink="primary") >= 1
        assert sc.dp.metric("udsink_sink_stalls_total", sink="primary") >= 1
        assert "has not answered a batch of" in sc.dp.log()
        assert "within the write timeout" in sc.dp.log()


async def test_a_hung_sink_with_sigterm_exits_and_commits_nothing_unhandled(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    hang = ("--mode", "hang", "--after", "1")
    async with scenario(
        kafka_broker, tmp_path, "hang-term", records=300, sink_args=hang, write_timeout_ms=60_000
    ) as sc:
        await eventually(lambda: len(sc.sink.ids()) == 100, 60, "first batch", sc.dp.describe)
        # The second batch is sent and the sink hangs on it; the sink says nothing when it
        # hangs, so a short window puts the SIGTERM inside that wait.
        await asyncio.sleep(1)
        sc.dp.send_signal(signal.SIGTERM)
        assert sc.dp.wait(30) is not None, sc.dp.describe()
        sc.assert_commits_covered()


async def test_an_endless_stream_is_cut_and_buffers_nothing_more(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    endless = ("--mode", "endless", "--after", "1", "--times", "1")
    async with scenario(
        kafka_broker, tmp_path, "endless", records=500, sink_args=endless, write_timeout_ms=5000
    ) as sc:
        await sc.run_to_completion(500)
        violations = sc.dp.metric("udsink_contract_violations_total", sink="primary", kind="count")
        assert violations >= 1, sc.dp.describe()
        assert sc.dp.proc is not None
        rss_kib = _rss_kib(sc.dp.proc.pid)
        assert rss_kib < 400 * 1024, f"RSS {rss_kib} KiB\n{sc.dp.describe()}"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


async def test_lag_is_reported_for_every_assigned_partition(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    # The sink never answers: nothing is ever committed, lag must still be reported.
    async with scenario(
        kafka_broker,
        tmp_path,
        "lag",
        records=400,
        partitions=4,
        sink_args=("--mode", "hang"),
        write_timeout_ms=60_000,
    ) as sc:

        def lag_everywhere() -> bool:
            return all(
                sc.dp.metric("udsink_consumer_lag_messages", topic=sc.topic, partition=str(p))
                == 100
                for p in range(4)
            )

        await eventually(lag_everywhere, 30, "lag 100 on each of 4 partitions", sc.dp.describe)


# --- 3: a contract violation resets the stream ---


async def test_a_double_answer_resets_the_stream(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    double = ("--mode", "double", "--after", "1", "--times", "1")
    async with scenario(kafka_broker, tmp_path, "double", records=600, sink_args=double) as sc:
        await sc.run_to_completion(600)
        taken = [i for _, i in sc.sink.deliveries()]
        twice = len(taken) - len(set(taken))
        # The double answer costs at most the batch it confused, not every later one.
        assert twice <= 200, f"{twice} deliveries repeated\n{sc.dp.describe()}"
        assert not re.search(r"(?<!\d)0 messages treated as FAILURE", sc.dp.log())
        # Reset as the second answer arrives between batches, or, when it comes after the next
        # batch went out, by that batch's contract check.
        assert re.search(r"between batches|resetting the stream", sc.dp.log())


# --- 4: no delivery for a partition this member no longer owns ---


async def test_an_evicted_member_does_not_deliver_its_read_ahead_batch(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("evict"), 1)
    grp = group_name("evict")
    produce_numbered(kafka_broker, topic, 1000)
    # The smallest poll interval the broker allows (its minimum session timeout is 6 s).
    consumer = {"session.timeout.ms": "6000", "max.poll.interval.ms": "6000"}
    slow = ("--mode", "slow", "--after", "0", "--times", "1", "--delay", "20")
    async with fault_sink(tmp_path / "a", *slow) as a, fault_sink(tmp_path / "b") as b:
        config_a = kafka_config(kafka_broker, topic, grp, a.config(), consumer=consumer)
        config_b = kafka_config(kafka_broker, topic, grp, b.config(), consumer=consumer)
        with data_plane(tmp_path, config_a, "a") as dp_a:
            await eventually(
                lambda: "assigned" in dp_a.log(), 60, "member a assigned", dp_a.describe
            )
            await asyncio.sleep(1)  # a is inside its slow first batch, one batch read ahead
            with data_plane(tmp_path, config_b, "b") as dp_b:
                await eventually(
                    lambda: committed_total(kafka_broker, grp, topic) == 1000,
                    120,
                    "all 1000 offsets committed",
                    lambda: dp_a.describe() + "\n" + dp_b.describe(),
                )
                # a answers its slow batch (in flight when it was evicted: its delivery began
                # before the revocation, an allowed duplicate), then must deliver nothing it
                # read before the revocation, such as its read-ahead batch.
                await eventually(
                    lambda: len(a.deliveries()) >= 100, 60, "a's slow batch", dp_a.describe
                )
                # That a delivers nothing more is the claim: a window long enough for its
                # read-ahead batch to have gone out had it been delivered.
                await asyncio.sleep(5)
                in_flight = {i for _, i in a.deliveries()[:100]}
                first_by_b: dict[str, float] = {}
                for stamp, i in b.deliveries():
                    first_by_b.setdefault(i, stamp)
                late = [
                    i
                    for stamp, i in a.deliveries()
                    if i not in in_flight and i in first_by_b and stamp > first_by_b[i]
                ]
                assert not late, (
                    f"member a delivered {len(late)} messages after their new owner did "
                    f"(first {late[:5]})\n{dp_a.describe()}"
                )
                assert_commits_covered(kafka_broker, grp, topic, a.ids() | b.ids(), dp_a)


# --- 5: one undeliverable record does not stop the pod silently ---


def _big_record_topics(broker: KafkaBroker) -> tuple[str, str]:
    """A source topic that takes a 1.5 MB record, and a dead-letter topic that refuses it."""
    source = broker.unique_topic("big")
    dlq = broker.unique_topic("dlq")
    admin = broker.admin()
    futures = admin.create_topics(
        [
            NewTopic(source, 1, 1, config={"max.message.bytes": str(8 * 1024 * 1024)}),
            NewTopic(dlq, 1, 1),
        ]
    )
    for f in futures.values():
        f.result(30)
    return source, dlq


def _produce_with_one_big(broker: KafkaBroker, topic: str) -> str:
    records = [{"value": str(i).encode()} for i in range(200)]
    records.insert(50, {"value": b"x" * 1_500_000})
    producer_limit = {"message.max.bytes": str(4 * 1024 * 1024)}
    from confluent_kafka import Producer

    producer = Producer(broker.client_config(**producer_limit))
    where: list[tuple[int, int]] = []
    for i, rec in enumerate(records):
        # The big record's own delivery report says where it landed: librdkafka may send it in
        # a request of its own, ahead of smaller records queued before it.
        report = (
            (lambda err, msg: where.append((msg.partition(), msg.offset()))) if i == 50 else None
        )
        producer.produce(topic, value=rec["value"], on_delivery=report)
    assert producer.flush(30) == 0
    ((partition, offset),) = where
    return f"{topic}:{partition}:{offset}"


@pytest.mark.parametrize("on_exhausted", ["log", "stop"])
async def test_an_undeliverable_dead_letter_has_a_last_resort(
    kafka_broker: KafkaBroker, tmp_path: Path, on_exhausted: str
) -> None:
    topic, dlq = _big_record_topics(kafka_broker)
    big_id = _produce_with_one_big(kafka_broker, topic)
    grp = group_name(f"dlq-{on_exhausted}")
    fallback = KafkaSinkConfig(brokers=[kafka_broker.bootstrap], topic=dlq)
    async with fault_sink(tmp_path / "sink", "--fallback-over", "100000") as s:
        config = kafka_config(
            kafka_broker,
            topic,
            grp,
            s.config(),
            batch=20,
            consumer={"fetch.max.bytes": str(16 * 1024 * 1024)},
            fallback=fallback.model_dump(by_alias=True),
            retryStrategy={
                "backoff": {"intervalMs": 50, "capMs": 200},
                "secondary": {"steps": 3, "onExhausted": on_exhausted},
            },
        )
        with data_plane(tmp_path, config) as dp:
            if on_exhausted == "log":
                await eventually(
                    lambda: committed_total(kafka_broker, grp, topic) == 201,
                    90,
                    "all 201 offsets committed past the undeliverable record",
                    dp.describe,
                )
                assert f"message {big_id} dropped (onExhausted=log)" in dp.log()
                assert dp.metric("udsink_dropped_total", reason="fallback-exhausted") == 1
                taken = s.ids() | {big_id}
                assert_commits_covered(kafka_broker, grp, topic, taken, dp)
            else:
                await eventually(
                    lambda: "fallback sink" in dp.get("/readyz")[1] and dp.get("/readyz")[0] == 503,
                    60,
                    "/readyz names the stuck fallback sink",
                    dp.describe,
                )
                assert dp.get("/livez")[0] == 200, dp.describe()
                # Nothing at or after the stuck record is committed (a window: no commit is
                # the claim, and two seconds hold several commit rounds).
                await asyncio.sleep(2)
                assert kafka_broker.committed(grp, topic).get(0, 0) <= 50, dp.describe()
                assert_commits_covered(kafka_broker, grp, topic, s.ids(), dp)


# --- 7: the test broker itself ---


def test_the_test_broker_cluster_id_never_looks_like_an_option() -> None:
    ids = [cluster_id() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids)
