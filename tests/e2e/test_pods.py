"""Messages really flow through real pods: Kafka -> the runtime container -> the sink sidecar ->
Kafka, on the session's node, with the images built here.

Each scenario is asserted from outside the pods: what the broker holds (the output topic, the
group's committed offsets), what kubectl reports, what the pods log and serve on /metrics.
The sink is the example SDK sink `on_success_sink.py` from the example-sinks image: it answers
ON_SUCCESS with a follow-up message carrying the datum's keys, value and headers, and the
UDSink's on-success Kafka sink writes that to an output topic the test reads back.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient
from udsink_cli import convert
from udsink_operator import constants

from sink_runtime.config import constants as runtime_constants
from sink_runtime.config import memory as runtime_memory
from tests.e2e.support.control_plane import ControlPlane, condition
from tests.e2e.support.helm_release import OperatorRun, ensure_namespace, installed
from tests.e2e.support.node import EXAMPLE_SINKS_IMAGE, Node
from tests.e2e.support.pods import pod_report, pod_url, pods_of
from tests.e2e.support.reports import Waiter, eventually
from tests.e2e.support.udsinks import wait_ready
from tests.support.kafka_broker import KafkaBroker, Record
from tests.support.prometheus import scrape
from tests.support.udsink_doc import udsink_doc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

NAMESPACE = "flow"


@pytest.fixture(scope="module")
def operator(control_plane: ControlPlane, helm_bin: Path) -> Iterator[OperatorRun]:
    with installed(
        control_plane, helm_bin, "flow-operator", "udsink-flow", values=["watch.clusterWide=true"]
    ) as run:
        ensure_namespace(control_plane, NAMESPACE)
        yield run


def udsink_manifest(
    name: str, broker: KafkaBroker, source: str, output: str, *, replicas: int = 1, **spec: Any
) -> str:
    """A UDSink: `source` topic -> the example on-success sink -> `output` topic."""
    sink = {
        "udsink": {
            "container": {"image": EXAMPLE_SINKS_IMAGE, "args": ["/app/on_success_sink.py"]}
        },
        "onSuccess": {"kafka": kafka_output(broker, output)},
    }
    return yaml.safe_dump(
        manifest(name, broker, source, replicas=replicas, sink=sink, **spec), sort_keys=False
    )


def kafka_output(broker: KafkaBroker, topic: str) -> dict[str, Any]:
    """A Kafka sink writing the record key from the keys and the message's own headers."""
    return {
        "brokers": [broker.bootstrap],
        "topic": topic,
        "setKey": True,
        "headers": {"keys": "none", "propagate": True},
    }


def manifest(
    name: str, broker: KafkaBroker, source: str, *, replicas: int, **spec: Any
) -> dict[str, Any]:
    kafka = {
        "brokers": [broker.bootstrap],
        "topics": [source],
        "consumerGroup": f"{name}-group",
        "startOffset": "earliest",
    }
    base = {
        "replicas": replicas,
        "source": {"kafka": kafka},
        "batch": {"size": 50, "timeout": "200ms"},
    }
    return udsink_doc(name, {**base, **spec}, namespace=NAMESPACE)


def keyed_records(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "key": f"customer-{i % 7}".encode(),
            "value": f"order-{i}".encode(),
            "headers": [("trace", f"trace-{i}".encode()), ("seq", str(i).encode())],
        }
        for i in range(start, start + count)
    ]


def delivered(broker: KafkaBroker, topic: str, sent: int) -> dict[str, Record] | None:
    """The output records by value once every one of the `sent` inputs is there (at least
    once: a redelivery may add duplicates, never lose one)."""
    by_value = {r.value.decode(): r for r in broker.consume_all(topic) if r.value is not None}
    return by_value if all(f"order-{i}" in by_value for i in range(sent)) else None


def metrics_of(pod: dict[str, Any]) -> dict[str, float]:
    """The pod's /metrics, read from its IP on the node's bridge: sample name+labels -> value."""
    return scrape(pod_url(pod, "/metrics"))


def check_records(out: dict[str, Record], source: str, sent: int) -> None:
    """Keys and headers arrived intact: the record key and every header of the input, plus
    the headers the example sink adds."""
    for i in range(sent):
        record = out[f"order-{i}"]
        check_keys_and_headers(record, i)
        assert record.header("x-stored-by") == b"on-success-example", record
        assert record.header("x-source-id").decode().startswith(f"{source}:"), record


