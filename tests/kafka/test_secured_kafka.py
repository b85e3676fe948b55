"""Every Kafka client udsink has, against every secured listener of the real broker.

The session broker has, beside PLAINTEXT, listeners for SSL, SSL with a required client
certificate (mTLS), SASL_SSL with SCRAM-SHA-256/512 and SASL_PLAINTEXT with PLAIN, with
certificates and users made for this run (tests/support/kafka_security.py). Each client is
given a UDSink whose connection names Secret keys, and those keys as `--secret NAME/KEY=FILE`
(what a laptop has instead of the pod's mounted Secrets), and must move records end to end:

- `udsink run`: the data plane's Kafka source and primary Kafka sink; then a user-defined
  sink routing to the fallback (DLQ), serve and on-success Kafka sinks;
- `udsink replay` (reads and writes) and `udsink offsets` (shows, resets).

What happened is read back over the plaintext listener with the broker's own helpers, never
taken from the commands' word. No output may contain a password or the client's key.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.kafka_broker import KafkaBroker
from tests.support.local_run import in_process, run_until
from tests.support.local_run import udsink_file as write_udsink
from tests.support.secured_kafka import MODES, Client, client, secret_values

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
ROUTE_SINK = Path(__file__).resolve().parent / "sinks" / "route_sink.py"
COUNT = 6  # records per run: two for each secondary sink of the routing sink
NAMESPACE = "shop"


def udsink_file(path: Path, name: str, spec: dict[str, Any]) -> Path:
    return write_udsink(path, name, spec, NAMESPACE)


def kafka(c: Client, **fields: Any) -> dict[str, Any]:
    return {**c.connection(), **fields}


def assert_no_secrets(broker: KafkaBroker, *texts: str) -> None:
    for value in secret_values(broker):
        for text in texts:
            assert value not in text, "a secret value appears in the output"


def arrived(broker: KafkaBroker, topic: str, count: int) -> Callable[[object], bool]:
    """True once `topic` holds `count` records (each call is one look, 0.2 s apart)."""

    def check(_: object = None) -> bool:
        time.sleep(0.2)  # between polls of the broker's offsets
        return sum(broker.end_offsets(topic).values()) >= count

    return check


def records(broker: KafkaBroker, topic: str, count: int) -> None:
    broker.produce(
        topic,
        [{"key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(count)],
    )


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest, kafka_broker: KafkaBroker, tmp_path: Path) -> Client:
    return client(kafka_broker, request.param, tmp_path / "secrets")


def test_udsink_run_reads_and_writes_kafka(
    kafka_broker: KafkaBroker, mode: Client, tmp_path: Path
) -> None:
    """The data plane's source and primary Kafka sink, in a local run with a private group."""
    broker = kafka_broker
    src = broker.create_topic(broker.unique_topic("in"))
    out = broker.create_topic(broker.unique_topic("out"))
    records(broker, src, COUNT)
    path = udsink_file(
        tmp_path / "udsink.yaml",
        "secured-copy",
        {"source": {"kafka": kafka(mode, topics=[src])}, "sink": {"kafka": kafka(mode, topic=out)}},
    )
    argv = ["-f", str(path), "--from", "earliest", *mode.secret_args()]
    code, summary, err = run_until(argv, arrived(broker, out, COUNT))
    assert code == 130, err
    assert sorted(r.value for r in broker.consume(out, COUNT)) == [
        f"v{i}".encode() for i in range(COUNT)
    ]
    group = summary["consumer_group"]
    assert group.startswith(f"udsink-run.{NAMESPACE}.secured-copy.")
    assert broker.committed(group, src) == {0: COUNT}
    assert broker.committed(f"{NAMESPACE}.secured-copy", src) == {}
    assert_no_secrets(broker, json.dumps(summary), err)


