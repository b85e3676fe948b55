"""The Argo CD health check for UDSink, run by a real Lua 5.1 (Argo CD's gopher-lua speaks
5.1) from `lupa`, against statuses the operator's own `derive_status` produces, so the script
and the status it reads cannot drift apart."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51
from udsink_operator import status

from tests.support.udsink_doc import udsink_doc

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "examples" / "05-gitops" / "argocd-health-udsink.lua"
ARGOCD_CM = ROOT / "examples" / "05-gitops" / "argocd-cm.yaml"
HEALTH_KEY = "resource.customizations.health.udsink.dev_UDSink"
NOW = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run the script as Argo CD does: the resource in the global `obj`, `hs` returned."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(SCRIPT.read_text())
    return str(hs["status"]), str(hs["message"])


def deployment(
    *, desired: int = 2, ready: int = 2, updated: int = 2, stuck: bool = False
) -> dict[str, Any]:
    conditions = (
        [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "orders-5d" has timed out progressing.',
            }
        ]
        if stuck
        else []
    )
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": 1,
            "replicas": max(desired, updated),
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "availableReplicas": ready,
            "conditions": conditions,
        },
    }


def udsink(
    *,
    generation: int = 3,
    validity: status.Validity | None = None,
    deploy: dict[str, Any] | None = None,
    paused: bool = False,
    observed: int | None = 3,
) -> dict[str, Any]:
    derived = status.derive_status(
        validity=validity or status.Validity.ok(),
        deployment=deploy,
        paused=paused,
        observed_generation=observed,
        selector="udsink.dev/name=orders",
        previous=None,
        now=NOW,
    )
    return {
        **udsink_doc("orders", None, namespace="shop", generation=generation),
        "status": derived,
    }


SAMPLES = {
    "running": (udsink(deploy=deployment()), "Healthy", "2/2 replicas ready"),
    "no deployment yet": (
        udsink(deploy=None),
        "Progressing",
        "waiting for the Deployment to be created",
    ),
    "rolling out": (
        udsink(deploy=deployment(ready=1, updated=1)),
        "Progressing",
        "rolling out: 1/2 updated, 1/2 replicas ready",
    ),
    "running, a replica not ready": (
        udsink(deploy=deployment(ready=1)),
        "Progressing",
        "1/2 replicas ready",
    ),
    "degraded (rollout stuck)": (
        udsink(deploy=deployment(ready=0, updated=1, stuck=True)),
        "Degraded",
        "ProgressDeadlineExceeded",
    ),
    "paused": (
        udsink(deploy=deployment(desired=0, ready=0, updated=0), paused=True),
        "Suspended",
        "paused",
    ),
    "failed (invalid spec)": (
        udsink(
            validity=status.Validity.invalid("spec.sink: exactly one of udsink, kafka, log"),
            deploy=None,
        ),
        "Degraded",
        "spec.sink: exactly one of udsink, kafka, log",
    ),
    "stale observedGeneration": (
        udsink(generation=4, observed=3, deploy=deployment()),
        "Progressing",
        "Waiting for the udsink operator to act on generation 4",
    ),
}


@pytest.mark.parametrize(("obj", "expected", "message"), SAMPLES.values(), ids=SAMPLES.keys())
def test_health_of_operator_statuses(obj: dict[str, Any], expected: str, message: str) -> None:
    got, got_message = health(obj)
    assert got == expected, f"{obj['status']} -> {got} ({got_message})"
    assert message in got_message


def test_a_udsink_without_status_is_progressing() -> None:
    obj = {"apiVersion": "udsink.dev/v1alpha1", "kind": "UDSink", "metadata": {"generation": 1}}
    assert health(obj) == (
        "Progressing",
        "Waiting for the udsink operator to report a status",
    )


def test_degraded_condition_wins_over_a_running_phase() -> None:
    obj = udsink(deploy=deployment())
    for cond in obj["status"]["conditions"]:
        if cond["type"] == "Degraded":
            cond.update(status="True", reason="Stuck", message="pods crash-looping")
    obj["status"]["message"] = ""
    assert health(obj) == ("Degraded", "pods crash-looping")


def test_argocd_cm_embeds_the_script_verbatim() -> None:
    data = yaml.safe_load(ARGOCD_CM.read_text())["data"]
    assert data[HEALTH_KEY] == SCRIPT.read_text()
