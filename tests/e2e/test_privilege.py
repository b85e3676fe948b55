"""Least privilege, measured: the verbs the operator calls, read from the API server's audit log.

The chart's role lists what handlers.py, cluster.py and kopf should need; this module drives a
chart-installed operator through its lifecycle (a UDSink created, updated and deleted, one
waiting for a Secret that does not exist) and then compares, per (API group, resource, verb),
what the role grants with what the operator's ServiceAccount was seen doing in the audit log
(AUDIT_POLICY in tests/e2e/support/control_plane.py). A granted verb never used fails, and so
does a used one the role does not grant (the API server refused it with 403). Three installs
run: cluster-wide with the secret check on and off (off, the role grants nothing on Secrets and
the kubelet, not the operator, reports the missing Secret), and one namespace with two replicas
electing a leader (the namespaced Role and the peering rule). The operator with the check on
also reconciles a UDSink near the API server's size limit (kopf's bookkeeping must stay a
digest, not a copy of the spec).

Two checks the API server makes are not requests of their own, so the audit log shows them
only through the request that caused them: a server-side apply that creates its object
(answered 201) is also authorized as `create`, and a child created with an ownerReference
carrying blockOwnerDeletion needs `update` on the owner's finalizers subresource
(OwnerReferencesPermissionEnforcement, on in this tier's API server).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import pytest
import yaml
from udsink_operator import constants, status

from sink_runtime.config import RuntimeConfig
from tests.e2e.support.control_plane import ControlPlane, condition, get_or_none
from tests.e2e.support.helm_release import OperatorRun, ensure_namespace, installed
from tests.e2e.support.pods import pod_report, pods_of
from tests.e2e.support.reports import eventually
from tests.e2e.support.udsinks import all_children, children, settled, udsink_in_phase
from tests.support.udsink_doc import udsink_doc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

# (API group, resource or resource/subresource, verb); "" is the core group.
Grant: TypeAlias = tuple[str, str, str]

OPERATOR_NAMESPACE = "udsink-audit"
# A Secret (and key) the UDSink "needs-secret" references and nobody creates.
MISSING_SECRET, MISSING_KEY = "audit-kafka-ca", "ca.crt"
# The API server's limit on all of an object's annotations together (bytes).
ANNOTATIONS_LIMIT = 256 * 1024
# A spec of about 150 KB: with `kubectl apply`'s own copy of the object in an annotation, a
# second copy (kopf's, before DigestDiffBaseStorage) would pass the limit.
LARGE_ENV_VARS, LARGE_ENV_VALUE = 10, 15_000
KOPF_LAST_HANDLED = f"operator.{constants.GROUP}/last-handled-configuration"


# --- the audit log ---


def audit_events(plane: ControlPlane, user: str) -> list[dict[str, Any]]:
    """Every audited request `user` made (the log holds ServiceAccounts' requests only)."""
    events = [json.loads(line) for line in plane.audit_log.read_text().splitlines() if line]
    return [e for e in events if e["user"]["username"] == user]


def resource_of(ref: dict[str, Any]) -> tuple[str, str]:
    sub = ref.get("subresource")
    return ref.get("apiGroup", ""), ref["resource"] + (f"/{sub}" if sub else "")


def used_grants(events: list[dict[str, Any]]) -> set[Grant]:
    """What the requests in `events` needed the role to grant (see the module docstring)."""
    used: set[Grant] = set()
    for event in events:
        ref = event.get("objectRef")
        if not ref or "resource" not in ref:
            continue  # discovery and /version: non-resource URLs, not granted by the role
        group, resource = resource_of(ref)
        used.add((group, resource, event["verb"]))
        created = event["verb"] == "patch" and event.get("responseStatus", {}).get("code") == 201
        if not created:
            continue
        used.add((group, resource, "create"))
        meta = (event.get("requestObject") or {}).get("metadata") or {}
        for owner in meta.get("ownerReferences") or []:
            ours = (owner.get("kind"), owner.get("apiVersion")) == (
                constants.KIND,
                constants.API_VERSION,
            )
            if ours and owner.get("blockOwnerDeletion"):
                used.add((constants.GROUP, f"{constants.PLURAL}/finalizers", "update"))
    return used


def granted(role: dict[str, Any]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule["verbs"]
    }


def refused(events: list[dict[str, Any]]) -> list[str]:
    return [
        f"{e['verb']} {e['requestURI']}"
        for e in events
        if e.get("responseStatus", {}).get("code") == 403
    ]


def show(grants: set[Grant]) -> str:
    return ", ".join(f"{v} {g or 'core'}/{r}" for g, r, v in sorted(grants))


# --- driving the operator ---


def udsink(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A UDSink with no pods unless `replicas` says so (RBAC needs objects, not running pods)."""
    base = {
        "replicas": 0,
        "source": {"kafka": {"brokers": ["kafka:9092"], "topics": ["orders"]}},
        "sink": {"udsink": {"container": {"image": "ghcr.io/acme/log-sink:1.0"}}},
    }
    return udsink_doc(name, {**base, **spec}, namespace=namespace)


def apply(plane: ControlPlane, doc: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))


def needs_secret(namespace: str) -> dict[str, Any]:
    """One pod whose runtime container mounts a Secret that does not exist."""
    tls = {"caCertSecret": {"name": MISSING_SECRET, "key": MISSING_KEY}}
    source = {"kafka": {"brokers": ["kafka:9092"], "topics": ["orders"], "tls": tls}}
    return udsink("needs-secret", namespace, replicas=1, source=source)


def create_update_delete(plane: ControlPlane, op: OperatorRun, namespace: str) -> None:
    """A UDSink through its life: its children appear, an update reaches them, deleting it
    collects them."""
    apply(plane, udsink("lifecycle", namespace))
    eventually(
        lambda: all_children(plane, namespace, "lifecycle"), "children of lifecycle", op.logs
    )
    eventually(lambda: settled(plane, namespace, "lifecycle"), "status of lifecycle", op.logs)

    def batch_size() -> int | None:
        config = get_or_none(plane, "configmap", "lifecycle-config", f"--namespace={namespace}")
        if config is None:
            return None
        return RuntimeConfig.model_validate_json(config["data"]["config.json"]).batch.size

    apply(plane, udsink("lifecycle", namespace, batch={"size": 50}))
    eventually(lambda: batch_size() == 50, "the update reaching lifecycle-config", op.logs)
    eventually(lambda: settled(plane, namespace, "lifecycle"), "status of the update", op.logs)

    plane.kubectl("delete", "udsink", "lifecycle", f"--namespace={namespace}")
    eventually(
        lambda: not any(children(plane, namespace, "lifecycle").values()),
        "the garbage collector deleting the children of lifecycle",
        plane.logs,
    )


def operator_release(
    plane: ControlPlane, helm: Path, release: str, values: list[str]
) -> Iterator[OperatorRun]:
    """An operator installed for one test class, whose UDSinks live in the namespace named
    like the release (deleted afterwards). Namespaces still being deleted by
    earlier tests are waited for first: an operator acting on their objects would be refused
    (403, "being terminated") for reasons that are not its role's."""
    eventually(
        lambda: (
            not [
                n["metadata"]["name"]
                for n in plane.get_json("namespaces")["items"]
                if n["status"].get("phase") == "Terminating"
            ]
        ),
        "namespaces of earlier tests to finish terminating",
        plane.logs,
        within=300,
    )
    ensure_namespace(plane, release)
    try:
        with installed(plane, helm, release, OPERATOR_NAMESPACE, values=values) as run:
            yield run
    finally:
        plane.kubectl("delete", "namespace", release, "--ignore-not-found", "--wait=false")


def live_role(plane: ControlPlane, op: OperatorRun) -> dict[str, Any]:
    """The ClusterRole of a cluster-wide operator, or the Role in the one namespace it watches."""
    if "--all-namespaces" in op.args:
        return plane.get_json("clusterrole", op.deployment)
    (namespace,) = [a.split("=", 1)[1] for a in op.args if a.startswith("--namespace=")]
    return plane.get_json("role", op.deployment, f"--namespace={namespace}")


def assert_role_is_what_was_used(plane: ControlPlane, op: OperatorRun) -> set[Grant]:
    events = audit_events(plane, op.user)
    assert events, f"no audit event of {op.user} in {plane.audit_log}"
    assert not refused(events), f"the API server refused {op.user}: {refused(events)}"
    grants, used = granted(live_role(plane, op)), used_grants(events)
    assert not grants - used, f"granted but never used: {show(grants - used)}"
    assert not used - grants, f"used but not granted: {show(used - grants)}"
    return grants


# --- secret check on (the chart's default) ---


@pytest.fixture(scope="class")
def checking(control_plane: ControlPlane, helm_bin: Path) -> Iterator[OperatorRun]:
    yield from operator_release(control_plane, helm_bin, "audit-on", ["secretCheck=true"])


class TestSecretCheckOn:
    namespace = "audit-on"

    def test_lifecycle(self, control_plane: ControlPlane, checking: OperatorRun) -> None:
        plane, ns = control_plane, self.namespace
        create_update_delete(plane, checking, ns)
        apply(plane, needs_secret(ns))
        failed = eventually(
            lambda: udsink_in_phase(plane, ns, "needs-secret", constants.PHASE_FAILED),
            "needs-secret in phase Failed",
            checking.logs,
        )
        message = condition(failed, constants.CONDITION_CONFIG_VALID)["message"]
        assert f"Secret {MISSING_SECRET!r} not found in namespace {ns!r}" in message
        assert children(plane, ns, "needs-secret")["Deployment"] is None

    def test_large_udsink_keeps_kopf_bookkeeping_small(
        self, control_plane: ControlPlane, checking: OperatorRun
    ) -> None:
        plane, ns = control_plane, self.namespace
        env = [
            {"name": f"BIG_{i}", "value": str(i) * LARGE_ENV_VALUE}
            for i in range(LARGE_ENV_VARS - 1)
        ]
        env.append({"name": "VERSION", "value": "a" * LARGE_ENV_VALUE})
        doc = udsink("large", ns)
        doc["spec"]["sink"]["udsink"]["container"]["env"] = env
        assert len(json.dumps(doc["spec"])) > 150_000
        # Client-side apply: kubectl keeps its own copy of the object in an annotation.
        apply(plane, doc)
        eventually(lambda: settled(plane, ns, "large"), "status of the large UDSink", checking.logs)

        def sink_env() -> dict[str, str]:
            deployment = plane.get_json("deployment", "large", f"--namespace={ns}")
            pod = deployment["spec"]["template"]["spec"]
            (sink,) = pod["initContainers"]
            return {e["name"]: e.get("value", "") for e in sink.get("env", [])}

        assert sink_env()["VERSION"] == "a" * LARGE_ENV_VALUE
        env[-1]["value"] = "b" * LARGE_ENV_VALUE
        apply(plane, doc)
        eventually(
            lambda: sink_env()["VERSION"] == "b" * LARGE_ENV_VALUE,
            "the update of the large UDSink reaching its Deployment",
            checking.logs,
        )
        # Running once the Deployment controller has rolled the new template (0 pods).
        updated = eventually(
            lambda: (
                u
                if (u := settled(plane, ns, "large"))
                and u["status"]["phase"] == constants.PHASE_RUNNING
                else None
            ),
            "the large UDSink Running its updated spec",
            checking.logs,
        )
        assert updated["metadata"]["generation"] == 2
        # kopf stored what it handled, and said nothing about the annotations' size.
        text = checking.log_text()
        signs = ("Too long", "must have at most", str(ANNOTATIONS_LIMIT))
        complaints = [
            line
            for line in text.splitlines()
            if any(sign in line for sign in signs) or ("ERROR" in line and f"{ns}/large" in line)
        ]
        assert not complaints, "the operator logged errors:\n" + "\n".join(complaints)[-4000:]
        annotations = updated["metadata"]["annotations"]
        handled = annotations.get(KOPF_LAST_HANDLED, "")
        assert handled.startswith("sha256:") and len(handled) < 100, (
            f"kopf stored {handled[:200]!r}"
        )
        size = sum(len(k) + len(v) for k, v in annotations.items())
        assert 150_000 < size < ANNOTATIONS_LIMIT, f"annotations take {size} bytes"

    def test_role_grants_exactly_what_the_operator_used(
        self, control_plane: ControlPlane, checking: OperatorRun
    ) -> None:
        grants = assert_role_is_what_was_used(control_plane, checking)
        assert ("", "secrets", "get") in grants


# --- secret check off: no access to Secrets at all ---


@pytest.fixture(scope="class")
def unchecked(control_plane: ControlPlane, helm_bin: Path) -> Iterator[OperatorRun]:
    yield from operator_release(control_plane, helm_bin, "audit-off", ["secretCheck=false"])


class TestSecretCheckOff:
    namespace = "audit-off"

    def test_no_access_to_secrets(
        self, control_plane: ControlPlane, unchecked: OperatorRun
    ) -> None:
        assert "--no-secret-check" in unchecked.args
        can = control_plane.kubectl(
            "auth",
            "can-i",
            "get",
            "secrets",
            "--all-namespaces",
            f"--as={unchecked.user}",
            check=False,
        )
        assert can.stdout.strip() == "no", can.stdout + can.stderr

    def test_lifecycle_and_the_kubelet_reports_the_missing_secret(
        self, control_plane: ControlPlane, unchecked: OperatorRun
    ) -> None:
        plane, ns = control_plane, self.namespace
        create_update_delete(plane, unchecked, ns)
        apply(plane, needs_secret(ns))
        eventually(
            lambda: all_children(plane, ns, "needs-secret"),
            "children of needs-secret (built without reading its Secret)",
            unchecked.logs,
        )
        pending = eventually(
            lambda: udsink_in_phase(plane, ns, "needs-secret", constants.PHASE_PENDING),
            "needs-secret in phase Pending",
            unchecked.logs,
        )
        valid = condition(pending, constants.CONDITION_CONFIG_VALID)
        assert valid["status"] == "True"
        assert valid["message"] == status.SPEC_VALID_SECRETS_UNCHECKED

        def mount_failure() -> str | None:
            for pod in pods_of(plane, ns, "needs-secret"):
                events = plane.get_json(
                    "events",
                    f"--namespace={ns}",
                    "--field-selector",
                    f"involvedObject.name={pod['metadata']['name']}",
                )["items"]
                for event in events:
                    if event["reason"] == "FailedMount" and MISSING_SECRET in event["message"]:
                        return str(event["message"])
            return None

        message = eventually(
            mount_failure,
            f"the kubelet reporting Secret {MISSING_SECRET!r} missing",
            lambda: pod_report(plane, ns),
            within=120,
        )
        assert "not found" in message
        assert not [
            e
            for e in audit_events(plane, unchecked.user)
            if (e.get("objectRef") or {}).get("resource") == "secrets"
        ]

    def test_role_grants_exactly_what_the_operator_used(
        self, control_plane: ControlPlane, unchecked: OperatorRun
    ) -> None:
        grants = assert_role_is_what_was_used(control_plane, unchecked)
        assert not [g for g in grants if g[1] == "secrets"], show(grants)


# --- one namespace, two replicas: the Role and leader election ---


@pytest.fixture(scope="class")
def electing(control_plane: ControlPlane, helm_bin: Path) -> Iterator[OperatorRun]:
    values = ["watch.clusterWide=false", "watch.namespaces={audit-ha}", "replicaCount=2"]
    yield from operator_release(control_plane, helm_bin, "audit-ha", values)


class TestNamespacedWithLeaderElection:
    namespace = "audit-ha"

    def test_lifecycle(self, control_plane: ControlPlane, electing: OperatorRun) -> None:
        plane, ns = control_plane, self.namespace
        assert "--peering=udsink-operator" in electing.args
        assert plane.get_json("kopfpeering", "udsink-operator", f"--namespace={ns}")
        create_update_delete(plane, electing, ns)
        apply(plane, needs_secret(ns))
        eventually(
            lambda: udsink_in_phase(plane, ns, "needs-secret", constants.PHASE_FAILED),
            "needs-secret in phase Failed",
            electing.logs,
        )
        # One replica did the work, the other waited (kopf pauses both on a priority tie).
        pods = electing.pods()
        logs = {
            pod["metadata"]["name"]: plane.kubectl(
                "logs", pod["metadata"]["name"], f"--namespace={electing.namespace}"
            ).stdout
            for pod in pods
        }
        assert len(logs) == 2
        workers = [name for name, text in logs.items() if "Handler 'reconcile-create'" in text]
        assert len(workers) == 1, {name: text[-2000:] for name, text in logs.items()}
        assert not [name for name, text in logs.items() if "Pausing all operators" in text]

    def test_role_grants_exactly_what_the_operator_used(
        self, control_plane: ControlPlane, electing: OperatorRun
    ) -> None:
        grants = assert_role_is_what_was_used(control_plane, electing)
        assert {g[1] for g in grants if g[0] == "kopf.dev"} == {"kopfpeerings"}
        assert not [g for g in grants if g[0] == "apiextensions.k8s.io"], show(grants)
