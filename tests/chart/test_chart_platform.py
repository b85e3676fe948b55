"""The chart conventions platform teams check, with the real helm binary:
`helm test`, the PodDisruptionBudget, topology spread, configurable security contexts, name
overrides, common labels, revisionHistoryLimit and priorityClassName. Each value is rendered
and, where it can be wrong, refused by values.schema.json with the key named. That the test
pod really passes under Pod Security `restricted` and `helm test` passes against an installed
operator is shown on the real cluster (tests/e2e)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from udsink_operator import constants

from tests.support.chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    Doc,
    check_all,
    helm,
    kinds,
    operator_container,
    render,
)
from tests.support.kube_schemas import LATEST

pytestmark = pytest.mark.timeout(1800)  # the first run may build helm (minutes)

HOOK = "helm.sh/hook"
CHECK_SCRIPT = CHART / "files" / "check_install.py"
# What the chart rendered before the security contexts became values: the defaults keep it.
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def deployment_of(docs: list[Doc]) -> Doc:
    (deployment,) = kinds(docs, "Deployment")
    return deployment


def hook_pods(docs: list[Doc]) -> list[Doc]:
    return [d for d in kinds(docs, "Pod") if d["metadata"].get("annotations", {}).get(HOOK)]


def refused(helm_bin: Path, *values: str) -> str:
    """stderr of a render helm refuses (fails the test when it accepts)."""
    result = helm(helm_bin, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *values)
    assert result.returncode != 0, f"accepted {values}"
    return result.stderr


def restricted_violations(pod: Doc) -> list[str]:
    """The rules of the restricted Pod Security Standard a pod spec breaks (the API server of
    the e2e tier enforces the real thing)."""
    spec, out = pod["spec"], []
    pod_context = spec.get("securityContext") or {}
    for container in spec.get("initContainers", []) + spec["containers"]:
        context, name = container.get("securityContext") or {}, container["name"]
        if context.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        if "ALL" not in (context.get("capabilities") or {}).get("drop", []):
            out.append(f"{name}: capabilities must drop ALL")
        if set((context.get("capabilities") or {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: capabilities may add only NET_BIND_SERVICE")
        if context.get("privileged"):
            out.append(f"{name}: privileged")
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            out.append(f"{name}: runAsNonRoot must be true")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
        if seccomp.get("type") not in {"RuntimeDefault", "Localhost"}:
            out.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
    allowed_volumes = {"configMap", "emptyDir", "projected", "secret", "downwardAPI", "name"}
    for volume in spec.get("volumes", []):
        if set(volume) - allowed_volumes - {"csi", "ephemeral", "persistentVolumeClaim"}:
            out.append(f"volume {volume['name']}: type not allowed")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        out.append("host namespaces")
    return out


# --- helm test ---


def test_helm_test_pod_checks_the_installed_operator(helm_bin: Path) -> None:
    docs = render(helm_bin, tests=True)
    check_all(docs)
    (pod,) = hook_pods(docs)
    annotations = pod["metadata"]["annotations"]
    assert annotations[HOOK] == "test"
    # Gone after a pass; kept after a failure (for its logs) until the next run.
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert pod["spec"]["restartPolicy"] == "Never"
    (check,) = pod["spec"]["containers"]
    operator = operator_container(docs)
    # The operator's own image: nothing else to mirror into an air-gapped registry.
    assert check["image"] == operator["image"]
    assert check["command"] == ["python3", "-c", CHECK_SCRIPT.read_text()]
    compile(check["command"][2], str(CHECK_SCRIPT), "exec")
    env = {e["name"]: e["value"] for e in check["env"]}
    assert env["UDSINK_API"] == constants.API_VERSION
    assert env["UDSINK_PLURAL"] == constants.PLURAL
    assert env["OPERATOR_NAMESPACE"] == NAMESPACE
    ports = {p["name"]: str(p["containerPort"]) for p in operator["ports"]}
    assert (env["OPERATOR_HEALTH_PORT"], env["OPERATOR_METRICS_PORT"]) == (
        ports["health"],
        ports["metrics"],
    )
    # The selector the check searches with is the Deployment's, and does not match the test
    # pod itself (nor does the metrics Service's).
    selector = deployment_of(docs)["spec"]["selector"]["matchLabels"]
    assert dict(pair.split("=") for pair in env["OPERATOR_SELECTOR"].split(",")) == selector
    assert not selector.items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert restricted_violations(pod) == []


def test_helm_test_runs_with_its_own_read_only_account(helm_bin: Path) -> None:
    docs = render(helm_bin, tests=True)
    hooks = [d for d in docs if d["metadata"].get("annotations", {}).get(HOOK) == "test"]
    assert sorted(d["kind"] for d in hooks) == ["Pod", "Role", "RoleBinding", "ServiceAccount"]
    (pod,) = hook_pods(docs)
    (account,) = [d for d in hooks if d["kind"] == "ServiceAccount"]
    (role,) = [d for d in hooks if d["kind"] == "Role"]
    (binding,) = [d for d in hooks if d["kind"] == "RoleBinding"]
    assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
    operator_account = deployment_of(docs)["spec"]["template"]["spec"]["serviceAccountName"]
    assert account["metadata"]["name"] != operator_account
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    assert {d["metadata"]["namespace"] for d in hooks} == {NAMESPACE}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    # The account and its grant exist before the pod (lower weight), all only while testing.
    for doc in (account, role, binding):
        assert int(doc["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0
    # `helm template --skip-tests` / an install without tests renders none of them.
    assert not [d for d in render(helm_bin) if d["metadata"].get("annotations", {}).get(HOOK)]


def test_helm_test_follows_ports_env_and_security_values(helm_bin: Path) -> None:
    env_value = json.dumps([{"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.1"}])
    docs = render(
        helm_bin,
        *("--set", "metrics.operatorPort=0", "--set", "healthPort=9000"),
        *("--set-json", f"extraEnv={env_value}"),
        *("--set", "podSecurityContext.runAsUser=null"),
        tests=True,
    )
    (pod,) = hook_pods(docs)
    (check,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in check["env"]}
    assert (env["OPERATOR_HEALTH_PORT"], env["OPERATOR_METRICS_PORT"]) == ("9000", "0")
    # Told where the API server is exactly as the operator is.
    assert env["KUBERNETES_SERVICE_HOST"] == "10.0.0.1"
    assert "runAsUser" not in pod["spec"]["securityContext"]


# --- PodDisruptionBudget ---


def test_disruption_budget_only_with_several_replicas(helm_bin: Path) -> None:
    assert not kinds(render(helm_bin), "PodDisruptionBudget")  # one replica: none
    docs = render(helm_bin, "--set", "replicaCount=3")
    check_all(docs)
    (budget,) = kinds(docs, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
    selected = budget["spec"]["selector"]["matchLabels"]
    assert selected == deployment_of(docs)["spec"]["selector"]["matchLabels"]
    (budget,) = kinds(
        render(helm_bin, "--set", "replicaCount=3", "--set", "podDisruptionBudget.minAvailable=2"),
        "PodDisruptionBudget",
    )
    assert budget["spec"]["minAvailable"] == 2 and "maxUnavailable" not in budget["spec"]
    (budget,) = kinds(
        render(
            helm_bin, "--set", "replicaCount=4", "--set", "podDisruptionBudget.maxUnavailable=50%"
        ),
        "PodDisruptionBudget",
    )
    assert budget["spec"]["maxUnavailable"] == "50%"
    off = ("--set", "replicaCount=3", "--set", "podDisruptionBudget.enabled=false")
    assert not kinds(render(helm_bin, *off), "PodDisruptionBudget")
    stderr = refused(helm_bin, "--set", "podDisruptionBudget.maxUnavailable=half")
    assert "/podDisruptionBudget/maxUnavailable" in stderr


# --- topology spread ---


def test_topology_spread_constraints_select_the_operator_pods(helm_bin: Path) -> None:
    constraints = [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
        },
        {
            "maxSkew": 2,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"team": "ops"}},
        },
    ]
    docs = render(helm_bin, "--set-json", f"topologySpreadConstraints={json.dumps(constraints)}")
    check_all(docs)
    deployment = deployment_of(docs)
    rendered = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    own = deployment["spec"]["selector"]["matchLabels"]
    assert rendered == [{**constraints[0], "labelSelector": {"matchLabels": own}}, constraints[1]]
    assert (
        "topologySpreadConstraints"
        not in deployment_of(render(helm_bin))["spec"]["template"]["spec"]
    )
    stderr = refused(
        helm_bin,
        "--set-json",
        "topologySpreadConstraints="
        + json.dumps([{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Sometimes"}]),
    )
    assert "/topologySpreadConstraints/0/whenUnsatisfiable" in stderr
    stderr = refused(helm_bin, "--set-json", 'topologySpreadConstraints=[{"maxSkew": 1}]')
    assert "/topologySpreadConstraints/0" in stderr and "topologyKey" in stderr


# --- security contexts ---


def test_security_context_defaults_are_the_restricted_ones(helm_bin: Path) -> None:
    docs = render(helm_bin)
    pod = deployment_of(docs)["spec"]["template"]
    assert pod["spec"]["securityContext"] == POD_SECURITY
    assert operator_container(docs)["securityContext"] == CONTAINER_SECURITY
    assert restricted_violations(pod) == []


def test_a_platform_assigning_uids_can_unset_them(helm_bin: Path, tmp_path: Path) -> None:
    # OpenShift's restricted-v2 assigns the UID and fsGroup from the namespace's range.
    unset = (
        "--set",
        "podSecurityContext.runAsUser=null",
        "--set",
        "podSecurityContext.runAsGroup=null",
    )
    docs = render(helm_bin, *unset, tests=True)
    check_all(docs)
    expected = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert deployment_of(docs)["spec"]["template"]["spec"]["securityContext"] == expected
    (pod,) = hook_pods(docs)
    assert pod["spec"]["securityContext"] == expected
    # The same from a values file, with an fsGroup set elsewhere and unset here.
    values = tmp_path / "openshift.yaml"
    values.write_text(
        yaml.safe_dump(
            {"podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None}}
        )
    )
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"podSecurityContext": {"fsGroup": 2000}}))
    assert (
        deployment_of(render(helm_bin, f"--values={base}"))["spec"]["template"]["spec"][
            "securityContext"
        ]["fsGroup"]
        == 2000
    )
    docs = render(helm_bin, f"--values={base}", f"--values={values}")
    assert deployment_of(docs)["spec"]["template"]["spec"]["securityContext"] == expected


def test_security_contexts_are_values(helm_bin: Path) -> None:
    docs = render(
        helm_bin,
        *("--set", "securityContext.readOnlyRootFilesystem=false"),
        *("--set", "podSecurityContext.supplementalGroups={5555}"),
        tests=True,
    )
    check_all(docs)
    assert operator_container(docs)["securityContext"] == {
        **CONTAINER_SECURITY,
        "readOnlyRootFilesystem": False,
    }
    pod = deployment_of(docs)["spec"]["template"]["spec"]
    assert pod["securityContext"]["supplementalGroups"] == [5555]
    (test_pod,) = hook_pods(docs)
    assert test_pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    stderr = refused(helm_bin, "--set", "podSecurityContext.runAsUsr=1000")
    assert "additional properties 'runAsUsr' not allowed" in stderr
    stderr = refused(helm_bin, "--set", "securityContext.runAsUser=-1")
    assert "/securityContext/runAsUser" in stderr


def kubernetes_fields(definition: str) -> set[str]:
    folder = Path(os.path.dirname(kubernetes_validate.__file__)) / "kubernetes-json-schema"
    schema = json.loads((folder / f"v{LATEST}-local-strict" / f"{definition}.json").read_text())
    return set(schema["properties"])


@pytest.mark.parametrize(
    ("value", "definition"),
    [
        ("podSecurityContext", "podsecuritycontext-v1"),
        ("securityContext", "securitycontext-v1"),
        ("topologySpreadConstraints", "topologyspreadconstraint-v1"),
    ],
)
def test_schema_knows_every_kubernetes_field(value: str, definition: str) -> None:
    # additionalProperties false refuses a misspelt key; it must not refuse a real one.
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"][value]
    properties = schema.get("items", schema)["properties"]
    assert set(properties) == kubernetes_fields(definition)


# --- names and labels ---


def named_objects(docs: list[Doc]) -> list[Doc]:
    # The peering object is named by leaderElection.peeringName, CRDs by their group.
    return [d for d in docs if d["kind"] not in {"ClusterKopfPeering", "CustomResourceDefinition"}]


@pytest.mark.parametrize(
    ("values", "prefix", "app_name"),
    [
        ((), f"{RELEASE}-udsink-operator", "udsink-operator"),
        (("--set", "nameOverride=sinks"), f"{RELEASE}-sinks", "sinks"),
        (("--set", "fullnameOverride=platform-sinks"), "platform-sinks", "udsink-operator"),
    ],
    ids=["default", "nameOverride", "fullnameOverride"],
)
def test_name_overrides_reach_every_object(
    helm_bin: Path, values: tuple[str, ...], prefix: str, app_name: str
) -> None:
    everything = (
        *("--set", "replicaCount=2", "--set", "metrics.serviceMonitor.enabled=true"),
        *("--set", "networkPolicy.enabled=true"),
    )
    monitoring = (
        "--set",
        "metrics.dashboards.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
    )
    docs = render(helm_bin, *values, *everything, *monitoring, tests=True)
    check_all(docs)
    for doc in named_objects(docs):
        assert doc["metadata"]["name"].startswith(prefix), doc["metadata"]["name"]
        expected = (
            f"{app_name}-test" if doc["metadata"].get("annotations", {}).get(HOOK) else app_name
        )
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == expected
    deployment = deployment_of(docs)
    assert deployment["metadata"]["name"] == prefix
    assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == app_name
    (binding,) = kinds(docs, "ClusterRoleBinding")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"][0]["name"] == account == prefix


def test_bad_name_overrides_are_refused(helm_bin: Path) -> None:
    assert "/fullnameOverride" in refused(helm_bin, "--set", "fullnameOverride=Platform_Sinks")
    # Service names (<fullname>-metrics) are DNS labels of at most 63 characters.
    assert "/fullnameOverride" in refused(helm_bin, "--set", f"fullnameOverride={'a' * 56}")
    assert "/nameOverride" in refused(helm_bin, "--set", "nameOverride=9lives")


def test_every_object_and_pod_carries_version_chart_and_common_labels(helm_bin: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    expected = {
        "app.kubernetes.io/version": chart["appVersion"],
        "helm.sh/chart": f"{chart['name']}-{chart['version']}",
        "app.kubernetes.io/managed-by": "Helm",
        "cost-center": "data",
    }
    docs = render(
        helm_bin,
        *("--set", "replicaCount=2", "--set", "commonLabels.cost-center=data"),
        *(
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.dashboards.enabled=true",
        ),
        *("--set", "metrics.prometheusRule.enabled=true", "--set", "podLabels.team=ops"),
        *("--set", "networkPolicy.enabled=true"),
        tests=True,
    )
    check_all(docs)
    labelled: list[dict[str, Any]] = [d["metadata"] for d in named_objects(docs)]
    labelled.append(deployment_of(docs)["spec"]["template"]["metadata"])
    for meta in labelled:
        assert expected.items() <= meta["labels"].items(), meta
    pod_labels = deployment_of(docs)["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["team"] == "ops"
    stderr = refused(helm_bin, "--set", "commonLabels.app\\.kubernetes\\.io/name=other")
    assert "commonLabels sets app.kubernetes.io/name, a label the chart sets itself" in stderr
    stderr = refused(helm_bin, "--set", "podLabels.helm\\.sh/chart=mine")
    assert "podLabels sets helm.sh/chart, a label the chart sets itself" in stderr


# --- the operator's NetworkPolicy ---

NETWORK_POLICY = ("--set", "networkPolicy.enabled=true")


def test_network_policy_is_off_by_default(helm_bin: Path) -> None:
    assert not kinds(render(helm_bin), "NetworkPolicy")


def test_network_policy_admits_only_what_the_operator_and_helm_test_need(
    helm_bin: Path,
) -> None:
    docs = render(helm_bin, *NETWORK_POLICY, tests=True)
    check_all(docs)
    (policy,) = kinds(docs, "NetworkPolicy")
    spec = policy["spec"]
    deployment = deployment_of(docs)
    assert spec["podSelector"] == deployment["spec"]["selector"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # In: the `helm test` pod only (the kubelet's probes come from the node), to the ports
    # the operator container names.
    (rule,) = spec["ingress"]
    (test_pod,) = [d for d in hook_pods(docs) if d["kind"] == "Pod"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}
    assert peer["podSelector"]["matchLabels"].items() <= test_pod["metadata"]["labels"].items()
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert not peer["podSelector"]["matchLabels"].items() <= pod_labels.items()
    named = {p["name"] for p in operator_container(docs)["ports"]}
    assert {p["port"] for p in rule["ports"]} == named == {"health", "metrics"}
    # Out: the API server's ports (any address unless told) and DNS, nothing else.
    api_server, dns = spec["egress"]
    assert api_server == {
        "ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]
    }
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert dns["to"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    ]


def test_network_policy_values(helm_bin: Path) -> None:
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}
    proxy = {"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}], "ports": [{"port": 3128}]}
    docs = render(
        helm_bin,
        *NETWORK_POLICY,
        *("--set", "networkPolicy.apiServer.cidrs={10.0.0.10/32,10.0.0.11/32}"),
        *("--set", "networkPolicy.apiServer.ports={6443}"),
        *("--set-json", f"networkPolicy.metricsFrom=[{json.dumps(monitoring)}]"),
        *("--set-json", "networkPolicy.dnsTo=[]"),
        *("--set-json", f"networkPolicy.extraEgress=[{json.dumps(proxy)}]"),
    )
    check_all(docs)
    (policy,) = kinds(docs, "NetworkPolicy")
    _helm_test, scraper = policy["spec"]["ingress"]
    assert scraper == {"from": [monitoring], "ports": [{"port": "metrics", "protocol": "TCP"}]}
    assert policy["spec"]["egress"] == [
        {
            "ports": [{"port": 6443, "protocol": "TCP"}],
            "to": [{"ipBlock": {"cidr": "10.0.0.10/32"}}, {"ipBlock": {"cidr": "10.0.0.11/32"}}],
        },
        proxy,
    ]
    # Without the operator's metrics port there is nothing to scrape, nor to test there.
    docs = render(
        helm_bin,
        *NETWORK_POLICY,
        *("--set", "metrics.operatorPort=0"),
        *("--set-json", f"networkPolicy.metricsFrom=[{json.dumps(monitoring)}]"),
    )
    (policy,) = kinds(docs, "NetworkPolicy")
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "health", "protocol": "TCP"}]
    assert "/networkPolicy/apiServer/cidrs/0" in refused(
        helm_bin, *NETWORK_POLICY, "--set", "networkPolicy.apiServer.cidrs={10.0.0.10}"
    )


# --- revisionHistoryLimit, priorityClassName ---


def test_revision_history_limit(helm_bin: Path) -> None:
    assert deployment_of(render(helm_bin))["spec"]["revisionHistoryLimit"] == 3
    docs = render(helm_bin, "--set", "revisionHistoryLimit=0")
    assert deployment_of(docs)["spec"]["revisionHistoryLimit"] == 0
    assert "/revisionHistoryLimit" in refused(helm_bin, "--set", "revisionHistoryLimit=-1")


def test_priority_class_name_is_a_dns_subdomain(helm_bin: Path) -> None:
    assert "priorityClassName" not in deployment_of(render(helm_bin))["spec"]["template"]["spec"]
    docs = render(helm_bin, "--set", "priorityClassName=platform.critical")
    check_all(docs)
    pod = deployment_of(docs)["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "platform.critical"
    stderr = refused(helm_bin, "--set", "priorityClassName=Critical_Ops")
    assert "/priorityClassName" in stderr and "Critical_Ops" in stderr


# --- docs/install.md gives the upgrade the e2e tier runs ---


def test_install_doc_gives_the_tested_upgrade() -> None:
    root = CHART.parents[1]
    doc = " ".join((root / "docs" / "install.md").read_text().split())
    lifecycle = (root / "tests" / "e2e" / "test_lifecycle.py").read_text()
    assert "kubectl apply --server-side --force-conflicts -f charts/udsink-operator/crds/" in doc
    assert "helm upgrade udsink-operator ./charts/udsink-operator" in doc
    for flag in ("--server-side", "--force-conflicts", "--reset-then-reuse-values"):
        assert flag in doc and f'"{flag}"' in lifecycle, flag
    commit = re.search(r'PREVIOUS_CHART_COMMIT = "([0-9a-f]{40})"', lifecycle)
    assert commit is not None
    assert f"commit {commit[1][:7]}" in doc
