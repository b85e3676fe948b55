"""A client the brokers refuse says what to fix, quickly, and commits nothing.

Each case is a real refusal by the session broker's secured listeners (tests/support/
kafka_security.py): a wrong SCRAM password, an unknown user, a CA that did not sign the
broker's certificate, a certificate for another host, an expired one, no client certificate on
the mTLS listener, TLS against the plaintext listener, plaintext against a TLS one (which
librdkafka reports as nothing but closed connections). Locally (`udsink offsets`, `udsink
run`) the command ends within REFUSAL_BOUND_S with exit 1 and one message naming the UDSink
field, the Secret key and librdkafka's reason; in a pod (the data plane as its container runs
it) /readyz and the log say the same within the bound, and a refusal that lasts ends the data
plane with exit 3 and the same words in its termination message (for the UDSink's status). No
output holds a secret's value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from udsink_cli.main import main as udsink

from sink_runtime.config import (
    BatchConfig,
    BlackholeSinkConfig,
    KafkaSinkConfig,
    KafkaSourceConfig,
    ObservabilityConfig,
    RuntimeConfig,
)
from sink_runtime.dataplane.app import EXIT_KAFKA_REFUSED, run_dataplane
from tests.support.dataplane_process import DataPlaneProcess
from tests.support.kafka_broker import KafkaBroker
from tests.support.local_run import run_to_end
from tests.support.local_run import udsink_file as write_udsink
from tests.support.ports import free_port
from tests.support.secured_kafka import PASSWORD, USERNAME, Client, client, secret_values

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
# The bound docs/operations.md promises for a refusal to be reported (it takes milliseconds:
# librdkafka reports it on the first connection; the rest is process start-up).
REFUSAL_BOUND_S = 5.0
POD_BOUND_S = 15.0  # the data plane's first probe and consume, then the reason in /readyz
WRONG_PASSWORD = "certainly-not-the-password-0123456789"

# case -> (client made from the broker, fragments the message must hold)
Case = Callable[[KafkaBroker, Path], Client]
CASES: dict[str, tuple[Case, list[str]]] = {
    "wrong-password": (
        lambda b, d: client(b, "scram-sha-512", d).with_secret(PASSWORD, WRONG_PASSWORD, d),
        [
            "the brokers refused the SCRAM-SHA-512 credentials of ",
            "sasl.scramsha512.passwordSecret (Secret 'kafka-user' key 'password')",
            "invalid credentials with SASL mechanism SCRAM-SHA-512",
        ],
    ),
    "unknown-user": (
        lambda b, d: client(b, "scram-sha-256", d).with_secret(USERNAME, "nobody-here", d),
        [
            "sasl.scramsha256.userSecret (Secret 'kafka-user' key 'username')",
            "invalid credentials with SASL mechanism SCRAM-SHA-256",
        ],
    ),
    "untrusted-ca": (
        lambda b, d: client(b, "ssl", d).with_ca(_tls(b).other_ca),
        [
            "does not verify against ",
            "tls.caCertSecret (Secret 'kafka-ca' key 'ca.crt') (self-signed certificate in "
            "certificate chain)",
            "certificate verify failed",
        ],
    ),
    "wrong-host": (
        lambda b, d: client(b, "ssl", d).at(b.address("WRONGHOST")),
        ["tls.caCertSecret (Secret 'kafka-ca' key 'ca.crt') (IP address mismatch"],
    ),
    "expired": (
        lambda b, d: client(b, "ssl", d).at(b.address("EXPIRED")),
        ["tls.caCertSecret (Secret 'kafka-ca' key 'ca.crt') (certificate has expired)"],
    ),
    "no-client-cert": (
        lambda b, d: client(b, "ssl", d).at(b.address("MTLS")),
        ["want a client certificate (mutual TLS) and ", "has no certSecret/keySecret", "alert"],
    ),
    "plaintext-to-tls": (
        lambda b, d: client(b, "sasl-plain", d).at(b.address("SCRAM")),
        ["spec.source.kafka.tls is not set (plaintext), but ", "is a TLS listener: set tls"],
    ),
    "tls-to-plaintext": (
        lambda b, d: client(b, "ssl", d).at(b.bootstrap),
        [".tls is set, but ", "is a plaintext listener (no TLS): "],
    ),
}


def _tls(broker: KafkaBroker) -> Any:
    assert broker.tls is not None
    return broker.tls


def assert_no_secrets(broker: KafkaBroker, text: str) -> None:
    for value in [*secret_values(broker), WRONG_PASSWORD]:
        assert value not in text, "a secret value appears in the output"


def udsink_file(path: Path, name: str, source: Client, sink: dict[str, Any]) -> Path:
    kafka = {**source.connection(), "topics": ["orders"]}
    return write_udsink(path, name, {"source": {"kafka": kafka}, "sink": sink})


@pytest.mark.parametrize("case", list(CASES))
def test_udsink_offsets_names_what_to_fix(
    kafka_broker: KafkaBroker, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, fragments = CASES[case]
    c = make(kafka_broker, tmp_path)
    path = udsink_file(tmp_path / "udsink.yaml", "refused", c, {"log": {}})
    capsys.readouterr()
    started = time.monotonic()
    code = udsink(["offsets", "-f", str(path), *c.secret_args(), "--json"])
    took = time.monotonic() - started
    _, err = capsys.readouterr()
    assert code == 1, err
    assert took < REFUSAL_BOUND_S, f"took {took:.1f}s: {err}"
    assert err.startswith("udsink offsets: "), err
    for fragment in fragments:
        assert fragment in err, err
    assert "spec.source.kafka." in err
    assert_no_secrets(kafka_broker, err)


def groups(broker: KafkaBroker) -> list[str]:
    admin = AdminClient(broker.client_config())
    return [g.group_id for g in admin.list_consumer_groups().result(timeout=10).valid]


@pytest.mark.parametrize("where", ["source", "sink"])
def test_udsink_run_ends_at_once_and_commits_nothing(
    kafka_broker: KafkaBroker, where: str, tmp_path: Path
) -> None:
    """A wrong password on the source, or on the Kafka sink (the other one plaintext): exit 1
    before anything runs."""
    bad = client(kafka_broker, "scram-sha-512", tmp_path / "s")
    bad = bad.with_secret(PASSWORD, WRONG_PASSWORD, tmp_path)
    plaintext = Client(kafka_broker.bootstrap, tls=False, client_cert=False, user=None)
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("orders"))
    kafka_broker.produce(topic, [{"value": b"v"}])
    name = f"refused-{where}"
    source, sink = (bad, plaintext) if where == "source" else (plaintext, bad)
    path = udsink_file(
        tmp_path / "udsink.yaml",
        name,
        source,
        {"kafka": {**sink.connection(), "topic": topic}},
    )
    path.write_text(path.read_text().replace("- orders", f"- {topic}"))
    started = time.monotonic()
    code, out, err = run_to_end(["-f", str(path), *bad.secret_args()])
    took = time.monotonic() - started
    assert code == 1, err
    assert took < REFUSAL_BOUND_S + 5.0, f"took {took:.1f}s"  # + the interpreter's start
    field = "spec.source.kafka" if where == "source" else "spec.sink.kafka"
    assert f"{field}.sasl.scramsha512.passwordSecret (Secret 'kafka-user' key 'password')" in err
    assert json.loads(out)["outcome"] == "failed"
    assert_no_secrets(kafka_broker, out + err)
    assert not [g for g in groups(kafka_broker) if g.startswith(f"udsink-run.shop.{name}.")]
    assert kafka_broker.committed(f"shop.{name}", topic) == {}


def test_a_pod_says_why_in_readyz_and_its_log(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    """The data plane as its container runs it, with a wrong password in its mounted Secret."""
    c = client(kafka_broker, "scram-sha-512", tmp_path / "s")
    c = c.with_secret(PASSWORD, WRONG_PASSWORD, tmp_path)
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("orders"))
    kafka_broker.produce(topic, [{"value": b"v"}])
    group = "shop.refused-pod"
    config = RuntimeConfig(
        name="refused-pod",
        namespace="shop",
        source=KafkaSourceConfig(
            brokers=[c.address], topics=[topic], consumer_group=group, **c.runtime(tmp_path)
        ),
        sink=BlackholeSinkConfig(),
        batch=BatchConfig(size=10, timeout_ms=100),
    )
    dp = DataPlaneProcess(tmp_path, config)
    dp.start()
    try:
        expected = (
            "spec.source.kafka.sasl.scramsha512.passwordSecret (Secret 'kafka-user' key "
            "'password'): SASL authentication error"
        )
        deadline = time.monotonic() + POD_BOUND_S
        status, body = dp.get("/readyz")
        while expected not in body and time.monotonic() < deadline:
            assert dp.proc is not None and dp.proc.poll() is None, dp.describe()
            time.sleep(0.2)  # between looks at /readyz
            status, body = dp.get("/readyz")
        assert status == 503, dp.describe()
        assert expected in body, dp.describe()
        assert expected in dp.log(), dp.describe()
        assert kafka_broker.committed(group, topic) == {}
    finally:
        dp.stop()
    assert_no_secrets(kafka_broker, dp.log() + body)


# A bound of the test's own: the pod's is KAFKA_REFUSED_LIMIT_S, the same code path.
TEST_REFUSED_LIMIT_S = 3.0


@pytest.mark.parametrize("where", ["source", "sink"])
async def test_a_lasting_refusal_ends_the_runtime_with_its_reason(
    kafka_broker: KafkaBroker, where: str, tmp_path: Path
) -> None:
    """A wrong password on the source, or on the primary Kafka sink (the source plaintext,
    a record waiting): the data plane drains, writes why to the termination message file
    and exits 3; nothing is committed."""
    bad = client(kafka_broker, "scram-sha-512", tmp_path / "s")
    bad = bad.with_secret(PASSWORD, WRONG_PASSWORD, tmp_path)
    topic = kafka_broker.create_topic(kafka_broker.unique_topic("orders"))
    kafka_broker.produce(topic, [{"value": b"v"}])
    group = f"shop.refused-{where}"
    if where == "source":
        source = KafkaSourceConfig(
            brokers=[bad.address], topics=[topic], consumer_group=group, **bad.runtime(tmp_path)
        )
        sink: BlackholeSinkConfig | KafkaSinkConfig = BlackholeSinkConfig()
    else:
        source = KafkaSourceConfig(
            brokers=[kafka_broker.bootstrap],
            topics=[topic],
            consumer_group=group,
            start_offset="earliest",
        )
        sink = KafkaSinkConfig(brokers=[bad.address], topic=f"{topic}-out", **bad.runtime(tmp_path))
    config = RuntimeConfig(
        name=f"refused-{where}",
        namespace="shop",
        source=source,
        sink=sink,
        batch=BatchConfig(size=10, timeout_ms=100),
        shutdown_grace_ms=2000,
        observability=ObservabilityConfig(metrics_host="127.0.0.1", metrics_port=free_port()),
    )
    termination_log = tmp_path / "termination-log"
    termination_log.write_text("")  # the kubelet provides the file
    code = await run_dataplane(
        config,
        handle_signals=False,
        termination_message_path=str(termination_log),
        refused_limit_s=TEST_REFUSED_LIMIT_S,
    )
    message = termination_log.read_text()
    assert code == EXIT_KAFKA_REFUSED, message
    field = "spec.source.kafka" if where == "source" else "spec.sink.kafka"
    assert message.startswith(
        f"kafka refused the connection for {TEST_REFUSED_LIMIT_S:.0f}s: "
        + ("kafka source: " if where == "source" else "kafka sink primary: ")
    ), message
    assert f"{field}.sasl.scramsha512.passwordSecret (Secret 'kafka-user' key 'password')" in (
        message
    )
    assert "SASL authentication error" in message
    assert_no_secrets(kafka_broker, message)
    assert kafka_broker.committed(group, topic) == {}
