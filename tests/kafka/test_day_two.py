"""`udsink replay` and `udsink offsets` against the real broker.

The commands run in-process through the `udsink` dispatcher (what `udsink replay ...` runs),
their `--json` output parsed from stdout; what they did is read back from the broker with the
session broker's own helpers, never from the command's word alone.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from udsink_cli.main import main as udsink

from sink_runtime.config import constants
from tests.support.kafka_broker import KafkaBroker
from tests.support.local_run import in_process as run

pytestmark = pytest.mark.kafka

ERROR_HEADERS = {
    constants.FALLBACK_STATUS_HEADER,
    constants.FALLBACK_ERROR_HEADER,
    constants.FALLBACK_ATTEMPTS_HEADER,
    constants.FALLBACK_SOURCE_HEADER,
}
BASE_MS = 1_700_000_000_000  # record timestamps: BASE_MS + i minutes


def dead_letters(broker: KafkaBroker, topic: str, count: int) -> list[dict[str, Any]]:
    """Records as the data plane writes them to a dead-letter topic, round-robin on 2
    partitions, one minute apart."""
    records = [
        {
            "partition": i % 2,
            "key": f"k{i}".encode(),
            "value": f"v{i}".encode(),
            "timestamp": BASE_MS + i * 60_000,
            "headers": [
                ("trace-id", f"t{i}".encode()),
                (constants.FALLBACK_STATUS_HEADER, b"FAILURE"),
                (constants.FALLBACK_ERROR_HEADER, b"db down"),
                (constants.FALLBACK_ATTEMPTS_HEADER, b"6"),
                (constants.FALLBACK_SOURCE_HEADER, f"orders:0:{i}".encode()),
            ],
        }
        for i in range(count)
    ]
    broker.produce(topic, records)
    return records


@pytest.fixture
def dlq(kafka_broker: KafkaBroker) -> Iterator[tuple[str, str]]:
    """A 2-partition dead-letter topic holding 6 records, and an empty 3-partition target."""
    source = kafka_broker.create_topic(kafka_broker.unique_topic("dlq"), partitions=2)
    target = kafka_broker.create_topic(kafka_broker.unique_topic("orders"), partitions=3)
    dead_letters(kafka_broker, source, 6)
    yield source, target


def replay(broker: KafkaBroker, source: str, target: str, *extra: str) -> list[str]:
    return [
        "replay",
        "--brokers",
        broker.bootstrap,
        "--source",
        source,
        "--target",
        target,
        "--json",
        *extra,
    ]


def by_key(records: list[Any]) -> dict[bytes, Any]:
    return {r.key: r for r in records}


def test_replay_dry_run_plans_and_writes_nothing(
    kafka_broker: KafkaBroker, dlq: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = dlq
    code, plan, err = run(capsys, *replay(kafka_broker, source, target))
    assert code == 0, err
    assert plan["dry_run"] is True
    assert plan["records"] == 6
    assert [
        (p["partition"], p["first_offset"], p["last_offset"], p["records"])
        for p in plan["partitions"]
    ] == [(0, 0, 2, 3), (1, 0, 2, 3)]
    assert len(plan["sample"]) == 3
    first = plan["sample"][0]
    assert first["headers"][constants.FALLBACK_ERROR_HEADER] == "db down"
    assert first["written_headers"] == ["trace-id"]
    assert sum(kafka_broker.end_offsets(target).values()) == 0


def test_replay_execute_writes_every_record_without_error_headers(
    kafka_broker: KafkaBroker, dlq: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = dlq
    code, summary, err = run(
        capsys, *replay(kafka_broker, source, target, "--execute", "--rate", "200")
    )
    assert code == 0, err
    assert summary["outcome"] == "completed"
    assert summary["read"] == {"0": 3, "1": 3}
    assert summary["written_total"] == 6 and summary["failed"] == 0
    ends = kafka_broker.end_offsets(target)
    assert {str(p): n for p, n in ends.items() if n} == summary["written"]
    written = by_key(kafka_broker.consume(target, 6))
    assert set(written) == {f"k{i}".encode() for i in range(6)}
    for i in range(6):
        rec = written[f"k{i}".encode()]
        assert rec.value == f"v{i}".encode()
        assert rec.headers == [("trace-id", f"t{i}".encode())]
    # The source is untouched, and nothing more arrives at the target.
    assert sum(kafka_broker.end_offsets(source).values()) == 6
    assert sum(kafka_broker.end_offsets(target).values()) == 6


def test_replay_keeps_error_headers_when_asked(
    kafka_broker: KafkaBroker, dlq: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = dlq
    code, summary, err = run(
        capsys,
        *replay(kafka_broker, source, target, "--execute", "--rate", "0", "--keep-error-headers"),
    )
    assert code == 0, err
    assert summary["written_total"] == 6
    for rec in kafka_broker.consume(target, 6):
        assert set(rec.header_names()) == {"trace-id", *ERROR_HEADERS}
        assert rec.header(constants.FALLBACK_SOURCE_HEADER) == b"orders:0:" + rec.key[1:]


def test_replay_time_range(
    kafka_broker: KafkaBroker, dlq: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--since includes, --until excludes: minutes 2..4 of records 0..5 are records 2, 3, 4."""
    source, target = dlq
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((BASE_MS + 2 * 60_000) / 1000))
    until = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime((BASE_MS + 5 * 60_000) / 1000))
    code, summary, err = run(
        capsys,
        *replay(kafka_broker, source, target, "--since", since, "--until", until, "--execute"),
    )
    assert code == 0, err
    assert summary["written_total"] == 3
    written = kafka_broker.consume(target, 3)
    assert sorted(r.key for r in written) == [b"k2", b"k3", b"k4"]
    time.sleep(1)  # a fourth record, had one been written, would be readable by now
    assert sum(kafka_broker.end_offsets(target).values()) == 3


