"""The GitOps and autoscaling examples are usable as written: every UDSink in them passes the
operator's validation and the API server's schema (OpenAPI + CEL), the Argo CD Applications
point at folders that exist, and the autoscalers target the UDSink's scale subresource with
the UDSink's real consumer group. Plus the builder-level half of "no drift": no label or
annotation of the UDSink reaches its children."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from udsink_operator import api, build, constants, crd

from tests.support.kube_schemas import check_manifest, crd_violations

ROOT = Path(__file__).parents[2]
GITOPS = ROOT / "examples" / "05-gitops"
AUTOSCALING = ROOT / "examples" / "04-autoscaling"
UDSINK_FILES = [*sorted((GITOPS / "udsinks").glob("*.yaml")), AUTOSCALING / "udsink.yaml"]


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


@pytest.mark.parametrize("path", UDSINK_FILES, ids=lambda p: p.name)
def test_example_udsinks_are_valid(path: Path) -> None:
    doc = load(path)
    assert crd_violations(doc) == []
    api.parse_udsink(doc)


@pytest.mark.parametrize("name", ["application-operator.yaml", "application-udsinks.yaml"])
def test_argocd_applications_point_at_this_repository(name: str) -> None:
    app = load(GITOPS / name)
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    source = app["spec"]["source"]
    folder = ROOT / source["path"]
    assert folder.is_dir(), source["path"]
    if "helm" in source:
        assert (folder / "Chart.yaml").is_file()
        values = yaml.safe_load((folder / "values.yaml").read_text())
        assert set(source["helm"]["valuesObject"]) <= set(values)
    else:
        kinds = {load(f)["kind"] for f in folder.glob("*.yaml")}
        assert kinds == {constants.KIND}
        ignored = app["spec"]["ignoreDifferences"][0]
        assert (ignored["group"], ignored["kind"]) == (constants.GROUP, constants.KIND)
        assert ignored["jsonPointers"] == ["/spec/replicas"]
        assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]


def scale_subresource() -> dict[str, Any]:
    (version,) = crd.crd()["spec"]["versions"]
    found: dict[str, Any] = version["subresources"]["scale"]
    return found


def test_autoscalers_target_the_udsink_scale_subresource() -> None:
    assert scale_subresource() == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    udsink = api.parse_udsink(load(AUTOSCALING / "udsink.yaml"))
    target = {"apiVersion": constants.API_VERSION, "kind": constants.KIND, "name": "orders-to-pg"}

    hpa = load(AUTOSCALING / "hpa.yaml")
    check_manifest(hpa)
    assert hpa["spec"]["scaleTargetRef"] == target
    assert hpa["metadata"]["namespace"] == udsink.metadata.namespace

    keda = load(AUTOSCALING / "keda-scaledobject.yaml")
    assert keda["spec"]["scaleTargetRef"] == target
    (trigger,) = keda["spec"]["triggers"]
    source = build.build_runtime_config(udsink).source
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == getattr(source, "consumer_group", None)
    assert trigger["metadata"]["topic"] in getattr(source, "topics", [])
    assert trigger["metadata"]["bootstrapServers"] in getattr(source, "brokers", [])


def test_children_carry_nothing_of_the_udsinks_own_metadata() -> None:
    doc = load(GITOPS / "udsinks" / "orders-to-log.yaml")
    doc["metadata"] |= {
        "namespace": "shop",
        "uid": "uid-1",
        "labels": {constants.LABEL_ARGOCD_INSTANCE: "shop-udsinks", "team": "a"},
        "annotations": {
            "argocd.argoproj.io/tracking-id": "shop-udsinks:udsink.dev/UDSink:shop/orders-to-log",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        },
    }
    for child in build.build(api.parse_udsink(doc)).manifests():
        metadata = [child["metadata"]]
        if child["kind"] == "Deployment":
            metadata.append(child["spec"]["template"]["metadata"])
        for meta in metadata:
            assert constants.LABEL_ARGOCD_INSTANCE not in meta.get("labels", {}), child["kind"]
            assert "team" not in meta.get("labels", {})
            leaked = {k for k in meta.get("annotations", {}) if not k.startswith("udsink.dev/")}
            assert not leaked, f"{child['kind']} carries {leaked}"
