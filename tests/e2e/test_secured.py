"""A UDSink on secured Kafka on the real node: it reads over SASL_SSL (SCRAM-SHA-512) with the
CA and the password in Secrets, and writes its dead-letter topic over mTLS with the client
certificate and key in a Secret.

The sink is the example `json_sink.py`: JSON values go to the on-success topic (SASL_SSL
again), the rest to the fallback topic (mTLS). Asserted from outside: what the broker holds,
the group's committed offsets, and that no ConfigMap, env value, annotation, Event or
container log line anywhere in the cluster holds the user name, the password or the private
key. Then the
password is rotated on the broker and in the Secret while records keep coming: the runtime
container notices the kubelet's new Secret file, drains, exits and starts again with the new
password, and every record produced before, during and after the change is stored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from secrets import token_hex, token_urlsafe
from typing import Any

import pytest
import yaml
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from udsink_operator import constants

from sink_runtime.config import constants as runtime_constants
from tests.e2e.support.control_plane import ControlPlane, condition
from tests.e2e.support.helm_release import OperatorRun, ensure_namespace, installed
from tests.e2e.support.node import EXAMPLE_SINKS_IMAGE
from tests.e2e.support.pods import pod_url, pods_of
from tests.e2e.support.reports import Waiter
from tests.e2e.support.udsinks import wait_ready
from tests.support.dataplane_process import http_get
from tests.support.kafka_broker import KafkaBroker
from tests.support.kafka_security import SaslUser
from tests.support.secured_kafka import CA, CLIENT_CERT, PASSWORD, USERNAME, client
from tests.support.udsink_doc import udsink_doc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

NAMESPACE = "secured"
REFUSED_NAMESPACE = "secured-refused"
NAME = "secured"
GROUP = f"{NAME}-group"
MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
# How the data plane names a changed Secret file (sink_runtime.dataplane.secret_files).
# What /readyz and the log say when the brokers refuse the SCRAM credentials.
REFUSAL = (
    f"the brokers refused the {MECHANISM} credentials of "
    f"spec.source.kafka.sasl.scramsha512.userSecret (Secret {USERNAME[0]!r} key "
    f"{USERNAME[1]!r}) and spec.source.kafka.sasl.scramsha512.passwordSecret (Secret "
    f"{PASSWORD[0]!r} key {PASSWORD[1]!r}): "
)
PASSWORD_FIELD = (
    f"spec.source.kafka.sasl.scramsha512.passwordSecret (Secret {PASSWORD[0]!r} key "
    f"{PASSWORD[1]!r})"
)
# How soon a refusal reaches the UDSink's Ready condition (docs/operations.md: within 90 s of
# the pod's start; counted here from the refusal first seen in /readyz, which is later).
STATUS_BOUND_S = 90.0


@pytest.fixture(scope="module")
def operator(control_plane: ControlPlane, helm_bin: Path) -> Iterator[OperatorRun]:
    with installed(
        control_plane,
        helm_bin,
        "secured-operator",
        "udsink-secured",
        values=["watch.clusterWide=true"],
    ) as run:
        ensure_namespace(control_plane, NAMESPACE)
        yield run


def set_scram_password(broker: KafkaBroker, user: SaslUser) -> None:
    """Create or change a SCRAM user on the broker (KRaft keeps it in the metadata log)."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    admin = AdminClient(broker.client_config())
    upsert = UserScramCredentialUpsertion(user.username, info, user.password.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)


def scram_accepts(broker: KafkaBroker, user: SaslUser) -> bool:
    """Whether the SASL_SSL listener lets `user` in (a metadata request succeeds)."""
    tls = broker.security().tls
    admin = AdminClient(
        broker.client_config(
            **{
                "bootstrap.servers": broker.address("SCRAM"),
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": MECHANISM,
                "sasl.username": user.username,
                "sasl.password": user.password,
                "ssl.ca.location": str(tls.ca),
            }
        )
    )
    try:
        return bool(admin.list_topics(timeout=10).brokers)
    except KafkaException:
        return False


