"""`udsink run` with a Kafka source never touches the UDSink's consumer group unless asked.

By default the run reads with a private group (named in its first lines and its summary),
from `--from` (default latest), and commits only there: the UDSink's group gets no member and
no offset. `--join-group` joins the UDSink's own group: refused while that group has members,
unless `--force`, and said loudly either way. Read back from the broker, not from the run.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from tests.support.kafka_broker import KafkaBroker
from tests.support.local_run import run_to_end, run_until, udsink_file

pytestmark = pytest.mark.kafka

HEADER = re.compile(r"with private consumer group (\S+), from (\w+)")


def spec(broker: KafkaBroker, src: str, out: str) -> dict[str, Any]:
    kafka = {"brokers": [broker.bootstrap]}
    return {
        "source": {"kafka": {**kafka, "topics": [src]}},
        "sink": {"kafka": {**kafka, "topic": out}},
    }


def group_state(broker: KafkaBroker, group: str) -> tuple[str, int]:
    admin = AdminClient(broker.client_config())
    desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return desc.state.name, len(desc.members)


def groups(broker: KafkaBroker) -> set[str]:
    admin = AdminClient(broker.client_config())
    return {g.group_id for g in admin.list_consumer_groups().result(timeout=10).valid}


def produce(broker: KafkaBroker, topic: str, values: list[str]) -> None:
    broker.produce(topic, [{"value": v.encode()} for v in values])


def test_private_group_from_latest_by_default(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    broker = kafka_broker
    src = broker.create_topic(broker.unique_topic("in"))
    out = broker.create_topic(broker.unique_topic("out"))
    produce(broker, src, ["old-1", "old-2"])  # before the run: not read (latest)
    path = udsink_file(tmp_path / "u.yaml", "laptop", spec(broker, src, out))
    seen: dict[str, str] = {}

    def done(lines: list[str]) -> bool:
        time.sleep(0.2)  # between looks at the run's output and the broker
        if "group" not in seen:
            found = [m for m in map(HEADER.search, lines) if m]
            if not found:
                return False
            seen["group"], seen["from"] = found[0].group(1), found[0].group(2)
        if "produced" not in seen:
            state, members = group_state(broker, seen["group"])
            if state != "STABLE" or members != 1:
                return False
            assert group_state(broker, "shop.laptop") == ("DEAD", 0)  # never joined
            produce(broker, src, ["new-1", "new-2", "new-3"])
            seen["produced"] = "yes"
        return sum(broker.end_offsets(out).values()) >= 3

    code, summary, err = run_until(["-f", str(path)], done)
    assert code == 130, err
    assert seen["from"] == "latest"
    assert summary["consumer_group"] == seen["group"]
    assert seen["group"].startswith("udsink-run.shop.laptop.")
    assert sorted(r.value for r in broker.consume(out, 3)) == [b"new-1", b"new-2", b"new-3"]
    assert broker.committed(seen["group"], src) == {0: 5}
    assert broker.committed("shop.laptop", src) == {}
    assert "shop.laptop" not in groups(broker)


def test_joining_the_udsinks_group_is_refused_while_it_has_members(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    broker = kafka_broker
    src = broker.create_topic(broker.unique_topic("in"))
    out = broker.create_topic(broker.unique_topic("out"))
    path = udsink_file(tmp_path / "u.yaml", "deployed", spec(broker, src, out))
    pod = Consumer(broker.client_config(**{"group.id": "shop.deployed", "client.id": "the-pod"}))
    pod.subscribe([src])
    try:
        deadline = time.monotonic() + 30
        while not pod.assignment():
            assert time.monotonic() < deadline, "the stand-in pod got no assignment"
            pod.consume(1, 0.2)
        # Without --force: refused, naming the members and what joining would do.
        code, _, err = run_to_end(["-f", str(path), "--join-group", "shop.deployed"])
        assert code == 2, err
        assert "--join-group shop.deployed: the group is STABLE with 1 member(s) (the-pod@" in err
        assert "what this run acknowledges is committed for them" in err
        assert "pass --force" in err
        # A name that is not the UDSink's group: refused too.
        code, _, err = run_to_end(["-f", str(path), "--join-group", "shop.other"])
        assert code == 2 and "the UDSink's consumer group is shop.deployed" in err, err

        # With --force: joins, with a warning naming the member.
        def joined(lines: list[str]) -> bool:
            time.sleep(0.2)  # between looks at the run's output and the broker
            return any("as a member of the UDSink's consumer group" in line for line in lines) and (
                group_state(broker, "shop.deployed")[1] == 2
            )

        argv = ["-f", str(path), "--join-group", "shop.deployed", "--force"]
        code, summary, err = run_until(argv, joined)
        assert code == 130, err
        assert "WARNING: joining consumer group shop.deployed (1 member(s) (the-pod@" in err
        assert summary["consumer_group"] == "shop.deployed"
    finally:
        pod.close()


def test_joining_an_empty_group_commits_there(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    broker = kafka_broker
    src = broker.create_topic(broker.unique_topic("in"))
    out = broker.create_topic(broker.unique_topic("out"))
    produce(broker, src, ["a", "b"])
    path = udsink_file(tmp_path / "u.yaml", "paused", spec(broker, src, out))

    def copied(_: list[str]) -> bool:
        time.sleep(0.2)  # between looks at the broker
        return sum(broker.end_offsets(out).values()) >= 2

    argv = ["-f", str(path), "--join-group", "shop.paused", "--from", "earliest"]
    code, summary, err = run_until(argv, copied)
    assert code == 130, err
    assert "WARNING: joining consumer group shop.paused (no members now)" in err
    assert summary["consumer_group"] == "shop.paused"
    assert broker.committed("shop.paused", src) == {0: 2}
