"""The operator as users install it: a helm release of the chart, its pod running the image
built here as the chart's ServiceAccount, in a namespace enforcing the restricted Pod Security
Standard; and `helm test` of a release."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.support.control_plane import ROOT, ControlPlane, get_or_none
from tests.e2e.support.pods import pod_report
from tests.e2e.support.tools import run_tool

CHART = ROOT / "charts" / "udsink-operator"
# The operator re-checks failed UDSinks this often (seconds): a test creating a missing Secret
# then waits seconds, not the chart's default minute.
RECHECK_SECONDS = 2
# Pod Security Standard every namespace of this tier enforces: our pods must pass it.
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


def run_helm(
    plane: ControlPlane, helm: Path, *args: str, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """The real helm against this cluster; with `check`, a non-zero exit fails with its output."""
    return run_tool([str(helm), *args], env=plane.env(), check=check, timeout=timeout)


@dataclass
class OperatorRun:
    """A helm release of the chart: the operator runs in its pod, as its ServiceAccount."""

    plane: ControlPlane
    helm: Path
    release: str
    namespace: str
    service_account: str
    deployment: str
    args: list[str]

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def helm_run(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return run_helm(self.plane, self.helm, *args, check=check, timeout=timeout)

    def pods(self) -> list[dict[str, Any]]:
        """Every pod of the release (the operator's, and `helm test`'s while it exists)."""
        found: list[dict[str, Any]] = self.plane.get_json(
            "pods",
            f"--namespace={self.namespace}",
            "-l",
            f"app.kubernetes.io/instance={self.release}",
        )["items"]
        return found

    def log_text(self) -> str:
        """Everything the operator's container logged so far (read through the kubelet)."""
        result = self.plane.kubectl(
            "logs", f"deployment/{self.deployment}", f"--namespace={self.namespace}", check=False
        )
        return result.stdout if result.returncode == 0 else f"(no logs: {result.stderr.strip()})"

    def logs(self, lines: int = 60) -> str:
        tail = "\n".join(self.log_text().splitlines()[-lines:])
        return f"--- operator pod {self.namespace}/{self.deployment}, last lines:\n{tail}"


def ensure_namespace(plane: ControlPlane, namespace: str) -> None:
    """A namespace enforcing the restricted Pod Security Standard (created if missing)."""
    if plane.kubectl("get", "namespace", namespace, check=False).returncode != 0:
        plane.kubectl("create", "namespace", namespace)
    plane.kubectl("label", "--overwrite", "namespace", namespace, RESTRICTED)


def uninstall(run: OperatorRun) -> None:
    """`helm uninstall` (if still installed), waiting until the operator's pod is gone."""
    installed = run.helm_run("status", run.release, f"--namespace={run.namespace}", check=False)
    if installed.returncode == 0:
        run.helm_run("uninstall", run.release, f"--namespace={run.namespace}", "--wait")


@contextlib.contextmanager
def installed(
    plane: ControlPlane,
    helm: Path,
    release: str,
    namespace: str,
    values: Sequence[str],
    chart: Path = CHART,
) -> Iterator[OperatorRun]:
    """`helm install` the chart (the working tree's, or `chart`) with the image built by the
    node harness, and wait until the operator's pod is Ready through its real readiness probe;
    `uninstall` when the block ends, also when it fails."""
    ensure_namespace(plane, namespace)
    workdir = plane.workdir / f"operator-{release}"
    workdir.mkdir()
    # No kube-proxy: the `kubernetes` Service routes nothing, so the pod is told where the API
    # server listens (the node's bridge address; its certificate names that address).
    values_file = workdir / "values.yaml"
    values_file.write_text(
        yaml.safe_dump(
            {
                "extraEnv": [
                    {"name": "KUBERNETES_SERVICE_HOST", "value": plane.host},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": str(plane.port)},
                ]
            }
        )
    )
    run_helm(
        plane,
        helm,
        "install",
        release,
        str(chart),
        f"--namespace={namespace}",
        f"--values={values_file}",
        f"--set=runtime.recheckIntervalSeconds={RECHECK_SECONDS}",
        "--set=logFormat=text",
        *(f"--set={v}" for v in values),
        "--wait",
        "--timeout=180s",
        timeout=240,
    )
    deployments = plane.get_json(
        "deployments", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}"
    )["items"]
    assert len(deployments) == 1, f"chart release {release} made {len(deployments)} Deployments"
    pod_spec = deployments[0]["spec"]["template"]["spec"]
    run = OperatorRun(
        plane=plane,
        helm=helm,
        release=release,
        namespace=namespace,
        service_account=pod_spec["serviceAccountName"],
        deployment=deployments[0]["metadata"]["name"],
        args=list(pod_spec["containers"][0]["args"]),
    )
    plane.kubectl(
        "rollout",
        "status",
        f"deployment/{run.deployment}",
        f"--namespace={namespace}",
        "--timeout=120s",
        timeout=150,
    )
    try:
        yield run
    finally:
        uninstall(run)


def helm_test(run: OperatorRun) -> subprocess.CompletedProcess[str]:
    """`helm test` of the release (the chart's templates/tests); its result, not checked."""
    return run.helm_run(
        "test", run.release, f"--namespace={run.namespace}", "--timeout=120s", check=False
    )


def assert_helm_test_passes(plane: ControlPlane, run: OperatorRun) -> None:
    """`helm test` passes in a namespace enforcing Pod Security `restricted`, and removes its
    pod and ServiceAccount after the pass."""
    labels = plane.get_json("namespace", run.namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    test_pod = f"{run.deployment}-test"
    result = helm_test(run)
    logs = plane.kubectl("logs", test_pod, f"--namespace={run.namespace}", check=False)
    assert result.returncode == 0, (
        f"helm test failed:\n{result.stdout}{result.stderr}\n--- test pod:\n"
        f"{logs.stdout}{logs.stderr}\n{pod_report(plane, run.namespace)}\n{run.logs()}"
    )
    assert "Phase:          Succeeded" in result.stdout, result.stdout
    assert get_or_none(plane, "pod", test_pod, f"--namespace={run.namespace}") is None
    assert get_or_none(plane, "serviceaccount", test_pod, f"--namespace={run.namespace}") is None


def rechecks(run: OperatorRun) -> int:
    """How often the operator logged a re-check of a Failed UDSink (kopf's log lines do not
    name the object: use an operator watching one such UDSink)."""
    return sum(
        "'reconcile-create' failed temporarily" in line and "re-checking in" in line
        for line in run.log_text().splitlines()
    )