def secret_yaml(name: str, values: dict[str, str], namespace: str = NAMESPACE) -> str:
    """A Secret for `kubectl replace`/`create` from stdin: no last-applied annotation copies
    its values, as `kubectl apply` would."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": values,
        }
    )


def create_secrets(
    plane: ControlPlane,
    files: dict[tuple[str, str], Path],
    user: SaslUser,
    namespace: str = NAMESPACE,
) -> None:
    for name in sorted({CA[0], CLIENT_CERT[0]}):
        values = {
            key: files[(secret, key)].read_text() for (secret, key) in files if secret == name
        }
        plane.kubectl("create", "-f", "-", stdin=secret_yaml(name, values, namespace))
    plane.kubectl("create", "-f", "-", stdin=user_secret(user, namespace))


def user_secret(user: SaslUser, namespace: str = NAMESPACE) -> str:
    values = {USERNAME[1]: user.username, PASSWORD[1]: user.password}
    return secret_yaml(USERNAME[0], values, namespace)


def udsink(scram: dict[str, Any], mtls: dict[str, Any], topics: Topics) -> str:
    spec = {
        "replicas": 1,
        "source": {
            "kafka": {
                **scram,
                "topics": [topics.source],
                "consumerGroup": GROUP,
                "startOffset": "earliest",
            }
        },
        "batch": {"size": 50, "timeout": "200ms"},
        "sink": {
            "udsink": {"container": {"image": EXAMPLE_SINKS_IMAGE, "args": ["/app/json_sink.py"]}},
            "onSuccess": {"kafka": {**scram, "topic": topics.output, "setKey": True}},
            "fallback": {"kafka": {**mtls, "topic": topics.dlq, "setKey": True}},
        },
    }
    return yaml.safe_dump(udsink_doc(NAME, spec, namespace=NAMESPACE), sort_keys=False)


class Topics:
    def __init__(self, broker: KafkaBroker) -> None:
        self.source = broker.create_topic(broker.unique_topic("orders"), partitions=2)
        self.output = broker.create_topic(broker.unique_topic("stored"))
        self.dlq = broker.create_topic(broker.unique_topic("dlq"))


def is_json(i: int) -> bool:
    return i % 4 != 0


def records(start: int, count: int) -> list[dict[str, Any]]:
    """Three in four are JSON (stored), every fourth is not (dead-lettered)."""
    return [
        {
            "key": f"k-{i}".encode(),
            "value": json.dumps({"order": i}).encode() if is_json(i) else f"order {i}".encode(),
        }
        for i in range(start, start + count)
    ]


def all_stored(broker: KafkaBroker, topics: Topics, sent: int) -> bool:
    """Every JSON record of the first `sent` is in the output topic, every other one in the
    dead-letter topic with the fallback status header (at least once), and the group has
    committed the source to its end."""
    stored = {r.key for r in broker.consume_all(topics.output)}
    dead = {
        r.key
        for r in broker.consume_all(topics.dlq)
        if r.header(runtime_constants.FALLBACK_STATUS_HEADER) == b"FALLBACK"
    }
    want_stored = {f"k-{i}".encode() for i in range(sent) if is_json(i)}
    want_dead = {f"k-{i}".encode() for i in range(sent) if not is_json(i)}
    return (
        want_stored <= stored
        and want_dead <= dead
        and broker.committed_to_end(GROUP, topics.source)
    )


class Background(threading.Thread):
    """Produces a few records at a time until stopped (records during the rotation)."""

    def __init__(self, broker: KafkaBroker, topic: str, start: int) -> None:
        super().__init__(daemon=True)
        self.broker, self.topic, self.next = broker, topic, start
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.done.wait(0.5):
                self.broker.produce(self.topic, records(self.next, 10))
                self.next += 10
        except BaseException as err:  # reported by finish()
            self.error = err

    def finish(self) -> int:
        self.done.set()
        self.join(timeout=120)
        assert self.error is None, f"producing failed: {self.error!r}"
        return self.next


def runtime_status(plane: ControlPlane) -> dict[str, Any]:
    (pod,) = pods_of(plane, NAMESPACE, NAME)
    found: dict[str, Any] = next(
        s
        for s in pod["status"]["containerStatuses"]
        if s["name"] == runtime_constants.CONTAINER_RUNTIME
    )
    return found


def all_logs(plane: ControlPlane, op: OperatorRun) -> str:
    """Every container's log in the UDSink's namespace (the ones before a restart too) and the
    operator's."""
    parts = [op.log_text()]
    for pod in plane.get_json("pods", f"--namespace={NAMESPACE}")["items"]:
        statuses = [
            *pod["status"].get("initContainerStatuses", []),
            *pod["status"].get("containerStatuses", []),
        ]
        for status in statuses:
            args = ["logs", pod["metadata"]["name"], "-c", status["name"], "-n", NAMESPACE]
            parts.append(plane.kubectl(*args).stdout)
            if status.get("restartCount"):
                parts.append(plane.kubectl(*args, "--previous").stdout)
    return "\n".join(parts)