def check_keys_and_headers(record: Record, i: int) -> None:
    assert record.key == f"customer-{i % 7}".encode(), record
    assert record.header("trace") == f"trace-{i}".encode(), record
    assert record.header("seq") == str(i).encode(), record


def all_stored(
    wait: Waiter, broker: KafkaBroker, name: str, source: str, output: str, sent: int
) -> None:
    """Every one of `sent` inputs reached `output` intact, and the UDSink's group has
    committed `source` to its end."""
    out = wait.until(lambda: delivered(broker, output, sent), f"{sent} records in {output}")
    check_records(out, source, sent)
    wait.until(
        lambda: broker.committed_to_end(f"{name}-group", source), f"{name}'s offsets committed"
    )


def test_records_flow_through_the_sink_sidecar_with_keys_and_headers(
    control_plane: ControlPlane, operator: OperatorRun, broker: KafkaBroker
) -> None:
    plane, wait = control_plane, Waiter(control_plane, operator, NAMESPACE)
    source = broker.create_topic(broker.unique_topic("orders"), partitions=2)
    output = broker.create_topic(broker.unique_topic("stored"))
    plane.kubectl("apply", "-f", "-", stdin=udsink_manifest("flow", broker, source, output))
    wait_ready(plane, operator, NAMESPACE, "flow", pods=1)
    sent = 300
    broker.produce(source, keyed_records(0, sent))
    all_stored(wait, broker, "flow", source, output, sent)
    udsink = plane.get_json("udsink", "flow", "-n", NAMESPACE)
    assert condition(udsink, constants.CONDITION_READY)["status"] == "True"
    # Scenario 8: the runtime's structured logs through `kubectl logs`, its counters on /metrics.
    logs = plane.kubectl(
        "logs", "deploy/flow", "-c", runtime_constants.CONTAINER_RUNTIME, "-n", NAMESPACE
    ).stdout
    entries = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert entries, f"no JSON log lines from the runtime:\n{logs[-2000:]}"
    assert all({"level", "message"} <= entry.keys() for entry in entries), entries[:3]
    # The runtime image was built with the Kafka source's C module (its wheel stage compiles it).
    joined = [e["message"] for e in entries if "joining group" in e["message"]]
    assert joined and "records converted in C" in joined[0], joined or logs[-2000:]
    (pod,) = pods_of(plane, NAMESPACE, "flow")
    samples = wait.until(
        lambda: m if (m := metrics_of(pod)).get("udsink_acked_total") == sent else None,
        f"udsink_acked_total == {sent} on the pod's /metrics",
    )
    assert samples["udsink_read_total"] == sent
    assert samples["udsink_on_success_total"] == sent
    # The sidecar started before the runtime and is still the one it started with.
    sidecar = next(
        s
        for s in pod["status"]["initContainerStatuses"]
        if s["name"] == runtime_constants.CONTAINER_UDSINK
    )
    assert sidecar["started"] and sidecar["restartCount"] == 0, sidecar
    plane.kubectl("delete", "udsink", "flow", "-n", NAMESPACE, "--timeout=60s")
    wait.until(lambda: not pods_of(plane, NAMESPACE, "flow"), "the pods of flow going away")


def test_three_replicas_share_the_partitions(
    control_plane: ControlPlane, operator: OperatorRun, broker: KafkaBroker
) -> None:
    plane, wait = control_plane, Waiter(control_plane, operator, NAMESPACE)
    source = broker.create_topic(broker.unique_topic("orders"), partitions=3)
    output = broker.create_topic(broker.unique_topic("stored"))
    plane.kubectl("apply", "-f", "-", stdin=udsink_manifest("shared", broker, source, output))
    wait_ready(plane, operator, NAMESPACE, "shared", pods=1)
    plane.kubectl("scale", "udsink/shared", "--replicas=3", "-n", NAMESPACE)
    wait_ready(plane, operator, NAMESPACE, "shared", pods=3)
    check_resources_and_spread(plane, "shared", pods=3)
    # Ready pods are not yet a settled group: the rebalance that gives the new members their
    # partitions may still be under way, and what is produced before it ends goes to the
    # first member alone.
    eventually(
        lambda: members_with_partitions(broker, "shared-group") == 3,
        "3 members of shared-group, each with partitions",
        lambda: pod_report(plane, NAMESPACE),
    )
    sent = 600
    broker.produce(source, keyed_records(0, sent))
    all_stored(wait, broker, "shared", source, output, sent)
    reads = [metrics_of(p).get("udsink_read_total", 0) for p in pods_of(plane, NAMESPACE, "shared")]
    assert sum(reads) >= sent
    assert sum(1 for r in reads if r > 0) >= 2, f"one pod read everything: {reads}"
    plane.kubectl("delete", "udsink", "shared", "-n", NAMESPACE, "--timeout=60s")


