"""The chart rendered with the real helm binary, and the checks every rendered object gets
(Kubernetes' schema, or its own CRD's for the custom kinds): shared by the chart tier's modules.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.support.kube_schemas import LATEST, check_manifest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "udsink-operator"
RELEASE, NAMESPACE = "uds", "udsink-system"
# Render for the Kubernetes release whose schema the objects are validated against.
KUBE = ("--kube-version", LATEST)
NAMESPACED = ("--set", "watch.clusterWide=false", "--set", "watch.namespaces={shop,billing}")

Doc = dict[str, Any]


def helm(helm_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_bin), *args], capture_output=True, text=True, timeout=60, check=False
    )


def render(helm_bin: Path, *values: str, crds: bool = False, tests: bool = False) -> list[Doc]:
    """The release's objects; the `helm test` hooks only with `tests`."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, *KUBE, *values]
    args += ["--include-crds"] if crds else []
    result = helm(helm_bin, *args, *([] if tests else ["--skip-tests"]))
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def kinds(docs: Sequence[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def operator_container(docs: Sequence[Doc]) -> Doc:
    (deployment,) = kinds(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    found: Doc = container
    return found


# --- Custom kinds the chart renders: checked against their own CRD schemas ---

KOPF_CRDS = {
    d["spec"]["names"]["kind"]: d
    for d in yaml.safe_load_all((ROOT / "crds" / "kopf-peering.yaml").read_text())
}


def check_custom(doc: Doc) -> None:
    if doc["kind"] in KOPF_CRDS:
        crd = KOPF_CRDS[doc["kind"]]
        assert doc["apiVersion"] == f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
        namespaced = crd["spec"]["scope"] == "Namespaced"
        assert ("namespace" in doc["metadata"]) == namespaced, doc
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        jsonschema.validate({k: v for k, v in doc.items() if k != "metadata"}, schema)
    elif doc["kind"] == "ServiceMonitor":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(doc["spec"]) == {"selector", "namespaceSelector", "endpoints"}
    elif doc["kind"] == "PrometheusRule":  # its content: tests/chart/test_monitoring.py
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(doc["spec"]) == {"groups"}
    else:
        raise AssertionError(f"no schema for {doc['apiVersion']} {doc['kind']}")


def check_all(docs: Sequence[Doc]) -> None:
    for doc in docs:
        if doc["kind"] in {*KOPF_CRDS, "ServiceMonitor", "PrometheusRule"}:
            check_custom(doc)
        else:
            check_manifest(doc)