def test_udsink_run_routes_to_the_secondary_kafka_sinks(
    kafka_broker: KafkaBroker, mode: Client, tmp_path: Path
) -> None:
    """The fallback (DLQ), serve and on-success Kafka sinks, behind a user-defined sink."""
    broker = kafka_broker
    src = broker.create_topic(broker.unique_topic("in"))
    dlq, served, ons = (broker.create_topic(broker.unique_topic(t)) for t in ("dlq", "srv", "ons"))
    records(broker, src, COUNT)
    path = udsink_file(
        tmp_path / "udsink.yaml",
        "secured-route",
        {
            "source": {"kafka": kafka(mode, topics=[src])},
            "sink": {
                "udsink": {"container": {"image": "example.invalid/route-sink:1"}},
                "fallback": {"kafka": kafka(mode, topic=dlq)},
                "serve": {"kafka": kafka(mode, topic=served)},
                "onSuccess": {"kafka": kafka(mode, topic=ons)},
            },
        },
    )
    argv = ["-f", str(path), "--from", "earliest", "--sink-cmd", f"python {ROUTE_SINK}"]
    argv += mode.secret_args()

    def all_routed(_: object) -> bool:
        return all(arrived(broker, t, COUNT // 3)() for t in (dlq, served, ons))

    code, summary, err = run_until(argv, all_routed)
    assert code == 130, err
    assert sorted(r.value for r in broker.consume(dlq, 2)) == [b"v0", b"v3"]
    assert sorted(r.value for r in broker.consume(served, 2)) == [b"served:v1", b"served:v4"]
    assert sorted(r.value for r in broker.consume(ons, 2)) == [b"v2", b"v5"]
    assert broker.committed(summary["consumer_group"], src) == {0: COUNT}
    assert_no_secrets(broker, json.dumps(summary), err)


def test_replay_and_offsets_connect_as_the_udsink_does(
    kafka_broker: KafkaBroker, mode: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = kafka_broker
    dlq = broker.create_topic(broker.unique_topic("dlq"))
    target = broker.create_topic(broker.unique_topic("orders"))
    records(broker, dlq, COUNT)
    path = udsink_file(
        tmp_path / "udsink.yaml",
        "secured-day-two",
        {
            "source": {"kafka": kafka(mode, topics=[target])},
            "sink": {"log": {}, "fallback": {"kafka": kafka(mode, topic=dlq)}},
        },
    )
    secrets = mode.secret_args()
    code, summary, err = in_process(
        capsys, "replay", "-f", str(path), *secrets, "--execute", "--json"
    )
    assert code == 0, err
    assert summary["written_total"] == COUNT
    assert sorted(r.value for r in broker.consume(target, COUNT)) == [
        f"v{i}".encode() for i in range(COUNT)
    ]

    code, shown, err = in_process(capsys, "offsets", "-f", str(path), *secrets, "--json")
    assert code == 0, err
    assert shown["group"] == f"{NAMESPACE}.secured-day-two"
    assert shown["lag"] == COUNT
    code, reset, err = in_process(
        capsys, "offsets", "-f", str(path), *secrets, "--to-latest", "--execute", "--json"
    )
    assert code == 0, err
    assert reset["applied"] is True
    assert broker.committed(f"{NAMESPACE}.secured-day-two", target) == {0: COUNT}
    assert_no_secrets(broker, json.dumps([summary, shown, reset]), err)


DOCS = [REPO / "docs" / "install.md", REPO / "docs" / "operations.md"]
HEREDOC = re.compile(r"<<'YAML'\n(.*?)\nYAML\n", re.DOTALL)
CREATED = re.compile(r"create secret generic (\S+)((?:\s+\\?\s*--from-\w+=[^=\s]+=\S+)+)")


def documented_udsinks() -> list[tuple[str, str, dict[str, Any]]]:
    """(doc, UDSink name, the UDSink) for every applied UDSink with a TLS connection."""
    out = []
    for doc in DOCS:
        for block in HEREDOC.findall(doc.read_text(encoding="utf-8")):
            if "tls:" in block:
                udsink_doc = yaml.safe_load(block)
                out.append((doc.name, udsink_doc["metadata"]["name"], udsink_doc))
    return out


def created_secret_keys(doc: str) -> set[tuple[str, str]]:
    text = (REPO / "docs" / doc).read_text(encoding="utf-8")
    keys = set()
    for name, flags in CREATED.findall(text):
        keys |= {(name, k) for k in re.findall(r"--from-\w+=([^=\s]+)=", flags)}
    return keys


def connections(node: Any) -> list[dict[str, Any]]:
    """Every Kafka connection (a mapping with `brokers`) in the UDSink document."""
    if isinstance(node, dict):
        found = [node] if "brokers" in node else []
        return found + [c for v in node.values() for c in connections(v)]
    if isinstance(node, list):
        return [c for v in node for c in connections(v)]
    return []


@pytest.mark.parametrize(
    ("doc", "name", "document"),
    documented_udsinks(),
    ids=[f"{d}:{n}" for d, n, _ in documented_udsinks()],
)
def test_the_documented_udsinks_connect_as_written(
    kafka_broker: KafkaBroker, doc: str, name: str, document: dict[str, Any], tmp_path: Path
) -> None:
    """The docs' SASL_SSL and mTLS UDSinks, only their brokers and topics pointed at the test
    broker: every Secret key they name is created by the doc's own commands, and `udsink run`
    connects every one of their Kafka clients (it checks each before it starts)."""
    broker = kafka_broker
    topic = broker.create_topic(broker.unique_topic("docs"))
    refs: set[tuple[str, str]] = set()
    for conn in connections(document["spec"]):
        tls = conn.get("tls", {})
        listener = "SCRAM" if "sasl" in conn else "MTLS" if "certSecret" in tls else "SSL"
        conn["brokers"] = [broker.address(listener)]
        if "topics" in conn:
            conn["topics"] = [topic]
        if "topic" in conn:
            conn["topic"] = topic
        refs |= {(r["name"], r["key"]) for r in tls.values() if isinstance(r, dict)}
        for member in conn.get("sasl", {}).values():
            if isinstance(member, dict):
                refs |= {(r["name"], r["key"]) for r in member.values()}
    assert refs and refs <= created_secret_keys(doc), "a Secret key no command of the doc creates"
    mechanism = next(
        (c["sasl"]["mechanism"] for c in connections(document["spec"]) if "sasl" in c), None
    )
    mode = {None: "mtls", "SCRAM-SHA-512": "scram-sha-512", "SCRAM-SHA-256": "scram-sha-256"}
    c = client(broker, mode[mechanism], tmp_path / "secrets")
    given = {ref: c.files[ref] for ref in refs}
    argv = ["-f", str(tmp_path / "u.yaml"), "--sink-cmd", f"python {ROUTE_SINK}"]
    argv += [a for (n, k), f in given.items() for a in ("--secret", f"{n}/{k}={f}")]
    (tmp_path / "u.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    def started(lines: list[str]) -> bool:
        time.sleep(0.2)  # between looks at the run's output
        return any("consumer group" in line for line in lines)

    code, _, err = run_until(argv, started)
    assert code == 130, err
    assert_no_secrets(broker, err)