def members_with_partitions(broker: KafkaBroker, group: str) -> int:
    """How many members of a stable `group` hold at least one partition (0 while it rebalances)."""
    admin = AdminClient(broker.client_config())
    found = admin.describe_consumer_groups([group])[group].result(timeout=10)
    if found.state != ConsumerGroupState.STABLE:
        return 0
    return sum(1 for m in found.members if m.assignment and m.assignment.topic_partitions)


def check_resources_and_spread(plane: ControlPlane, name: str, pods: int) -> None:
    """The operator's defaults as the real API server stored them and the node runs them:
    the runtime container's requests and limits (its memory bound: a Kafka source and a
    user-defined sink, every default), and spreading by node, a preference that still lets
    every replica run on this one node."""
    memory = f"{runtime_memory.default_kafka_bound_mib(user_sink=True)}Mi"
    resources = {
        "requests": {"cpu": constants.DEFAULT_RUNTIME_CPU_REQUEST, "memory": memory},
        "limits": {"cpu": constants.DEFAULT_RUNTIME_CPU_LIMIT, "memory": memory},
    }
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": constants.HOSTNAME_TOPOLOGY_KEY,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {constants.LABEL_UDSINK: name}},
        }
    ]
    deployment = plane.get_json("deployment", name, "-n", NAMESPACE)
    template = deployment["spec"]["template"]["spec"]
    assert template["topologySpreadConstraints"] == spread, template
    found = pods_of(plane, NAMESPACE, name)
    assert len(found) == pods
    for pod in found:
        runtime = next(
            c for c in pod["spec"]["containers"] if c["name"] == runtime_constants.CONTAINER_RUNTIME
        )
        assert runtime["resources"] == resources, runtime
        assert pod["spec"]["topologySpreadConstraints"] == spread, pod["spec"]
        assert pod["spec"].get("nodeName"), pod["metadata"]["name"]
        # Requests below limits (the sink sidecar sets none): the kubelet's Burstable class.
        assert pod["status"]["qosClass"] == "Burstable", pod["status"]


class Producer(threading.Thread):
    """Writes records at a steady pace in the background while the test disturbs the pods."""

    def __init__(self, broker: KafkaBroker, topic: str, total: int, per_batch: int = 20) -> None:
        super().__init__(daemon=True)
        self.broker, self.topic, self.total, self.per_batch = broker, topic, total, per_batch
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while self.sent < self.total:
                count = min(self.per_batch, self.total - self.sent)
                self.broker.produce(self.topic, keyed_records(self.sent, count))
                self.sent += count
                time.sleep(0.2)
        except BaseException as err:  # reported by finish()
            self.error = err

    def finish(self) -> int:
        self.join(timeout=300)
        assert self.error is None, f"producing failed: {self.error!r}"
        assert self.sent == self.total
        return self.sent


def test_rollout_and_pod_deletion_lose_nothing(
    control_plane: ControlPlane, operator: OperatorRun, broker: KafkaBroker
) -> None:
    plane, wait = control_plane, Waiter(control_plane, operator, NAMESPACE)
    source = broker.create_topic(broker.unique_topic("orders"), partitions=2)
    output = broker.create_topic(broker.unique_topic("stored"))
    plane.kubectl(
        "apply", "-f", "-", stdin=udsink_manifest("rolling", broker, source, output, replicas=2)
    )
    wait_ready(plane, operator, NAMESPACE, "rolling", pods=2)
    producer = Producer(broker, source, total=1000)
    producer.start()
    wait.until(lambda: producer.sent >= 200, "the producer under way", within=60)
    # A config change: the operator changes the pod template, the Deployment rolls; old pods
    # get SIGTERM and drain.
    old = {p["metadata"]["name"] for p in pods_of(plane, NAMESPACE, "rolling")}
    plane.kubectl(
        "apply",
        "-f",
        "-",
        stdin=udsink_manifest(
            "rolling", broker, source, output, replicas=2, batch={"size": 20, "timeout": "100ms"}
        ),
    )
    wait.until(
        lambda: not old & {p["metadata"]["name"] for p in pods_of(plane, NAMESPACE, "rolling")},
        "the rollout replacing every old pod",
    )
    wait_ready(plane, operator, NAMESPACE, "rolling", pods=2)
    # One replica deleted mid-stream: the ReplicaSet replaces it.
    victim = pods_of(plane, NAMESPACE, "rolling")[0]["metadata"]["name"]
    plane.kubectl("delete", "pod", victim, "-n", NAMESPACE, "--timeout=60s")
    sent = producer.finish()
    wait_ready(plane, operator, NAMESPACE, "rolling", pods=2)
    all_stored(wait, broker, "rolling", source, output, sent)
    plane.kubectl("delete", "udsink", "rolling", "-n", NAMESPACE, "--timeout=60s")


