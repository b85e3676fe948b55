"""The chart's day-two lifecycle on the real cluster: upgrading from the previous chart version
with a UDSink running, and `helm test` after the upgrade.

The previous chart is this repository's `charts/udsink-operator` as of PREVIOUS_CHART_COMMIT
(read with `git archive`: CI clones the full history). It is installed with its own CRDs, a
UDSink runs until its pod is Ready, then the upgrade follows docs/install.md exactly: the
working tree's CRDs with `kubectl apply --server-side --force-conflicts`, then `helm upgrade
--reset-then-reuse-values`. The UDSink's pod must keep running untouched, and the upgraded
operator must still act on a spec change. Both charts run the operator image built here: what
changes is the chart.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from udsink_operator import constants

from tests.e2e.support.control_plane import ROOT, ControlPlane, condition
from tests.e2e.support.helm_release import (
    CHART,
    OperatorRun,
    assert_helm_test_passes,
    helm_test,
    installed,
)
from tests.e2e.support.pods import pod_report, pods_of
from tests.e2e.support.reports import Waiter, eventually
from tests.e2e.support.udsinks import MINIMAL, example, wait_ready
from tests.e2e.support.watch import UDSinkWatch
from tests.support.kafka_broker import KafkaBroker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

# A commit of main whose chart predates helm test, the disruption budget, security contexts
# as values and the version labels on the pods: the chart a cluster upgrades from.
PREVIOUS_CHART_COMMIT = "1c7e68ede1886053649062d7cb9a6f0ffa3e7bae"
RELEASE = NAMESPACE = "lifecycle"
NAME = "steady"


def previous_chart(folder: Path) -> Path:
    """charts/udsink-operator as of PREVIOUS_CHART_COMMIT, extracted under `folder`."""
    result = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS_CHART_COMMIT, "charts"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"cannot read the previous chart (commit {PREVIOUS_CHART_COMMIT}) from git: "
            f"{result.stderr.decode(errors='replace')}; the upgrade test needs a clone with "
            "the full history",
            pytrace=False,
        )
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        archive.extractall(folder, filter="data")
    return folder / "charts" / "udsink-operator"


def apply_crds(plane: ControlPlane, chart: Path) -> str:
    """The CRD step of an upgrade, as docs/install.md gives it."""
    applied = plane.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(chart / "crds")
    )
    return applied.stdout


@pytest.fixture(scope="module", autouse=True)
def no_finalizers(udsink_watch: UDSinkWatch) -> Iterator[UDSinkWatch]:
    yield udsink_watch


@pytest.fixture(autouse=True)
def watching(no_finalizers: UDSinkWatch) -> None:
    no_finalizers.ensure_running()


@pytest.fixture(scope="module")
def previous(
    control_plane: ControlPlane, helm_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorRun]:
    """The previous chart installed with the CRDs it shipped (replacing the session's), as a
    cluster that never saw the new chart would have them."""
    plane = control_plane
    old = previous_chart(tmp_path_factory.mktemp("previous-chart"))
    replaced = plane.kubectl("replace", "-f", str(old / "crds"), check=False)
    # Absent when this module runs alone: the previous chart's install then creates them.
    failures = [line for line in replaced.stderr.splitlines() if "NotFound" not in line]
    assert replaced.returncode == 0 or not failures, replaced.stderr
    try:
        with installed(
            plane, helm_bin, RELEASE, NAMESPACE, values=["watch.clusterWide=false"], chart=old
        ) as run:
            yield run
        plane.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
    finally:
        # Later tests get the working tree's CRDs back even when this module failed midway.
        apply_crds(plane, CHART)


def pod_states(plane: ControlPlane) -> dict[str, tuple[bool, int]]:
    """uid -> (Ready, restarts of all containers) of the UDSink's pods."""
    found = {}
    for pod in pods_of(plane, NAMESPACE, NAME):
        statuses = pod["status"].get("containerStatuses", []) + pod["status"].get(
            "initContainerStatuses", []
        )
        ready = condition(pod, "Ready").get("status") == "True"
        found[pod["metadata"]["uid"]] = (ready, sum(s["restartCount"] for s in statuses))
    return found


def operator_pods(run: OperatorRun) -> list[dict[str, Any]]:
    """The release's pods but `helm test`'s."""
    return [
        p
        for p in run.pods()
        if p["metadata"]["labels"].get("app.kubernetes.io/name") != ("udsink-operator-test")
    ]


class TestUpgradeFromThePreviousChart:
    def test_upgrade_keeps_running_udsinks_untouched(
        self, control_plane: ControlPlane, previous: OperatorRun, broker: KafkaBroker
    ) -> None:
        plane = control_plane
        # The previous chart's operator pods carry no version label: the upgrade is real.
        (old_pod,) = operator_pods(previous)
        assert "helm.sh/chart" not in old_pod["metadata"]["labels"]
        plane.kubectl(
            "apply", "-f", "-", stdin=example(MINIMAL, broker, name=NAME, namespace=NAMESPACE)
        )
        wait_ready(plane, previous, NAMESPACE, NAME, pods=1)
        before = pod_states(plane)
        deployment = plane.get_json("deployment", NAME, f"--namespace={NAMESPACE}")

        # Why the documented CRD step forces: the CRDs' fields belong to the field manager
        # that wrote them (`helm` after a Helm install, `kubectl-replace` when this module
        # follows others), so a server-side apply that changes one, as a new chart's schema
        # does, stops at a conflict.
        changed = yaml.safe_load((CHART / "crds" / "udsink.yaml").read_text())
        changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = "changed"
        plain = plane.kubectl(
            *("apply", "--server-side", "--dry-run=server", "-f", "-"),
            stdin=yaml.safe_dump(changed),
            check=False,
        )
        assert plain.returncode != 0, plain.stdout
        assert "Apply failed with 1 conflict: conflict with" in plain.stderr, plain.stderr
        apply_crds(plane, CHART)
        upgraded = previous.helm_run(
            "upgrade",
            RELEASE,
            str(CHART),
            f"--namespace={NAMESPACE}",
            "--reset-then-reuse-values",
            "--wait",
            "--timeout=180s",
            timeout=240,
        )
        assert "has been upgraded" in upgraded.stdout, upgraded.stdout
        plane.kubectl(
            "rollout",
            "status",
            f"deployment/{previous.deployment}",
            f"--namespace={NAMESPACE}",
            "--timeout=120s",
            timeout=150,
        )
        (new_pod,) = operator_pods(previous)
        assert new_pod["metadata"]["uid"] != old_pod["metadata"]["uid"]
        assert new_pod["metadata"]["labels"]["helm.sh/chart"].startswith("udsink-operator-")
        # The new operator has been through the running UDSink, the only one it watches
        # (kopf's resume handler; its log lines do not name the object) ...
        eventually(
            lambda: "Handler 'reconcile-resume' succeeded" in previous.log_text(),
            f"the upgraded operator resuming {NAMESPACE}/{NAME}",
            previous.logs,
        )
        # ... and left its pods alone: the same pods, Ready, not restarted, the same template.
        assert pod_states(plane) == before, pod_report(plane, NAMESPACE)
        assert all(ready for ready, _ in before.values())
        after = plane.get_json("deployment", NAME, f"--namespace={NAMESPACE}")
        assert after["metadata"]["generation"] == deployment["metadata"]["generation"]
        udsink = plane.get_json("udsink", NAME, f"--namespace={NAMESPACE}")
        assert udsink["status"]["phase"] == constants.PHASE_RUNNING

    def test_upgraded_operator_rolls_a_spec_change(
        self, control_plane: ControlPlane, previous: OperatorRun
    ) -> None:
        plane = control_plane
        before = set(pod_states(plane))
        old = plane.get_json("deployment", NAME, f"--namespace={NAMESPACE}")
        patch = {"spec": {"batch": {"size": 25}}}
        plane.kubectl(
            "patch",
            "udsink",
            NAME,
            f"--namespace={NAMESPACE}",
            "--type=merge",
            f"--patch={json.dumps(patch)}",
        )
        eventually(
            lambda: (
                plane.get_json("deployment", NAME, f"--namespace={NAMESPACE}")["metadata"][
                    "generation"
                ]
                > old["metadata"]["generation"]
            ),
            f"a new generation of Deployment {NAME} after the spec change",
            previous.logs,
        )
        eventually(
            lambda: (
                (states := pod_states(plane))
                and not set(states) & before
                and all(ready for ready, _ in states.values())
            ),
            f"new Ready pods of {NAME} replacing the old ones",
            Waiter(plane, previous, NAMESPACE).report,
            within=180,
        )
        wait_ready(plane, previous, NAMESPACE, NAME, pods=1)

    def test_helm_test_passes_after_the_upgrade(
        self, control_plane: ControlPlane, previous: OperatorRun
    ) -> None:
        assert_helm_test_passes(control_plane, previous)

    def test_helm_test_fails_without_a_running_operator(
        self, control_plane: ControlPlane, previous: OperatorRun
    ) -> None:
        plane = control_plane
        plane.kubectl(
            "scale",
            f"deployment/{previous.deployment}",
            "--replicas=0",
            f"--namespace={NAMESPACE}",
        )
        eventually(
            lambda: not operator_pods(previous),
            "the operator's pod gone",
            lambda: pod_report(plane, NAMESPACE),
        )
        result = helm_test(previous)
        assert result.returncode != 0, result.stdout
        # A failed test keeps its pod, for its logs.
        logs = plane.kubectl("logs", f"{previous.deployment}-test", f"--namespace={NAMESPACE}")
        assert "ok   udsinks.udsink.dev/v1alpha1 is served" in logs.stdout, logs.stdout
        assert f"FAIL no operator pod in namespace {NAMESPACE}" in logs.stdout, logs.stdout