def leaks(plane: ControlPlane, op: OperatorRun, secrets: list[str]) -> dict[str, list[int]]:
    """Where any of `secrets` shows: every ConfigMap, Pod (env values, annotations), Deployment,
    ReplicaSet, UDSink and Event in the cluster, every Secret's metadata, every log read."""
    texts = {
        kind: plane.kubectl("get", kind, "--all-namespaces", "-o", "json").stdout
        for kind in ("configmaps", "pods", "deployments", "replicasets", "udsinks", "events")
    }
    secret_meta = [s["metadata"] for s in plane.get_json("secrets", "--all-namespaces")["items"]]
    texts["secrets' metadata"] = json.dumps(secret_meta)
    texts["logs"] = all_logs(plane, op)
    assert op.deployment in texts["pods"] and NAME in texts["logs"], "nothing was scanned"
    found: dict[str, list[int]] = {}
    for where, text in texts.items():
        hits = [i for i, value in enumerate(secrets) if value in text]
        if hits:
            found[where] = hits
    return found


def test_sasl_ssl_source_and_mtls_dead_letters_keep_secrets_out_and_survive_a_rotation(
    control_plane: ControlPlane, operator: OperatorRun, broker: KafkaBroker, tmp_path: Path
) -> None:
    plane = control_plane
    until = Waiter(plane, operator, NAMESPACE).until
    user = SaslUser(MECHANISM, f"rotating-{token_hex(3)}", token_urlsafe(24))
    set_scram_password(broker, user)
    scram_client = replace(client(broker, "scram-sha-512", tmp_path), user=user)
    mtls_client = client(broker, "mtls", tmp_path)
    create_secrets(plane, mtls_client.files, user)
    topics = Topics(broker)
    manifest = udsink(scram_client.connection(), mtls_client.connection(), topics)
    plane.kubectl("apply", "-f", "-", stdin=manifest)
    wait_ready(plane, operator, NAMESPACE, NAME, pods=1)

    # Before the change: JSON records stored over SASL_SSL, the rest dead-lettered over mTLS.
    before = 200
    broker.produce(topics.source, records(0, before))
    until(lambda: all_stored(broker, topics, before), f"{before} records stored or dead-lettered")
    key = broker.security().tls.secret_values()
    assert leaks(plane, operator, [user.username, user.password, *key]) == {}

    # The change: the broker first, then the Secret, with records coming all along.
    background = Background(broker, topics.source, before)
    background.start()
    started = runtime_status(plane)["restartCount"]
    rotated = replace(user, password=token_urlsafe(24))
    set_scram_password(broker, rotated)
    until(
        lambda: scram_accepts(broker, rotated) and not scram_accepts(broker, user),
        "the broker taking the new password only",
        within=60,
    )
    plane.kubectl("replace", "-f", "-", stdin=user_secret(rotated))
    # The kubelet rewrites the mounted file within its sync period; the runtime then drains,
    # exits 0 and the kubelet starts it again.
    restarted = until(
        lambda: s if (s := runtime_status(plane))["restartCount"] > started else None,
        "the runtime container restarting for the new password",
        within=300,
    )
    assert restarted["lastState"]["terminated"]["exitCode"] == 0, restarted
    wait_ready(plane, operator, NAMESPACE, NAME, pods=1)
    during = background.finish()

    # After: only the new password opens the listener, so what is read and committed now was
    # read by the new process with the new password.
    total = during + 100
    broker.produce(topics.source, records(during, total - during))
    until(
        lambda: all_stored(broker, topics, total),
        f"all {total} records (before, during and after the change) stored or dead-lettered",
    )
    (pod,) = pods_of(plane, NAMESPACE, NAME)
    previous = plane.kubectl(
        "logs",
        pod["metadata"]["name"],
        "-c",
        runtime_constants.CONTAINER_RUNTIME,
        "-n",
        NAMESPACE,
        "--previous",
    ).stdout
    assert f"secret files changed: {PASSWORD_FIELD}" in previous, previous[-3000:]
    assert leaks(plane, operator, [user.username, user.password, rotated.password, *key]) == {}
    plane.kubectl("delete", "udsink", NAME, "-n", NAMESPACE, "--timeout=60s")