def test_killed_sink_sidecar_is_restarted_and_nothing_is_lost(
    control_plane: ControlPlane, operator: OperatorRun, broker: KafkaBroker, node: Node
) -> None:
    plane, wait = control_plane, Waiter(control_plane, operator, NAMESPACE)
    source = broker.create_topic(broker.unique_topic("orders"))
    output = broker.create_topic(broker.unique_topic("stored"))
    plane.kubectl("apply", "-f", "-", stdin=udsink_manifest("crashy", broker, source, output))
    wait_ready(plane, operator, NAMESPACE, "crashy", pods=1)
    producer = Producer(broker, source, total=600)
    producer.start()
    wait.until(lambda: producer.sent >= 200, "the producer under way", within=60)
    (pod,) = pods_of(plane, NAMESPACE, "crashy")
    sidecar = next(
        s
        for s in pod["status"]["initContainerStatuses"]
        if s["name"] == runtime_constants.CONTAINER_UDSINK
    )
    # SIGKILL the sink's process on the node, as a crash would.
    node.kill_container(sidecar["containerID"])
    sent = producer.finish()
    wait.until(
        lambda: any(
            s["name"] == runtime_constants.CONTAINER_UDSINK and s["restartCount"] >= 1
            for p in pods_of(plane, NAMESPACE, "crashy")
            for s in p["status"].get("initContainerStatuses", [])
        ),
        "the kubelet restarting the sink sidecar",
    )
    all_stored(wait, broker, "crashy", source, output, sent)
    (pod,) = pods_of(plane, NAMESPACE, "crashy")
    runtime = next(
        s
        for s in pod["status"]["containerStatuses"]
        if s["name"] == runtime_constants.CONTAINER_RUNTIME
    )
    assert runtime["restartCount"] == 0, "the runtime should reconnect, not restart"
    samples = metrics_of(pod)
    assert samples.get('udsink_sink_reconnects_total{sink="primary"}', 0) >= 1, samples
    plane.kubectl("delete", "udsink", "crashy", "-n", NAMESPACE, "--timeout=60s")


def all_in_fallback(wait: Waiter, broker: KafkaBroker, source: str, dead: str, sent: int) -> None:
    """Every one of `sent` inputs reached the fallback topic `dead` with its key and headers,
    and udsink's error headers (the numaflow-go sink answers FALLBACK for each)."""
    out = wait.until(lambda: delivered(broker, dead, sent), f"{sent} records in {dead}")
    for i in range(sent):
        record = out[f"order-{i}"]
        check_keys_and_headers(record, i)
        assert record.header("x-udsink-status") == b"FALLBACK", record
        assert record.header("x-udsink-source").decode().startswith(f"{source}:"), record


def test_numaflow_go_sdk_sink_runs_unmodified_as_the_sidecar(
    control_plane: ControlPlane, operator: OperatorRun, broker: KafkaBroker, node: Node
) -> None:
    """A sink built with numaflow-go (FALLBACK for every datum) in its own FROM-scratch image:
    every record reaches the fallback topic with its key and headers, and the error headers."""
    plane, wait = control_plane, Waiter(control_plane, operator, NAMESPACE)
    source = broker.create_topic(broker.unique_topic("orders"), partitions=2)
    dead = broker.create_topic(broker.unique_topic("dlq"))
    sink = {
        "udsink": {"container": {"image": node.go_sink_image}},
        "fallback": {"kafka": kafka_output(broker, dead)},
    }
    doc = manifest("gosink", broker, source, replicas=1, sink=sink)
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))
    wait_ready(plane, operator, NAMESPACE, "gosink", pods=1)
    sent = 200
    broker.produce(source, keyed_records(0, sent))
    all_in_fallback(wait, broker, source, dead, sent)
    wait.until(lambda: broker.committed_to_end("gosink-group", source), "offsets committed")
    (pod,) = pods_of(plane, NAMESPACE, "gosink")
    samples = metrics_of(pod)
    routed = sum(v for k, v in samples.items() if k.startswith("udsink_fallback_total{"))
    assert routed == sent, samples
    plane.kubectl("delete", "udsink", "gosink", "-n", NAMESPACE, "--timeout=60s")


