"""End to end on a real cluster: helm install, kubectl apply, the API server's validation,
real Deployments, ReplicaSets, garbage collection and pods run by a real kubelet.

Everything goes through the real `helm` and `kubectl` binaries against the session's cluster
(tests/e2e/conftest.py). The operator runs in the pod the chart's Deployment makes, from the
image built here, as the chart's ServiceAccount, so a rule missing from the chart's RBAC fails
here. Every namespace enforces the restricted Pod Security Standard. UDSinks run the example
sink image against the session's Kafka broker, so their pods become Ready for real.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from udsink_operator import constants

from sink_runtime.config import KafkaSourceConfig, RuntimeConfig
from sink_runtime.config import constants as runtime_constants
from sink_runtime.config.errors import FALLBACK_NEEDED
from tests.e2e.support.control_plane import ControlPlane, condition, get_or_none
from tests.e2e.support.helm_release import (
    OperatorRun,
    assert_helm_test_passes,
    ensure_namespace,
    installed,
    rechecks,
    uninstall,
)
from tests.e2e.support.node import EXAMPLE_SINKS_IMAGE, PROJECT_VERSION
from tests.e2e.support.pods import pod_report, pods_of, ready_pods
from tests.e2e.support.reports import eventually
from tests.e2e.support.udsinks import (
    ARGOCD_MANAGER,
    GITOPS,
    MINIMAL,
    MIRROR,
    MIRROR_SECRETS,
    all_children,
    children,
    example,
    explain,
    newer_than,
    resource_versions,
    runnable,
    settled,
    udsink_in_phase,
    udsink_where,
    wait_ready,
)
from tests.e2e.support.watch import UDSinkWatch
from tests.support.kafka_broker import KafkaBroker

# The first test may build the control plane and the node (tens of minutes on a cold machine).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module", autouse=True)
def no_finalizers(udsink_watch: UDSinkWatch) -> Iterator[UDSinkWatch]:
    """Every version of every UDSink of this module is watched (restarted before each test
    when kubectl ended); the module fails if one ever had a finalizer."""
    yield udsink_watch


@pytest.fixture(autouse=True)
def watching(no_finalizers: UDSinkWatch) -> None:
    no_finalizers.ensure_running()


# --- cluster-wide install ---


@pytest.fixture(scope="class")
def clusterwide(control_plane: ControlPlane, helm_bin: Path) -> Iterator[OperatorRun]:
    try:
        with installed(
            control_plane, helm_bin, "udsink", "udsink-system", values=["watch.clusterWide=true"]
        ) as run:
            yield run
    finally:
        # The examples' pods stop here rather than compete with later tests for the CPU. Not
        # waited for: each pod drains for its grace period; that nothing blocks a namespace's
        # deletion is asserted by test_delete_and_uninstall_leave_nothing_stuck.
        control_plane.kubectl(
            "delete", "namespace", "shop", "gitops", "--ignore-not-found", "--wait=false"
        )


@pytest.fixture(scope="class")
def shop(control_plane: ControlPlane) -> str:
    """The namespace the examples name (restricted, like every namespace here)."""
    ensure_namespace(control_plane, "shop")
    return "shop"


class TestClusterWide:
    def test_chart_installs_crds_and_cluster_rbac(
        self, control_plane: ControlPlane, clusterwide: OperatorRun
    ) -> None:
        plane = control_plane
        status = clusterwide.helm_run("status", clusterwide.release, "-n", clusterwide.namespace)
        assert "STATUS: deployed" in status.stdout
        # The operator's pod passed its real readiness probe in a restricted namespace.
        namespace = plane.get_json("namespace", clusterwide.namespace)
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        (pod,) = clusterwide.pods()
        assert condition(pod, "Ready")["status"] == "True"
        (container,) = pod["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["image"] == "ghcr.io/udsink/udsink-operator:" + PROJECT_VERSION
        assert pod["spec"]["serviceAccountName"] == clusterwide.service_account
        for crd in (constants.CRD_NAME, "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
            plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
        role = plane.get_json("clusterrole", "udsink-udsink-operator")
        assert any("udsinks/status" in r.get("resources", []) for r in role["rules"])
        assert clusterwide.args[:2] == ["operator", "--all-namespaces"]
        can = plane.kubectl(
            "auth",
            "can-i",
            "patch",
            "deployments.apps",
            "--all-namespaces",
            f"--as={clusterwide.user}",
        )
        assert can.stdout.strip() == "yes"

    def test_helm_test_passes(self, control_plane: ControlPlane, clusterwide: OperatorRun) -> None:
        assert_helm_test_passes(control_plane, clusterwide)

    def test_minimal_example_creates_its_children(
        self, control_plane: ControlPlane, clusterwide: OperatorRun, shop: str, broker: KafkaBroker
    ) -> None:
        plane = control_plane
        applied = plane.kubectl("apply", "-f", "-", stdin=example(MINIMAL, broker))
        assert "udsink.udsink.dev/orders-to-log created" in applied.stdout
        found = eventually(
            lambda: all_children(plane, shop, "orders-to-log"),
            "the Deployment, ConfigMap and Service of shop/orders-to-log",
            clusterwide.logs,
        )
        udsink = plane.get_json("udsink", "orders-to-log", "-n", shop)
        for kind, child in found.items():
            assert child is not None
            (owner,) = child["metadata"]["ownerReferences"]
            assert owner == {
                "apiVersion": constants.API_VERSION,
                "kind": constants.KIND,
                "name": "orders-to-log",
                "uid": udsink["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }, kind
            assert constants.LABEL_ARGOCD_INSTANCE not in child["metadata"]["labels"]
        deployment, config_map, service = found["Deployment"], found["ConfigMap"], found["Service"]
        assert deployment and config_map and service
        template = deployment["spec"]["template"]
        pod = template["spec"]
        (sidecar,) = pod["initContainers"]
        assert sidecar["name"] == runtime_constants.CONTAINER_UDSINK
        assert sidecar["image"] == EXAMPLE_SINKS_IMAGE
        # A native sidecar: the API server of a 1.37 cluster kept restartPolicy Always.
        assert sidecar["restartPolicy"] == "Always"
        (main,) = pod["containers"]
        assert main["name"] == runtime_constants.CONTAINER_RUNTIME
        # The chart's runtime.image reached the operator through its args.
        assert main["image"] == constants.DEFAULT_RUNTIME_IMAGE
        assert template["metadata"]["annotations"][constants.ANNOTATION_CONFIG_HASH]
        config = RuntimeConfig.model_validate_json(
            config_map["data"][Path(runtime_constants.CONFIG_PATH).name]
        )
        assert isinstance(config.source, KafkaSourceConfig)
        assert config.source.topics == ["orders"]
        assert config.source.brokers == [broker.bootstrap]
        assert [p["port"] for p in service["spec"]["ports"]] == [9090]
        assert service["spec"]["selector"] == {constants.LABEL_UDSINK: "orders-to-log"}

    def test_printer_columns_and_explain(
        self, control_plane: ControlPlane, clusterwide: OperatorRun, shop: str
    ) -> None:
        plane = control_plane
        eventually(
            lambda: settled(plane, shop, "orders-to-log"),
            "status of orders-to-log",
            clusterwide.logs,
        )
        table = plane.kubectl("get", "uds", "-n", shop, "-o", "wide").stdout.splitlines()
        assert table[0].split() == ["NAME", "PHASE", "DESIRED", "READY", "AGE", "MESSAGE"]
        row = next(line.split() for line in table[1:] if line.startswith("orders-to-log "))
        assert row[1] in {constants.PHASE_PENDING, constants.PHASE_RUNNING}
        assert row[2] == "1"
        explained = eventually(
            lambda: explain(plane, "udsink.spec.sink"),
            "kubectl explain udsink.spec.sink",
            plane.logs,
        )
        flat = " ".join(explained.split())
        assert "Where messages go, and what happens on failure." in flat
        assert "retryStrategy" in flat and "fallback" in flat

    def test_status_follows_the_deployment(
        self, control_plane: ControlPlane, clusterwide: OperatorRun, shop: str
    ) -> None:
        plane = control_plane
        wait_ready(plane, clusterwide, shop, "orders-to-log", pods=1)
        udsink = plane.get_json("udsink", "orders-to-log", "-n", shop)
        status = udsink["status"]
        assert status["phase"] == constants.PHASE_RUNNING
        assert status["readyReplicas"] == 1
        assert status["replicas"] == 1
        assert status["observedGeneration"] == udsink["metadata"]["generation"]
        assert condition(udsink, constants.CONDITION_CONFIG_VALID)["status"] == "True"
        assert condition(udsink, constants.CONDITION_PROGRESSING)["status"] == "False"

    def test_scale_and_pause(
        self, control_plane: ControlPlane, clusterwide: OperatorRun, shop: str, broker: KafkaBroker
    ) -> None:
        plane = control_plane
        plane.kubectl("apply", "-f", "-", stdin=example(MINIMAL, broker, name="scaled"))
        eventually(
            lambda: children(plane, shop, "scaled")["Deployment"],
            "Deployment scaled",
            clusterwide.logs,
        )
        plane.kubectl("scale", "udsink/scaled", "--replicas=3", "-n", shop)
        eventually(
            lambda: plane.get_json("deployment", "scaled", "-n", shop)["spec"]["replicas"] == 3,
            "Deployment scaled at 3 replicas",
            clusterwide.logs,
        )
        wait_ready(plane, clusterwide, shop, "scaled", pods=3)
        # Ready was already True at one replica: wait for the status to count all three.
        eventually(
            lambda: (
                plane.get_json("udsink", "scaled", "-n", shop)["status"].get("readyReplicas") == 3
            ),
            "UDSink scaled reporting 3 ready replicas",
            clusterwide.logs,
        )
        pause = {"spec": {"lifecycle": {"desiredPhase": "Paused"}}}
        plane.kubectl(
            "patch", "udsink", "scaled", "-n", shop, "--type=merge", f"--patch={json.dumps(pause)}"
        )
        eventually(
            lambda: plane.get_json("deployment", "scaled", "-n", shop)["spec"]["replicas"] == 0,
            "Deployment scaled at 0 replicas",
            clusterwide.logs,
        )
        # Paused, and the status has caught up with the Deployment's pods going away.
        paused = eventually(
            lambda: (
                u
                if (u := udsink_in_phase(plane, shop, "scaled", constants.PHASE_PAUSED))
                and u["status"].get("replicas") == 0
                else None
            ),
            "UDSink scaled in phase Paused with 0 replicas",
            clusterwide.logs,
        )
        # spec.replicas is kept for the resume.
        assert paused["spec"]["replicas"] == 3
        assert paused["status"]["replicas"] == 0
        assert condition(paused, constants.CONDITION_READY)["reason"] == "Paused"

    def test_same_manifest_twice_changes_nothing_and_an_update_rolls(
        self, control_plane: ControlPlane, clusterwide: OperatorRun, shop: str, broker: KafkaBroker
    ) -> None:
        plane = control_plane
        manifest = example(MINIMAL, broker, name="rolling")
        plane.kubectl("apply", "-f", "-", stdin=manifest)
        wait_ready(plane, clusterwide, shop, "rolling", pods=1)
        before = resource_versions(plane, shop, "rolling")
        again = plane.kubectl("apply", "-f", "-", stdin=manifest)
        assert "udsink.udsink.dev/rolling unchanged" in again.stdout
        # Make the operator reconcile without a spec change (a label it must not copy), and
        # wait until kopf records that it handled it (its digest of the handled state moves).
        handled_key = f"operator.{constants.GROUP}/last-handled-configuration"

        def handled() -> str:
            body = plane.get_json("udsink", "rolling", "-n", shop)
            return str(body["metadata"].get("annotations", {}).get(handled_key, ""))

        handled_before = handled()
        plane.kubectl("label", "udsink", "rolling", "-n", shop, "team=payments")
        eventually(
            lambda: handled() not in ("", handled_before),
            "the operator handling the label change",
            clusterwide.logs,
        )
        after = resource_versions(plane, shop, "rolling")
        del before["UDSink"], after["UDSink"]
        assert after == before, "the operator wrote children although nothing changed"

        old = plane.get_json("deployment", "rolling", "-n", shop)
        old_hash = old["spec"]["template"]["metadata"]["annotations"][
            constants.ANNOTATION_CONFIG_HASH
        ]
        plane.kubectl(
            "apply", "-f", "-", stdin=example(MINIMAL, broker, name="rolling", batch={"size": 50})
        )
        new = eventually(
            lambda: newer_than(plane, old),
            "a new generation of Deployment rolling",
            clusterwide.logs,
        )
        new_hash = new["spec"]["template"]["metadata"]["annotations"][
            constants.ANNOTATION_CONFIG_HASH
        ]
        assert new_hash != old_hash
        config = plane.get_json("configmap", "rolling-config", "-n", shop)
        assert RuntimeConfig.model_validate_json(config["data"]["config.json"]).batch.size == 50
        # The Deployment controller rolls: a second ReplicaSet for the new template.
        eventually(
            lambda: (
                len(
                    plane.get_json(
                        "replicasets", "-n", shop, "-l", f"{constants.LABEL_UDSINK}=rolling"
                    )["items"]
                )
                == 2
            ),
            "a second ReplicaSet of rolling",
            plane.logs,
        )

    def test_server_side_reapply_shows_no_drift(
        self, control_plane: ControlPlane, clusterwide: OperatorRun, broker: KafkaBroker
    ) -> None:
        plane = control_plane
        ensure_namespace(plane, "gitops")
        # As Argo CD applies: server-side, its own field manager, its tracking label added.
        docs = []
        for path in sorted(GITOPS.glob("*.yaml")):
            doc = runnable(yaml.safe_load(path.read_text()), broker.bootstrap)
            doc["metadata"].setdefault("labels", {})[constants.LABEL_ARGOCD_INSTANCE] = "udsinks"
            docs.append(doc)
        manifests = yaml.safe_dump_all(docs)
        ssa = ("--server-side", f"--field-manager={ARGOCD_MANAGER}", "-n", "gitops", "-f", "-")
        plane.kubectl("apply", *ssa, stdin=manifests)
        names = [d["metadata"]["name"] for d in docs]
        for name in names:
            eventually(
                functools.partial(settled, plane, "gitops", name),
                f"status of gitops/{name}",
                clusterwide.logs,
            )
        versions = {
            n: plane.get_json("udsink", n, "-n", "gitops")["metadata"]["resourceVersion"]
            for n in names
        }
        diff = plane.kubectl("diff", *ssa, stdin=manifests, check=False)
        assert diff.returncode == 0, f"drift after the operator acted:\n{diff.stdout}{diff.stderr}"
        plane.kubectl("apply", *ssa, stdin=manifests)
        for name in names:
            udsink = plane.get_json("udsink", name, "-n", "gitops", "--show-managed-fields")
            assert udsink["metadata"]["resourceVersion"] == versions[name]
            # Only Argo CD owns spec fields; the operator owns status only.
            for entry in udsink["metadata"]["managedFields"]:
                owns_spec = "f:spec" in entry.get("fieldsV1", {})
                assert not owns_spec or entry["manager"] == ARGOCD_MANAGER, entry
            for kind, child in children(plane, "gitops", name).items():
                if child is not None:
                    labels = child["metadata"].get("labels") or {}
                    assert constants.LABEL_ARGOCD_INSTANCE not in labels, kind

    def test_invalid_specs_are_refused_by_the_api_server(
        self, control_plane: ControlPlane, clusterwide: OperatorRun, shop: str, broker: KafkaBroker
    ) -> None:
        plane = control_plane
        base = yaml.safe_load(example(MINIMAL, broker, name="refused"))
        bad_topic = json.loads(json.dumps(base))
        bad_topic["spec"]["source"]["kafka"]["topics"] = ["orders v2"]
        no_fallback = json.loads(json.dumps(base))
        no_fallback["spec"]["sink"]["retryStrategy"] = {"onFailure": "fallback"}
        reserved_key = json.loads(json.dumps(base))
        reserved_key["spec"]["source"]["kafka"]["config"] = {"group.id": "mine"}
        cases = [
            (bad_topic, ["spec.source.kafka.topics[0]", "must be a Kafka topic", '"orders v2"']),
            (no_fallback, ["spec.sink", FALLBACK_NEEDED]),
            (reserved_key, ["spec.source.kafka.config", "key 'group.id' is owned by udsink"]),
        ]
        for doc, expected in cases:
            result = plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc), check=False)
            assert result.returncode != 0, f"accepted: {doc['spec']}"
            assert '"refused" is invalid' in result.stderr
            for text in expected:
                assert text in result.stderr, result.stderr
        assert get_or_none(plane, "udsink", "refused", "-n", shop) is None

    def test_missing_secret_is_reported_and_nothing_is_built(
        self, control_plane: ControlPlane, clusterwide: OperatorRun, shop: str, broker: KafkaBroker
    ) -> None:
        plane = control_plane
        # Passes the CRD, but the Kafka credentials it names do not exist (yet).
        plane.kubectl("apply", "-f", "-", stdin=example(MIRROR, broker))
        failed = eventually(
            lambda: udsink_where(
                plane, shop, "orders-mirror", constants.CONDITION_CONFIG_VALID, "False"
            ),
            "ConfigValid=False on orders-mirror",
            clusterwide.logs,
        )
        message = condition(failed, constants.CONDITION_CONFIG_VALID)["message"]
        assert (
            "spec.source.kafka.tls.caCertSecret: Secret 'kafka-a-ca' not found in namespace 'shop'"
            in message
        )
        assert "spec.sink.kafka.tls.keySecret: Secret 'kafka-b-client' not found" in message
        assert failed["status"]["phase"] == constants.PHASE_FAILED
        assert children(plane, shop, "orders-mirror") == {
            "Deployment": None,
            "ConfigMap": None,
            "Service": None,
        }
        events = plane.get_json(
            "events", "-n", shop, "--field-selector", "involvedObject.name=orders-mirror"
        )["items"]
        assert any(e["reason"] == "InvalidSpec" and "kafka-a-ca" in e["message"] for e in events)
        # The Secrets appear: the periodic re-check of failed UDSinks builds the children.
        for secret, keys in MIRROR_SECRETS.items():
            literals = [f"--from-literal={key}=e2e" for key in keys]
            plane.kubectl("create", "secret", "generic", secret, "-n", shop, *literals)
        eventually(
            lambda: all_children(plane, shop, "orders-mirror"),
            "children of orders-mirror after its Secrets appeared",
            clusterwide.logs,
        )
        fixed = eventually(
            lambda: udsink_where(
                plane, shop, "orders-mirror", constants.CONDITION_CONFIG_VALID, "True"
            ),
            "ConfigValid=True on orders-mirror",
            clusterwide.logs,
        )
        deployment = plane.get_json("deployment", "orders-mirror", "-n", shop)
        assert deployment["spec"]["replicas"] == fixed["spec"]["replicas"] == 3
        # The Secrets reach the runtime container as volumes, never the ConfigMap.
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        mounted = {v["secret"]["secretName"] for v in volumes.values() if "secret" in v}
        assert mounted == set(MIRROR_SECRETS)

    def test_deleting_collects_the_children(
        self, control_plane: ControlPlane, clusterwide: OperatorRun, shop: str, broker: KafkaBroker
    ) -> None:
        plane = control_plane
        plane.kubectl("apply", "-f", "-", stdin=example(MINIMAL, broker, name="doomed"))
        eventually(
            lambda: all(children(plane, shop, "doomed").values()),
            "children of doomed",
            clusterwide.logs,
        )
        plane.kubectl("delete", "udsink", "doomed", "-n", shop)
        eventually(
            lambda: not any(children(plane, shop, "doomed").values()),
            "the garbage collector deleting the children of doomed",
            plane.logs,
        )
        eventually(
            lambda: (
                not plane.get_json(
                    "replicasets", "-n", shop, "-l", f"{constants.LABEL_UDSINK}=doomed"
                )["items"]
            ),
            "the garbage collector deleting the ReplicaSets of doomed",
            plane.logs,
        )

    def test_operator_hit_no_permission_error(
        self, control_plane: ControlPlane, clusterwide: OperatorRun
    ) -> None:
        text = clusterwide.log_text()
        assert "Forbidden" not in text and " 403" not in text, clusterwide.logs(200)
        (pod,) = clusterwide.pods()
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] and status["restartCount"] == 0, status


# --- single-namespace install ---


@pytest.fixture(scope="class")
def namespaced(control_plane: ControlPlane, helm_bin: Path) -> Iterator[OperatorRun]:
    with installed(
        control_plane, helm_bin, "team-a-sinks", "team-a", values=["watch.clusterWide=false"]
    ) as run:
        yield run


class TestSingleNamespace:
    def test_chart_grants_only_its_namespace(
        self, control_plane: ControlPlane, namespaced: OperatorRun
    ) -> None:
        plane = control_plane
        assert "--no-scanning" in namespaced.args and "--namespace=team-a" in namespaced.args
        plane.get_json("role", "team-a-sinks-udsink-operator", "-n", "team-a")
        assert get_or_none(plane, "clusterrole", "team-a-sinks-udsink-operator") is None
        anywhere = plane.kubectl(
            "auth",
            "can-i",
            "list",
            "udsinks.udsink.dev",
            "--all-namespaces",
            f"--as={namespaced.user}",
            check=False,
        )
        assert anywhere.stdout.strip() == "no"

    def test_operator_runs_with_the_namespace_role(
        self, control_plane: ControlPlane, namespaced: OperatorRun, broker: KafkaBroker
    ) -> None:
        plane = control_plane
        plane.kubectl("apply", "-f", "-", stdin=example(MINIMAL, broker, namespace="team-a"))
        eventually(
            lambda: all(children(plane, "team-a", "orders-to-log").values()),
            "children of team-a/orders-to-log",
            namespaced.logs,
        )
        wait_ready(plane, namespaced, "team-a", "orders-to-log", pods=1)
        events = plane.get_json(
            "events", "-n", "team-a", "--field-selector", "involvedObject.name=orders-to-log"
        )["items"]
        assert any(e["reason"] == "Applied" for e in events)
        text = namespaced.log_text()
        assert "Forbidden" not in text and " 403" not in text, namespaced.logs(200)

    def test_delete_and_uninstall_leave_nothing_stuck(
        self, control_plane: ControlPlane, namespaced: OperatorRun, broker: KafkaBroker
    ) -> None:
        plane = control_plane
        # Deleting a UDSink removes its pods (the kubelet stops them; nothing holds them).
        assert ready_pods(plane, "team-a", "orders-to-log") == 1
        plane.kubectl("delete", "udsink", "orders-to-log", "-n", "team-a", "--timeout=60s")
        eventually(
            lambda: not pods_of(plane, "team-a", "orders-to-log"),
            "the pods of team-a/orders-to-log going away",
            lambda: pod_report(plane, "team-a"),
        )
        # A UDSink still running when the operator goes: uninstalling must not strand it, and
        # its namespace must still be deletable (no finalizer of ours holds either).
        plane.kubectl("apply", "-f", "-", stdin=example(MINIMAL, broker, namespace="team-a"))
        wait_ready(plane, namespaced, "team-a", "orders-to-log", pods=1)
        # And a Failed one (its Kafka Secrets are missing), re-checked by the operator a few
        # times before it goes: a re-check must not add a finalizer.
        plane.kubectl("apply", "-f", "-", stdin=example(MIRROR, broker, namespace="team-a"))
        eventually(
            lambda: udsink_in_phase(plane, "team-a", "orders-mirror", constants.PHASE_FAILED),
            "team-a/orders-mirror in phase Failed",
            namespaced.logs,
        )
        eventually(
            lambda: rechecks(namespaced) >= 3,
            "the operator re-checking team-a/orders-mirror three times",
            namespaced.logs,
        )
        uninstall(namespaced)
        assert get_or_none(plane, "deployment", namespaced.deployment, "-n", "team-a") is None
        for name in ("orders-to-log", "orders-mirror"):
            udsink = plane.get_json("udsink", name, "-n", "team-a")
            assert not udsink["metadata"].get("finalizers"), udsink["metadata"]
        failed = plane.get_json("udsink", "orders-mirror", "-n", "team-a")
        assert failed["status"]["phase"] == constants.PHASE_FAILED
        # With no operator left, the Failed UDSink and then the namespace both go.
        plane.kubectl("delete", "udsink", "orders-mirror", "-n", "team-a", "--timeout=60s")
        plane.kubectl("delete", "namespace", "team-a", "--timeout=120s", timeout=150)
        assert get_or_none(plane, "namespace", "team-a") is None
        assert not plane.get_json("pods", "-n", "team-a")["items"]

    def test_no_udsink_ever_had_a_finalizer(self, no_finalizers: UDSinkWatch) -> None:
        # The watch saw the Failed UDSink of the test above, in every version the API server
        # reported, and no version of any UDSink of this module carried a finalizer.
        assert any(
            line.startswith(f"team-a/orders-mirror {constants.PHASE_FAILED} ")
            for line in no_finalizers.lines
        ), "\n".join(no_finalizers.lines[-50:])
        assert no_finalizers.with_finalizers() == []
