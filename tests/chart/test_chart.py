"""The Helm chart with the real helm binary: lint, render both RBAC modes, validate every
rendered object against Kubernetes' schema, and check that bad values fail at install with
the key named. The rendered operator args are parsed by the operator's own argument parser,
so a flag the operator does not know cannot ship in the chart."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import yaml
from udsink_cli import operator_cmd
from udsink_operator import api, build, constants
from udsink_operator.api import parse_udsink

from tests.support.chart import (
    CHART,
    NAMESPACE,
    NAMESPACED,
    RELEASE,
    ROOT,
    Doc,
    check_all,
    helm,
    kinds,
    operator_container,
    render,
)

pytestmark = pytest.mark.timeout(1800)  # the first run may build helm (minutes)

# --- lint and schema validity of both modes ---

MODES = {
    "cluster-wide": (),
    "cluster-wide-ha": ("--set", "replicaCount=3", "--set", "metrics.serviceMonitor.enabled=true"),
    "monitoring": (
        *(
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.dashboards.enabled=true",
        ),
        *("--set", "metrics.prometheusRule.enabled=true"),
    ),
    "namespaced": NAMESPACED,
    "namespaced-ha": (*NAMESPACED, "--set", "replicaCount=2"),
    "network-policy": ("--set", "networkPolicy.enabled=true"),
}


@pytest.mark.parametrize("values", MODES.values(), ids=MODES.keys())
def test_lint(helm_bin: Path, values: tuple[str, ...]) -> None:
    result = helm(helm_bin, "lint", "--strict", str(CHART), *values)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", MODES.values(), ids=MODES.keys())
def test_rendered_objects_pass_the_kubernetes_schema(
    helm_bin: Path, values: tuple[str, ...]
) -> None:
    docs = render(helm_bin, *values, crds=True, tests=True)
    check_all(docs)
    crd_names = {d["metadata"]["name"] for d in kinds(docs, "CustomResourceDefinition")}
    assert crd_names == {
        "udsinks.udsink.dev",
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    }


def test_chart_crds_are_the_top_level_crds() -> None:
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").iterdir()}
    top = {p.name: p.read_bytes() for p in (ROOT / "crds").iterdir()}
    assert chart == top


# --- RBAC: least privilege, both modes ---

# Exactly what handlers.py/cluster.py call and kopf needs, per (apiGroup, resource); the
# e2e tier checks it against the API server's audit log (tests/e2e/test_privilege.py).
NAMESPACED_RULES = {
    ("udsink.dev", "udsinks"): {"get", "list", "watch", "patch"},
    ("udsink.dev", "udsinks/status"): {"patch"},
    # blockOwnerDeletion on children (OwnerReferencesPermissionEnforcement).
    ("udsink.dev", "udsinks/finalizers"): {"update"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch"},
    ("", "configmaps"): {"get", "create", "patch"},
    ("", "services"): {"get", "create", "patch"},
    ("", "pods"): {"list", "watch"},
    ("", "secrets"): {"get"},
    ("", "events"): {"create"},
}
PEERING_VERBS = {"list", "watch", "patch"}


def rule_table(role: Doc) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in table, f"{group}/{resource} listed twice"
                table[(group, resource)] = set(rule["verbs"])
    return table


def test_cluster_wide_rbac(helm_bin: Path) -> None:
    docs = render(helm_bin)
    assert not kinds(docs, "Role") and not kinds(docs, "RoleBinding")
    (role,) = kinds(docs, "ClusterRole")
    crds = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
    assert rule_table(role) == {**NAMESPACED_RULES, **crds}
    (binding,) = kinds(docs, "ClusterRoleBinding")
    (account,) = kinds(docs, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    # One replica: no peering object, no peering permission.
    assert not kinds(docs, "ClusterKopfPeering")

    ha = render(helm_bin, "--set", "replicaCount=2")
    (role,) = kinds(ha, "ClusterRole")
    assert rule_table(role)[("kopf.dev", "clusterkopfpeerings")] == PEERING_VERBS
    (peering,) = kinds(ha, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == constants.DEFAULT_PEERING_NAME


def test_namespaced_rbac_grants_nothing_cluster_wide(helm_bin: Path) -> None:
    docs = render(helm_bin, *NAMESPACED, "--set", "replicaCount=2")
    assert not kinds(docs, "ClusterRole") and not kinds(docs, "ClusterRoleBinding")
    roles = kinds(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["billing", "shop"]
    for role in roles:
        peering = {("kopf.dev", "kopfpeerings"): PEERING_VERBS}
        assert rule_table(role) == {**NAMESPACED_RULES, **peering}
    bindings = kinds(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["billing", "shop"]
    assert all(b["subjects"][0]["namespace"] == NAMESPACE for b in bindings)
    peerings = kinds(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["billing", "shop"]


@pytest.mark.parametrize("values", [(), NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_secret_check_off_grants_no_secret_access(helm_bin: Path, values: tuple[str, ...]) -> None:
    docs = render(helm_bin, *values, "--set", "secretCheck=false")
    roles = kinds(docs, "ClusterRole") + kinds(docs, "Role")
    assert roles
    without_secrets = {k: v for k, v in NAMESPACED_RULES.items() if k != ("", "secrets")}
    for role in roles:
        table = rule_table(role)
        assert not {k for k in table if k[1].startswith("secrets")}, role["rules"]
        namespaced = {k: v for k, v in table.items() if k in NAMESPACED_RULES}
        assert namespaced == without_secrets
    args = operator_cmd.operator_parser().parse_args(operator_container(docs)["args"][1:])
    assert args.secret_check is False
    check_all(docs)


def test_namespaced_defaults_to_the_release_namespace(helm_bin: Path) -> None:
    docs = render(helm_bin, "--set", "watch.clusterWide=false")
    assert [r["metadata"]["namespace"] for r in kinds(docs, "Role")] == [NAMESPACE]
    args = operator_cmd.operator_parser().parse_args(operator_container(docs)["args"][1:])
    assert args.namespaces == [NAMESPACE]


# --- the operator Deployment ---


def test_operator_args_are_udsink_operator_flags(helm_bin: Path) -> None:
    container = operator_container(render(helm_bin))
    assert "command" not in container  # the image's entrypoint (`udsink`) runs
    assert container["args"][0] == "operator"
    args = operator_cmd.operator_parser().parse_args(container["args"][1:])
    assert args.all_namespaces and not args.namespaces
    assert not args.no_scanning
    assert args.standalone  # one replica: no leader election
    assert args.runtime_image == constants.DEFAULT_RUNTIME_IMAGE
    assert args.runtime_resources is None  # the operator's built-in defaults
    assert args.sidecars == "auto"
    assert args.secret_check  # referenced Secrets are checked unless secretCheck=false
    assert not args.verbose and args.log_format == "json"
    # The liveness endpoint the operator serves is the one the kubelet probes.
    port = container["ports"][0]
    assert args.liveness == f"http://0.0.0.0:{port['containerPort']}/healthz"
    assert args.liveness == constants.DEFAULT_LIVENESS_ENDPOINT
    probe = container["livenessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/healthz", port["name"])


def test_operator_args_for_namespaces_and_leader_election(helm_bin: Path) -> None:
    docs = render(
        helm_bin,
        *NAMESPACED,
        *("--set", "replicaCount=2", "--set", "logLevel=debug", "--set", "logFormat=text"),
        *("--set", "runtime.image=registry.local/udsink:dev", "--set", "runtime.sidecars=plain"),
        *("--set", "leaderElection.peeringName=team-ops"),
    )
    args = operator_cmd.operator_parser().parse_args(operator_container(docs)["args"][1:])
    assert args.namespaces == ["shop", "billing"] and not args.all_namespaces
    assert args.no_scanning  # the Roles grant no Namespace or CRD watch
    assert not args.standalone and args.peering == "team-ops"
    assert args.verbose and args.log_format == "text"
    assert (args.runtime_image, args.sidecars) == ("registry.local/udsink:dev", "plain")
    (deployment,) = kinds(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert "strategy" not in deployment["spec"]  # rolling: the peering keeps one active


def test_runtime_resources_reach_the_operator_as_its_defaults(helm_bin: Path) -> None:
    docs = render(
        helm_bin,
        *("--set", "runtime.resources.requests.cpu=250m"),
        *("--set-string", "runtime.resources.limits.memory=1Gi"),
    )
    args = operator_cmd.operator_parser().parse_args(operator_container(docs)["args"][1:])
    assert args.runtime_resources == api.Resources.model_validate(
        {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}}
    )
    # What the operator then builds: these replace the built-in cpu and memory values.
    udsink = parse_udsink(yaml.safe_load((ROOT / "examples/01-minimal/udsink.yaml").read_text()))
    options = build.BuildOptions(runtime_resources=args.runtime_resources)
    pod = build.build(udsink, options).deployment["spec"]["template"]["spec"]
    runtime = next(c for c in pod["containers"] if c["name"] == "runtime")
    assert runtime["resources"] == {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}}


def test_operator_pod_is_restricted(helm_bin: Path) -> None:
    docs = render(helm_bin)
    (deployment,) = kinds(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = operator_container(docs)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    assert operator_container(docs)["resources"]["requests"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_service_monitor_selects_the_udsink_metrics_services(helm_bin: Path) -> None:
    assert not kinds(render(helm_bin), "ServiceMonitor")
    on = ("--set", "metrics.serviceMonitor.enabled=true")
    monitors = {m["metadata"]["name"]: m for m in kinds(render(helm_bin, *on), "ServiceMonitor")}
    assert set(monitors) == {
        f"{RELEASE}-udsink-operator-udsinks",
        f"{RELEASE}-udsink-operator-operator",
    }
    monitor = monitors[f"{RELEASE}-udsink-operator-udsinks"]
    # The operator's own metrics Service, selected by the other monitor.
    operator = monitors[f"{RELEASE}-udsink-operator-operator"]
    (service,) = [
        s for s in kinds(render(helm_bin), "Service") if s["metadata"]["name"].endswith("-metrics")
    ]
    assert (
        operator["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["port"] == constants.DEFAULT_OPERATOR_METRICS_PORT
    assert (
        f"--metrics-port={constants.DEFAULT_OPERATOR_METRICS_PORT}"
        in operator_container(render(helm_bin))["args"]
    )
    assert monitor["spec"]["selector"]["matchLabels"] == {
        constants.LABEL_APP_NAME: constants.APP_NAME,
        constants.LABEL_MANAGED_BY: constants.FIELD_MANAGER,
    }
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    from sink_runtime.config import constants as rc

    assert monitor["spec"]["endpoints"][0]["port"] == rc.METRICS_PORT_NAME
    assert monitor["spec"]["endpoints"][0]["path"] == rc.METRICS_PATH
    (scoped,) = [
        m
        for m in kinds(render(helm_bin, *on, *NAMESPACED), "ServiceMonitor")
        if m["metadata"]["name"].endswith("-udsinks")
    ]
    assert scoped["spec"]["namespaceSelector"] == {"matchNames": ["shop", "billing"]}


def test_notes_tell_what_to_apply_next(helm_bin: Path, tmp_path: Path) -> None:
    # `helm install --dry-run` needs a reachable cluster and `helm template` skips NOTES.txt,
    # so render the notes as an ordinary template of a copy of the chart.
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes_txt = chart / "templates" / "NOTES.txt"
    (chart / "templates" / "_notes.tpl").write_text(
        '{{- define "notes" -}}\n' + notes_txt.read_text() + "\n{{- end -}}\n"
    )
    (chart / "templates" / "notes.yaml").write_text(
        'notes: |\n{{ include "notes" . | indent 2 }}\n'
    )
    notes_txt.unlink()
    for mode in ((), NAMESPACED):
        result = helm(
            helm_bin,
            "template",
            RELEASE,
            str(chart),
            "--namespace",
            NAMESPACE,
            *mode,
            "--show-only",
            "templates/notes.yaml",
        )
        assert result.returncode == 0, result.stderr
        notes = yaml.safe_load(result.stdout)["notes"]
        assert "kind: UDSink" in notes and "kubectl get udsinks" in notes
        assert f"rollout status deployment/{RELEASE}-udsink-operator" in notes
        watched = "watches every namespace" if not mode else "watches shop, billing."
        assert watched in " ".join(notes.split()), notes
        # The UDSink the notes suggest is one the operator accepts.
        manifest = notes.split("<<'YAML' | kubectl apply -f -", 1)[1].split("  YAML", 1)[0]
        parse_udsink(yaml.safe_load(textwrap.dedent(manifest)) | {"metadata": {"name": "hello"}})


# --- bad values fail at install (helm checks values.schema.json before rendering, the same
# way for install, upgrade and template), naming the key ---

BAD_VALUES = [
    (("--set", "logLevel=loud"), ["/logLevel", "'info', 'debug'"]),
    (("--set", "replicaCount=0"), ["/replicaCount", "minimum"]),
    (("--set", "runtime.sidecars=always"), ["/runtime/sidecars", "'auto', 'native', 'plain'"]),
    (("--set", "watch.namespaces={Team_A}"), ["/watch/namespaces/0", "Team_A"]),
    (("--set", "imagee.tag=1.0"), ["additional properties 'imagee' not allowed"]),
    (("--set", "healthPort=80"), ["/healthPort", "minimum"]),
    (("--set", "secretCheck=off"), ["/secretCheck", "boolean"]),
    (
        ("--set", "runtime.resources.requests.gpu=1"),
        ["/runtime/resources/requests", "additional properties 'gpu' not allowed"],
    ),
    (
        ("--set", "watch.namespaces={shop}"),
        ["watch.namespaces is [shop]", "watch.clusterWide is true", "watch.clusterWide=false"],
    ),
]


@pytest.mark.parametrize(("values", "expected"), BAD_VALUES, ids=lambda v: str(v))
def test_bad_values_fail_with_the_key_named(
    helm_bin: Path, values: tuple[str, ...], expected: list[str]
) -> None:
    result = helm(helm_bin, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *values)
    assert result.returncode != 0, f"accepted {values}"
    for text in expected:
        assert text in result.stderr, f"{text!r} not in: {result.stderr}"