def test_a_converted_numaflow_monovertex_runs_the_go_sdk_sink_unmodified(
    control_plane: ControlPlane, operator: OperatorRun, broker: KafkaBroker, node: Node
) -> None:
    """`udsink convert` of a Numaflow MonoVertex (its Kafka source, the numaflow-go sink image
    with a Kafka fallback, a retry strategy, limits and a scale range), applied as it comes
    out: every record reaches the fallback topic with its key and headers, and the group
    commits to the end."""
    plane, wait = control_plane, Waiter(control_plane, operator, NAMESPACE)
    source = broker.create_topic(broker.unique_topic("mvtx"), partitions=2)
    dead = broker.create_topic(broker.unique_topic("mvtx-dlq"))
    monovertex = {
        "apiVersion": "numaflow.numaproj.io/v1alpha1",
        "kind": "MonoVertex",
        "metadata": {"name": "from-numaflow", "namespace": NAMESPACE},
        "spec": {
            "source": {
                "kafka": {
                    "brokers": [broker.bootstrap],
                    "topic": source,
                    "consumerGroup": "from-numaflow-group",
                    "config": "auto.offset.reset: earliest\n",
                }
            },
            "sink": {
                "udsink": {"container": {"image": node.go_sink_image}},
                "fallback": {
                    "kafka": {"brokers": [broker.bootstrap], "topic": dead, "setKey": True}
                },
                "retryStrategy": {"backoff": {"interval": "100ms", "steps": 3}},
            },
            "limits": {"readBatchSize": 50, "readTimeout": "200ms"},
            "scale": {"min": 1, "max": 3},
        },
    }
    out, err = io.StringIO(), io.StringIO()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        file.write(yaml.safe_dump(monovertex))
        file.flush()
        code = convert.convert_main(["-f", file.name], out=out, err=err)
    assert code == 0, err.getvalue()
    plane.kubectl("apply", "-f", "-", stdin=out.getvalue())
    wait_ready(plane, operator, NAMESPACE, "from-numaflow", pods=1)
    sent = 100
    broker.produce(source, keyed_records(0, sent))
    all_in_fallback(wait, broker, source, dead, sent)
    wait.until(lambda: broker.committed_to_end("from-numaflow-group", source), "offsets committed")
    plane.kubectl("delete", "udsink", "from-numaflow", "-n", NAMESPACE, "--timeout=60s")


# Sinks for the liveness tests, run with the example-sinks image's python (`-c`); each stores
# with the example on-success sink, so `all_stored` reads its output as usual.
# HUNG_ONCE_SINK answers its first 100 records, then hangs for good inside the handler (every
# later call too); it leaves a mark in the pod's socket volume (an emptyDir, kept across
# container restarts), so the process the kubelet starts instead answers everything.
HUNG_ONCE_SINK = f"""
import os, threading
from on_success_sink import on_success_sink
from sink_runtime import serve
MARK = "{runtime_constants.SOCKET_DIR}/hung-once"
HUNG = threading.Event()
answered = 0
def sink(datums):
    global answered
    datums = list(datums)
    if HUNG.is_set() or (answered >= 100 and not os.path.exists(MARK)):
        open(MARK, "w").close()
        HUNG.set()
        threading.Event().wait()
    answered += len(datums)
    return on_success_sink(iter(datums))
serve(sink)
"""
# Answers every batch, each after SLOW_S: slow, within the write timeout.
SLOW_S = 1.5
SLOW_SINK = f"""
import time
from on_success_sink import on_success_sink
from sink_runtime import serve
def sink(datums):
    time.sleep({SLOW_S})
    return on_success_sink(datums)
serve(sink)
"""
# Small bounds keep these tests short: hung after 2 x 2s + 5s of waiting
# (sink_runtime.config.sink_liveness), probed every second from 20 s after a container starts.
LIVENESS_SINK = {"writeTimeout": "2s", "startupTimeout": "20s"}