def test_replay_offset_range_of_one_partition(
    kafka_broker: KafkaBroker, dlq: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = dlq
    args = ("--partition", "1", "--start-offset", "1", "--end-offset", "2", "--execute")
    code, summary, err = run(capsys, *replay(kafka_broker, source, target, *args))
    assert code == 0, err
    assert summary["read"] == {"1": 2}
    # Partition 1 holds records 1, 3, 5 at offsets 0, 1, 2.
    assert sorted(r.key for r in kafka_broker.consume(target, 2)) == [b"k3", b"k5"]


def test_replay_rate_bound_writes_every_record(
    kafka_broker: KafkaBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    """A low rate still writes everything (only counts are asserted, never durations)."""
    source = kafka_broker.create_topic(kafka_broker.unique_topic("dlq"), partitions=2)
    target = kafka_broker.create_topic(kafka_broker.unique_topic("orders"), partitions=1)
    dead_letters(kafka_broker, source, 40)
    code, summary, err = run(
        capsys, *replay(kafka_broker, source, target, "--execute", "--rate", "20")
    )
    assert code == 0, err
    assert summary["written"] == {"0": 40}
    assert kafka_broker.end_offsets(target) == {0: 40}


def test_replay_refuses_same_topic_and_bad_input(
    kafka_broker: KafkaBroker, dlq: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = dlq
    code, _, err = run(capsys, *replay(kafka_broker, source, source, "--execute"))
    assert code == 2 and f"--target {source} is the source topic" in err
    assert "--allow-same-topic" in err
    assert sum(kafka_broker.end_offsets(source).values()) == 6

    code, _, err = run(capsys, *replay(kafka_broker, source, target, "--since", "2024-05-01"))
    assert code == 2 and "--since '2024-05-01' has no time zone" in err
    code, _, err = run(capsys, *replay(kafka_broker, "no-such-dlq", target))
    assert code == 2 and "--source no-such-dlq: no such topic" in err
    code, _, err = run(capsys, *replay(kafka_broker, source, target, "--start-offset", "1"))
    assert code == 2 and "give --partition N" in err
    code, _, err = run(capsys, *replay(kafka_broker, source, target, "--partition", "7"))
    assert code == 2 and "--partition 7: topic" in err
    with pytest.raises(SystemExit) as exit_info:
        udsink(replay(kafka_broker, source, target, "--rate", "-1"))
    assert exit_info.value.code == 2
    assert "--rate must be >= 0" in capsys.readouterr().err
    assert sum(kafka_broker.end_offsets(target).values()) == 0


def test_replay_same_topic_allowed_ends(
    kafka_broker: KafkaBroker, dlq: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Into itself: the range is fixed first, so the copies are not read again."""
    source, _ = dlq
    code, summary, err = run(
        capsys,
        *replay(kafka_broker, source, source, "--execute", "--rate", "0", "--allow-same-topic"),
    )
    assert code == 0, err
    assert summary["written_total"] == 6
    assert sum(kafka_broker.end_offsets(source).values()) == 12


def test_replay_defaults_from_a_udsink_file(
    kafka_broker: KafkaBroker,
    dlq: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """-f: brokers and source topic from spec.source.kafka, dead-letter topic from the
    fallback; the plan names them."""
    source, target = dlq
    path = tmp_path / "udsink.yaml"
    path.write_text(
        "apiVersion: udsink.dev/v1alpha1\n"
        "kind: UDSink\n"
        "metadata: {name: orders-to-pg, namespace: shop}\n"
        "spec:\n"
        "  source:\n"
        f"    kafka: {{brokers: ['{kafka_broker.bootstrap}'], topics: ['{target}']}}\n"
        "  sink:\n"
        "    log: {}\n"
        "    retryStrategy: {onFailure: fallback}\n"
        f"    fallback: {{kafka: {{brokers: ['{kafka_broker.bootstrap}'], topic: '{source}'}}}}\n"
    )
    code, summary, err = run(capsys, "replay", "-f", str(path), "--execute", "--json")
    assert code == 0, err
    assert (summary["source"], summary["target"]) == (source, target)
    assert summary["brokers"] == kafka_broker.bootstrap
    assert summary["written_total"] == 6
    assert sum(kafka_broker.end_offsets(target).values()) == 6


# --- offsets ---


def udsink_file(tmp_path: Path, broker: KafkaBroker, topic: str, paused: bool = False) -> Path:
    lifecycle = "  lifecycle: {desiredPhase: Paused}\n" if paused else ""
    path = tmp_path / "udsink.yaml"
    path.write_text(
        "apiVersion: udsink.dev/v1alpha1\n"
        "kind: UDSink\n"
        "metadata: {name: orders-to-pg, namespace: shop}\n"
        "spec:\n"
        f"{lifecycle}"
        "  source:\n"
        f"    kafka: {{brokers: ['{broker.bootstrap}'], topics: ['{topic}']}}\n"
        "  sink: {log: {}}\n"
    )
    return path


def commit(broker: KafkaBroker, group: str, topic: str, offsets: dict[int, int]) -> None:
    from confluent_kafka import TopicPartition

    consumer = Consumer(broker.client_config(**{"group.id": group}))
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


@pytest.fixture
def orders(kafka_broker: KafkaBroker) -> str:
    """A 2-partition topic with 5 records in partition 0 and 3 in partition 1."""
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("orders"), partitions=2)
    kafka_broker.produce(
        topic,
        [
            {"partition": p, "value": b"x", "timestamp": BASE_MS + i * 60_000}
            for p, n in ((0, 5), (1, 3))
            for i in range(n)
        ],
    )
    return topic


def test_offsets_shows_lag_of_the_udsinks_group(
    kafka_broker: KafkaBroker, orders: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The group is the operator's default <namespace>.<name>; -n overrides the namespace."""
    commit(kafka_broker, "shop.orders-to-pg", orders, {0: 2})
    path = udsink_file(tmp_path, kafka_broker, orders)
    code, report, err = run(capsys, "offsets", "-f", str(path), "--json")
    assert code == 0, err
    assert report["group"] == "shop.orders-to-pg"
    assert report["state"] in {"EMPTY", "DEAD"}
    assert [(p["partition"], p["committed"], p["end"], p["lag"]) for p in report["partitions"]] == [
        (0, 2, 5, 3),
        (1, None, 3, 3),  # nothing committed: startOffset earliest reads all 3
    ]
    assert report["lag"] == 6

    code, text, err = run(capsys, "offsets", "-f", str(path))
    assert code == 0, err
    assert "group shop.orders-to-pg" in text and "total lag" in text

    code, report, err = run(capsys, "offsets", "-f", str(path), "-n", "staging", "--json")
    assert code == 0, err
    assert report["group"] == "staging.orders-to-pg"
    assert [p["committed"] for p in report["partitions"]] == [None, None]


def test_offsets_reset_refused_while_a_member_consumes(
    kafka_broker: KafkaBroker, orders: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = f"live-{uuid.uuid4().hex[:8]}"
    commit(kafka_broker, group, orders, {0: 4, 1: 2})
    consumer = Consumer(
        kafka_broker.client_config(**{"group.id": group, "enable.auto.commit": False})
    )
    try:
        consumer.subscribe([orders])
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment(), "the test consumer never joined its group"
        base = ("offsets", "--brokers", kafka_broker.bootstrap, "--group", group, "--topic", orders)
        code, text, err = run(capsys, *base, "--to-earliest", "--execute")
        assert code == 1
        assert f"not resetting: group {group} is STABLE with 1 member(s)" in err
        assert "0 -> 0" not in text and "4 -> 0 (-4)" in text  # the plan was printed first
        # A dry run says the same without failing.
        code, report, err = run(capsys, *base, "--to-earliest", "--json")
        assert code == 0 and "refused" in report and "--execute would be refused" in err
    finally:
        consumer.close()
    assert kafka_broker.committed(group, orders) == {0: 4, 1: 2}


def test_offsets_reset_applied_when_the_group_is_empty(
    kafka_broker: KafkaBroker, orders: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = udsink_file(tmp_path, kafka_broker, orders, paused=True)
    group = "shop.orders-to-pg-" + uuid.uuid4().hex[:6]
    commit(kafka_broker, group, orders, {0: 5, 1: 3})
    base = ("offsets", "-f", str(path), "--group", group, "--json")

    code, report, err = run(capsys, *base, "--to-earliest")  # dry run: plan only
    assert code == 0, err
    assert [(s["current"], s["new"]) for s in report["plan"]] == [(5, 0), (3, 0)]
    assert kafka_broker.committed(group, orders) == {0: 5, 1: 3}

    code, report, err = run(capsys, *base, "--to-earliest", "--execute")
    assert code == 0 and report["applied"], err
    assert kafka_broker.committed(group, orders) == {0: 0, 1: 0}

    # Records i are at BASE_MS + i minutes: the first at/after minute 2 is offset 2 in both.
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((BASE_MS + 2 * 60_000) / 1000))
    code, report, err = run(capsys, *base, "--to-datetime", when, "--execute")
    assert code == 0, err
    assert kafka_broker.committed(group, orders) == {0: 2, 1: 2}

    # Skip a poison record: partition 0 moves past offset 2, partition 1 stays.
    args = ("--partition", "0", "--to-offset", "3", "--execute")
    code, report, err = run(capsys, *base, *args)
    assert code == 0, err
    assert kafka_broker.committed(group, orders) == {0: 3, 1: 2}

    code, report, err = run(capsys, *base, "--to-latest", "--execute")
    assert code == 0, err
    assert kafka_broker.committed(group, orders) == {0: 5, 1: 3}


def test_offsets_invalid_input_names_the_flag(
    kafka_broker: KafkaBroker, orders: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = udsink_file(tmp_path, kafka_broker, orders, paused=True)
    base = ("offsets", "-f", str(path))
    code, _, err = run(capsys, *base, "--partition", "0", "--to-offset", "99", "--execute")
    assert code == 2 and "--to-offset 99: partition 0 of" in err and "offsets 0..5" in err
    code, _, err = run(capsys, *base, "--to-offset", "1")
    assert code == 2 and "--to-offset 1 moves one partition; 2 selected" in err
    code, _, err = run(capsys, *base, "--to-datetime", "yesterday")
    assert code == 2 and "--to-datetime 'yesterday' is not an ISO 8601 date-time" in err
    code, _, err = run(capsys, *base, "--topic", "nope")
    assert code == 2 and "--topic nope: no such topic" in err
    code, _, err = run(capsys, "offsets", "-f", str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such file" in err
    code, _, err = run(capsys, "offsets", "--brokers", kafka_broker.bootstrap, "-X", "group.id=x")
    assert code == 2 and "group.id is set by udsink" in err
    with pytest.raises(SystemExit) as exit_info:
        udsink([*base, "--execute"])
    assert exit_info.value.code == 2
    assert "--execute needs one of --to-earliest" in capsys.readouterr().err


# --- as the runtime image runs them: a real `udsink` process, without the cli extra ---

WITHOUT_CLI_EXTRA = (
    "import sys; sys.modules['yaml'] = None; sys.modules['rich'] = None; "
    "from udsink_cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def test_commands_run_without_the_cli_extra(
    kafka_broker: KafkaBroker, dlq: tuple[str, str], orders: str, tmp_path: Path
) -> None:
    """The runtime image has the kafka extra only: flags work; -f names the extras to add."""
    source, target = dlq

    def udsink_process(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", WITHOUT_CLI_EXTRA, *argv],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    done = udsink_process(*replay(kafka_broker, source, target, "--execute"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["written_total"] == 6
    group = f"img-{uuid.uuid4().hex[:8]}"
    commit(kafka_broker, group, orders, {0: 1, 1: 1})
    done = udsink_process(
        "offsets", "--brokers", kafka_broker.bootstrap, "--group", group, "--json"
    )
    assert done.returncode == 0, done.stderr
    assert [p["lag"] for p in json.loads(done.stdout)["partitions"]] == [4, 2]
    done = udsink_process("offsets", "-f", str(udsink_file(tmp_path, kafka_broker, orders)))
    assert done.returncode == 2
    assert "needs the 'kafka,cli' extra (module yaml is not installed)" in done.stderr


def test_replay_interrupted_flushes_and_counts_what_it_sent(
    kafka_broker: KafkaBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C mid-replay: exit 130, and every record the summary counts as written is in the
    target (none sent is left unconfirmed)."""
    source = kafka_broker.create_topic(kafka_broker.unique_topic("dlq"), partitions=2)
    target = kafka_broker.create_topic(kafka_broker.unique_topic("orders"), partitions=1)
    dead_letters(kafka_broker, source, 200)
    argv = replay(kafka_broker, source, target, "--execute", "--rate", "20")
    proc = subprocess.Popen(
        [sys.executable, "-m", "udsink_cli.main", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while kafka_broker.end_offsets(target)[0] < 5 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["outcome"] == "interrupted"
    assert 5 <= summary["written_total"] < 200
    assert summary["written_total"] == summary["read_total"] and summary["failed"] == 0
    assert kafka_broker.end_offsets(target) == {0: summary["written_total"]}


def test_a_file_with_tls_names_the_secret_keys_it_needs(
    kafka_broker: KafkaBroker, orders: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = udsink_file(tmp_path, kafka_broker, orders)
    text = path.read_text().replace(
        "topics: [", "tls: {caCertSecret: {name: kafka-ca, key: ca.crt}}, topics: ["
    )
    path.write_text(text)
    code, _, err = run(capsys, "offsets", "-f", str(path), "--json")
    assert code == 2, err
    assert (
        "spec.source.kafka.tls.caCertSecret (Secret 'kafka-ca' key 'ca.crt'): not given here; "
        "pass --secret kafka-ca/ca.crt=FILE"
    ) in err
