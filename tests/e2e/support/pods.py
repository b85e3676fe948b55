"""The pods the kubelet runs for a UDSink, as the API server reports them: listing, readiness,
their data plane's HTTP port, and the report of pods and events a failure message shows."""

from __future__ import annotations

from typing import Any

from udsink_operator import constants

from sink_runtime.config import constants as runtime_constants
from tests.e2e.support.control_plane import ControlPlane, condition


def pods_of(plane: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    """The pods of the UDSink `namespace/name` (by its label)."""
    found: list[dict[str, Any]] = plane.get_json(
        "pods", f"--namespace={namespace}", "-l", f"{constants.LABEL_UDSINK}={name}"
    )["items"]
    return found


def ready_pods(plane: ControlPlane, namespace: str, name: str) -> int:
    """How many of the UDSink's pods the kubelet reports Ready (their probes passed)."""
    return sum(
        condition(p, "Ready").get("status") == "True" for p in pods_of(plane, namespace, name)
    )


def pod_url(pod: dict[str, Any], path: str) -> str:
    """`path` on the data plane's HTTP port (/metrics, /readyz), at the pod's IP on the node's
    bridge."""
    return f"http://{pod['status']['podIP']}:{runtime_constants.METRICS_PORT}{path}"


def pod_report(plane: ControlPlane, namespace: str) -> str:
    """Pods, their container states and the namespace's events, for failure messages."""
    pods = plane.kubectl("get", "pods", "-o", "wide", f"--namespace={namespace}", check=False)
    events = plane.kubectl("get", "events", f"--namespace={namespace}", check=False)
    return f"--- pods of {namespace}:\n{pods.stdout}\n--- events:\n{events.stdout[-4000:]}"