def deploy_liveness_sink(
    plane: ControlPlane,
    operator: OperatorRun,
    broker: KafkaBroker,
    name: str,
    code: str,
    batch: int,
) -> tuple[str, str]:
    """A UDSink whose sink runs `code`, ready; its source and output topics."""
    source = broker.create_topic(broker.unique_topic("orders"))
    output = broker.create_topic(broker.unique_topic("stored"))
    sink = {
        "udsink": {
            "container": {"image": EXAMPLE_SINKS_IMAGE, "args": ["-c", code]},
            **LIVENESS_SINK,
        },
        "retryStrategy": {"backoff": {"interval": "100ms", "cap": "1s"}},
        "onSuccess": {"kafka": kafka_output(broker, output)},
    }
    doc = manifest(
        name, broker, source, replicas=1, sink=sink, runtime={"shutdownGracePeriod": "3s"}
    )
    doc["spec"]["batch"]["size"] = batch
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc, sort_keys=False))
    wait_ready(plane, operator, NAMESPACE, name, pods=1)
    return source, output


def restarts(plane: ControlPlane, name: str) -> dict[str, int]:
    """restartCount by container name, for the UDSink's one pod."""
    (pod,) = pods_of(plane, NAMESPACE, name)
    statuses = [*pod["status"].get("initContainerStatuses", [])]
    statuses += pod["status"].get("containerStatuses", [])
    return {s["name"]: s["restartCount"] for s in statuses}


def test_hung_sink_is_restarted_by_its_liveness_probe_and_nothing_is_lost(
    control_plane: ControlPlane, operator: OperatorRun, broker: KafkaBroker
) -> None:
    plane, wait = control_plane, Waiter(control_plane, operator, NAMESPACE)
    source, output = deploy_liveness_sink(plane, operator, broker, "hung", HUNG_ONCE_SINK, 50)
    sent = 400
    broker.produce(source, keyed_records(0, sent))
    sink_name = runtime_constants.CONTAINER_UDSINK
    wait.until(
        lambda: restarts(plane, "hung")[sink_name] >= 1,
        "the kubelet restarting the hung sink",
        within=300,
    )
    all_stored(wait, broker, "hung", source, output, sent)
    counts = restarts(plane, "hung")
    assert counts[runtime_constants.CONTAINER_RUNTIME] == 0, counts
    (pod,) = pods_of(plane, NAMESPACE, "hung")
    pod_name = pod["metadata"]["name"]
    events = plane.get_json(
        "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={pod_name}"
    )["items"]
    unhealthy = [e["message"] for e in events if e.get("reason") == "Unhealthy"]
    # The kubelet's event gives the status; the data plane's reason is in its log.
    assert any("Liveness probe failed" in m and "503" in m for m in unhealthy), events
    runtime_log = plane.kubectl(
        "logs", pod_name, "-c", runtime_constants.CONTAINER_RUNTIME, "-n", NAMESPACE
    ).stdout
    assert "its liveness path now fails" in runtime_log, runtime_log[-4000:]
    plane.kubectl("delete", "udsink", "hung", "-n", NAMESPACE, "--timeout=60s")


def test_slow_sink_within_its_bound_is_never_restarted(
    control_plane: ControlPlane, operator: OperatorRun, broker: KafkaBroker
) -> None:
    plane, wait = control_plane, Waiter(control_plane, operator, NAMESPACE)
    batch, sent = 20, 600
    source, output = deploy_liveness_sink(plane, operator, broker, "slow", SLOW_SINK, batch)
    (pod,) = pods_of(plane, NAMESPACE, "slow")
    sink_name = runtime_constants.CONTAINER_UDSINK
    probe = next(
        c
        for c in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]
        if c["name"] == sink_name
    )["livenessProbe"]
    assert probe["httpGet"]["path"] == f"/livez/{sink_name}", probe
    broker.produce(source, keyed_records(0, sent))
    # This waits on an absence: the sink answers at least sent / batch = 30 batches, each
    # after SLOW_S, so it is probed for 45 s or more while it works, longer than a hung sink
    # takes to be restarted (9 s of waiting, then 20 failed probes a second apart). No event
    # can say "not restarted"; a window of this length is the only evidence.
    all_stored(wait, broker, "slow", source, output, sent)
    counts = restarts(plane, "slow")
    assert counts == {sink_name: 0, runtime_constants.CONTAINER_RUNTIME: 0}, counts
    plane.kubectl("delete", "udsink", "slow", "-n", NAMESPACE, "--timeout=60s")
