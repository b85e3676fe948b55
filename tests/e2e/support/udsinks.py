"""UDSinks on the cluster: the repository's examples made runnable on this node, and what the
API server reports of a UDSink and its children (Deployment, ConfigMap, Service)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from udsink_operator import constants

from tests.e2e.support.control_plane import ROOT, ControlPlane, condition, get_or_none
from tests.e2e.support.helm_release import OperatorRun
from tests.e2e.support.node import EXAMPLE_SINKS_IMAGE
from tests.e2e.support.pods import ready_pods
from tests.e2e.support.reports import Waiter, eventually
from tests.support.kafka_broker import KafkaBroker

EXAMPLES = ROOT / "examples"
MINIMAL = EXAMPLES / "01-minimal" / "udsink.yaml"
MIRROR = EXAMPLES / "03-kafka-to-kafka-headers" / "udsink.yaml"
# The Secrets (and keys) example 03 reads its Kafka credentials from.
MIRROR_SECRETS = {
    "kafka-a-ca": ["ca.crt"],
    "kafka-a-user": ["username", "password"],
    "kafka-b-ca": ["ca.crt"],
    "kafka-b-client": ["tls.crt", "tls.key"],
}
GITOPS = EXAMPLES / "05-gitops" / "udsinks"
ARGOCD_MANAGER = "argocd-controller"


# --- the examples, made runnable here ---


def runnable(doc: Any, bootstrap: str) -> Any:
    """A UDSink manifest made to run on this node: every Kafka connection points at the test
    broker, every sink container runs the example-sinks image built here (never pulled)."""
    match doc:
        case dict():
            found = {k: runnable(v, bootstrap) for k, v in doc.items()}
            if isinstance(found.get("brokers"), list):
                found["brokers"] = [bootstrap]
            if isinstance(found.get("container"), dict) and "image" in found["container"]:
                found["container"]["image"] = EXAMPLE_SINKS_IMAGE
            return found
        case list():
            return [runnable(v, bootstrap) for v in doc]
    return doc


def example(
    path: Path,
    broker: KafkaBroker,
    *,
    name: str | None = None,
    namespace: str | None = None,
    **spec: Any,
) -> str:
    """An example manifest as YAML, made runnable here (the test broker, the example sink
    image), renamed / moved / with top-level spec keys replaced."""
    doc = runnable(yaml.safe_load(path.read_text()), broker.bootstrap)
    if name is not None:
        doc["metadata"]["name"] = name
    if namespace is not None:
        doc["metadata"]["namespace"] = namespace
    doc["spec"].update(spec)
    return yaml.safe_dump(doc)


# --- a UDSink and its children, as the API server reports them ---


def child_refs(name: str) -> dict[str, tuple[str, str]]:
    """The operator's children of UDSink `name` by kind: (kubectl resource, object name)."""
    return {
        "Deployment": ("deployment", name),
        "ConfigMap": ("configmap", f"{name}{constants.CONFIG_MAP_SUFFIX}"),
        "Service": ("service", f"{name}{constants.METRICS_SERVICE_SUFFIX}"),
    }


def children(plane: ControlPlane, namespace: str, name: str) -> dict[str, dict[str, Any] | None]:
    """Each child of the UDSink by kind, None where it does not exist."""
    ns = f"--namespace={namespace}"
    return {
        kind: get_or_none(plane, resource, child, ns)
        for kind, (resource, child) in child_refs(name).items()
    }


def all_children(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    """The three children once all exist, else None."""
    found = children(plane, namespace, name)
    return dict(found) if all(found.values()) else None


def udsink_where(
    plane: ControlPlane, namespace: str, name: str, kind: str, status: str
) -> dict[str, Any] | None:
    """The UDSink once its condition `kind` has `status`, else None."""
    udsink = plane.get_json("udsink", name, f"--namespace={namespace}")
    return udsink if condition(udsink, kind).get("status") == status else None


def udsink_in_phase(
    plane: ControlPlane, namespace: str, name: str, phase: str
) -> dict[str, Any] | None:
    udsink = plane.get_json("udsink", name, f"--namespace={namespace}")
    return udsink if (udsink.get("status") or {}).get("phase") == phase else None


def newer_than(plane: ControlPlane, old: dict[str, Any]) -> dict[str, Any] | None:
    """The object `old` once its generation has moved on, else None."""
    meta = old["metadata"]
    new = plane.get_json(old["kind"].lower(), meta["name"], f"--namespace={meta['namespace']}")
    return new if new["metadata"]["generation"] > meta["generation"] else None


def explain(plane: ControlPlane, field: str) -> str | None:
    # The CRD's schema reaches the published OpenAPI a moment after the CRD is established.
    result = plane.kubectl("explain", field, check=False)
    return result.stdout if result.returncode == 0 else None


def resource_versions(plane: ControlPlane, namespace: str, name: str) -> dict[str, str]:
    found = {
        k: v["metadata"]["resourceVersion"]
        for k, v in children(plane, namespace, name).items()
        if v
    }
    udsink = plane.get_json("udsink", name, f"--namespace={namespace}")
    found["UDSink"] = udsink["metadata"]["resourceVersion"]
    return found


def settled(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    """The UDSink once the operator has acted on its latest generation."""
    udsink = plane.get_json("udsink", name, f"--namespace={namespace}")
    status = udsink.get("status") or {}
    done = status.get("observedGeneration") == udsink["metadata"]["generation"]
    return udsink if done else None


def wait_ready(plane: ControlPlane, op: OperatorRun, namespace: str, name: str, pods: int) -> None:
    """The kubelet runs the pods until their readiness probes pass; the UDSink reports Ready
    with that many ready replicas."""
    report = Waiter(plane, op, namespace).report
    eventually(
        lambda: ready_pods(plane, namespace, name) == pods,
        f"{pods} ready pods of {namespace}/{name}",
        report,
        within=180,
    )
    eventually(
        lambda: (
            (u := plane.get_json("udsink", name, f"--namespace={namespace}"))
            and condition(u, constants.CONDITION_READY).get("status") == "True"
            and u["status"].get("readyReplicas") == pods
        ),
        f"UDSink {namespace}/{name} Ready with {pods} ready replicas",
        report,
    )