def readyz(pod: dict[str, Any]) -> tuple[int, str]:
    """The pod's /readyz, read from its IP on the node's bridge: status and body."""
    return http_get(pod_url(pod, "/readyz"))


def test_a_wrong_password_shows_in_readyz_the_log_and_the_status_and_the_fix_is_used(
    control_plane: ControlPlane, operator: OperatorRun, broker: KafkaBroker, tmp_path: Path
) -> None:
    plane, namespace, name = control_plane, REFUSED_NAMESPACE, "refused"
    wait = Waiter(plane, operator, namespace)
    ensure_namespace(plane, namespace)
    user = SaslUser(MECHANISM, f"refused-{token_hex(3)}", token_urlsafe(24))
    set_scram_password(broker, user)
    wrong = replace(user, password=token_urlsafe(24))
    scram_client = replace(client(broker, "scram-sha-512", tmp_path), user=user)
    create_secrets(plane, scram_client.files, wrong, namespace)
    source = broker.create_topic(broker.unique_topic("orders"))
    broker.produce(source, records(0, 20))
    kafka = {**scram_client.connection(), "topics": [source], "consumerGroup": name}
    doc = udsink_doc(name, {"source": {"kafka": kafka}, "sink": {"log": {}}}, namespace=namespace)
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))

    def refused() -> str | None:
        for pod in pods_of(plane, namespace, name):
            if pod["status"].get("podIP"):
                status, body = readyz(pod)
                if status == 503 and REFUSAL in body:
                    return body
        return None

    body = wait.until(refused, "/readyz naming the refused credentials", within=180)
    assert f"kafka brokers {broker.address('SCRAM')} unreachable: {REFUSAL}" in body, body
    log = plane.kubectl(
        "logs", f"deploy/{name}", "-c", runtime_constants.CONTAINER_RUNTIME, "-n", namespace
    ).stdout
    assert REFUSAL in log, log[-3000:]

    # The refusal lasts: the runtime ends with it, and the operator shows it in Ready.
    def failing() -> dict[str, Any] | None:
        found = plane.get_json("udsink", name, "-n", namespace)
        ready = condition(found, constants.CONDITION_READY)
        return found if ready.get("reason") == constants.REASON_RUNTIME_FAILING else None

    udsink = wait.until(failing, "Ready naming the refused Secret key", within=STATUS_BOUND_S)
    ready = condition(udsink, constants.CONDITION_READY)
    assert ready["status"] == "False", ready
    assert PASSWORD_FIELD in ready["message"], ready
    assert REFUSAL in ready["message"], ready
    assert udsink["status"]["message"] == ready["message"]
    ended = [
        c["lastState"]["terminated"]
        for pod in pods_of(plane, namespace, name)
        for c in pod["status"].get("containerStatuses") or []
        if c["name"] == runtime_constants.CONTAINER_RUNTIME and c["lastState"].get("terminated")
    ]
    assert ended and all(t["exitCode"] == 3 for t in ended), ended
    secrets = [wrong.password, user.password, user.username]
    for where, text in (("/readyz", body), ("log", log), ("UDSink", json.dumps(udsink))):
        assert not [v for v in secrets if v in text], f"a secret value in the {where}"

    # The right password into the Secret: the runtime restarts with it and becomes ready.
    assert broker.committed(name, source) == {}, "committed while the brokers refused it"
    plane.kubectl("replace", "-f", "-", stdin=user_secret(user, namespace))
    wait_ready(plane, operator, namespace, name, pods=1)
    ready = condition(plane.get_json("udsink", name, "-n", namespace), constants.CONDITION_READY)
    assert ready["reason"] != constants.REASON_RUNTIME_FAILING, ready
    assert "refused" not in ready["message"], ready
    wait.until(
        lambda: broker.committed_to_end(name, source),
        "the records read and committed with the right password",
        within=90,
    )
    plane.kubectl("delete", "udsink", name, "-n", namespace, "--timeout=60s")
