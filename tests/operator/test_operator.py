"""The operator in the loop: real kopf, real handlers, real HTTP to kmock's emulator."""

from __future__ import annotations

import asyncio
from typing import Any

from udsink_operator import constants, handlers

from sink_runtime.config import constants as rc
from sink_runtime.config import parse_config
from sink_runtime.config.errors import FALLBACK_NEEDED
from tests.support.emulated_apiserver import (
    DEPLOYMENTS_PATH,
    NAMESPACE,
    PODS_PATH,
    SECRETS_PATH,
    UDSINK_PATH,
    UDSINKS,
    ApplyingEmulator,
    create,
    delete,
    events,
    eventually,
    patch,
    running_operator,
    settle,
    stored,
    udsink_object,
    writes,
)

# A valid spec that waits for the Secret `kafka-ca` (key `ca.crt`) in the UDSink's namespace.
NEEDS_KAFKA_CA = {
    "source": {
        "kafka": {
            "brokers": ["kafka:9092"],
            "topics": ["orders"],
            "tls": {"caCertSecret": {"name": "kafka-ca", "key": "ca.crt"}},
        }
    }
}
DEPLOYMENTS = "apps/v1/deployments"
CONFIGMAPS = "v1/configmaps"
# The status of an "orders" Deployment with both replicas ready on the first template.
ALL_READY = {
    "replicas": 2,
    "readyReplicas": 2,
    "updatedReplicas": 2,
    "availableReplicas": 2,
    "observedGeneration": 1,
}
SERVICES = "v1/services"


def _condition(body: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    assert body is not None
    conditions = (body.get("status") or {}).get("conditions") or []
    return next(c for c in conditions if c["type"] == kind)


def _status(emu: ApplyingEmulator, name: str = "orders") -> dict[str, Any]:
    body = stored(emu, UDSINKS, name) or {}
    status: dict[str, Any] = body.get("status") or {}
    return status


def _config_hash(emu: ApplyingEmulator, name: str = "orders") -> str | None:
    deployment = stored(emu, DEPLOYMENTS, name)
    if deployment is None:
        return None
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    found: str = annotations[constants.ANNOTATION_CONFIG_HASH]
    return found


async def test_create_builds_owned_children_and_reports_status(
    emulator: ApplyingEmulator,
) -> None:
    async with running_operator(emulator):
        await create(emulator, UDSINK_PATH, udsink_object())
        deployment = await eventually(lambda: stored(emulator, DEPLOYMENTS, "orders"))
        config_map = await eventually(lambda: stored(emulator, CONFIGMAPS, "orders-config"))
        service = await eventually(lambda: stored(emulator, SERVICES, "orders-metrics"))
        status = await eventually(lambda: _status(emulator).get("phase") and _status(emulator))
        # kopf posts events from a task of its own, after the handler that made them.
        applied = await eventually(
            lambda: [e for e in events(emulator) if e["reason"] == "Applied"]
        )

    for child in (deployment, config_map, service):
        assert child["metadata"]["ownerReferences"] == [
            {
                "apiVersion": constants.API_VERSION,
                "kind": constants.KIND,
                "name": "orders",
                "uid": "uid-orders",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert child["metadata"]["labels"][constants.LABEL_UDSINK] == "orders"
        assert constants.LABEL_ARGOCD_INSTANCE not in child["metadata"]["labels"]
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == [rc.CONTAINER_UDSINK]
    assert [c["name"] for c in pod["containers"]] == [rc.CONTAINER_RUNTIME]
    assert deployment["spec"]["replicas"] == 2
    # Pods a platform team accepts: the runtime's resources (its memory bound: a generator
    # and a user-defined sink, 75 MiB + 6 x 16 MiB) and the two replicas spread over nodes.
    (runtime,) = pod["containers"]
    assert runtime["resources"] == {
        "requests": {"cpu": constants.DEFAULT_RUNTIME_CPU_REQUEST, "memory": "171Mi"},
        "limits": {"cpu": constants.DEFAULT_RUNTIME_CPU_LIMIT, "memory": "171Mi"},
    }
    assert pod["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {constants.LABEL_UDSINK: "orders"}},
        }
    ]
    config = parse_config(config_map["data"][rc.CONFIG_FILE])
    assert config.sink.type == "udsink"
    assert config.namespace == NAMESPACE

    # No pod is ready yet (nothing runs pods in the emulator): Pending, config valid.
    assert status["phase"] == constants.PHASE_PENDING
    assert status["observedGeneration"] == 1
    assert status["selector"] == "udsink.dev/name=orders"
    assert _condition({"status": status}, "ConfigValid")["status"] == "True"
    assert _condition({"status": status}, "Ready")["status"] == "False"
    assert "Deployment/orders" in applied[0]["message"]


async def test_update_changes_config_hash_and_rolls_the_deployment(
    emulator: ApplyingEmulator,
) -> None:
    async with running_operator(emulator):
        await create(emulator, UDSINK_PATH, udsink_object())
        first_hash = await eventually(lambda: _config_hash(emulator))
        await settle(emulator)

        await patch(emulator, f"{UDSINK_PATH}/orders", {"spec": {"batch": {"size": 42}}})
        second_hash = await eventually(lambda: (h := _config_hash(emulator)) != first_hash and h)
        await eventually(lambda: _status(emulator).get("observedGeneration") == 2)

    config_map = stored(emulator, CONFIGMAPS, "orders-config")
    assert config_map is not None
    assert parse_config(config_map["data"][rc.CONFIG_FILE]).batch.size == 42
    assert second_hash != first_hash
    assert _condition(stored(emulator, UDSINKS, "orders"), "ConfigValid")["observedGeneration"] == 2


async def test_pause_scales_to_zero_and_resume_restores_replicas(
    emulator: ApplyingEmulator,
) -> None:
    def replicas() -> int | None:
        deployment = stored(emulator, DEPLOYMENTS, "orders")
        return None if deployment is None else int(deployment["spec"]["replicas"])

    async with running_operator(emulator):
        await create(emulator, UDSINK_PATH, udsink_object(replicas=3))
        await eventually(lambda: replicas() == 3)
        hash_running = _config_hash(emulator)

        await patch(
            emulator, f"{UDSINK_PATH}/orders", {"spec": {"lifecycle": {"desiredPhase": "Paused"}}}
        )
        await eventually(lambda: replicas() == 0)
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_PAUSED)
        assert _config_hash(emulator) == hash_running  # pausing does not roll the pods
        assert (stored(emulator, UDSINKS, "orders") or {})["spec"]["replicas"] == 3

        await patch(
            emulator, f"{UDSINK_PATH}/orders", {"spec": {"lifecycle": {"desiredPhase": "Running"}}}
        )
        await eventually(lambda: replicas() == 3)
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_PENDING)


async def test_status_follows_the_deployment(emulator: ApplyingEmulator) -> None:
    async with running_operator(emulator):
        await create(emulator, UDSINK_PATH, udsink_object())
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_PENDING)
        pending_since = _condition(stored(emulator, UDSINKS, "orders"), "Ready")[
            "lastTransitionTime"
        ]

        await patch(emulator, f"{DEPLOYMENTS_PATH}/orders/status", {"status": ALL_READY})
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_RUNNING)
        status = _status(emulator)
        assert status["readyReplicas"] == 2
        assert status["replicas"] == 2
        assert status["message"] == "2/2 replicas ready"
        assert _condition({"status": status}, "Ready")["status"] == "True"
        assert _condition({"status": status}, "Progressing")["reason"] == "RolloutComplete"

        stuck = {
            "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "orders-5d9" has timed out progressing.',
                }
            ],
        }
        await patch(emulator, f"{DEPLOYMENTS_PATH}/orders/status", {"status": stuck})
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_FAILED)
        status = _status(emulator)
        assert status["readyReplicas"] == 1
        degraded = _condition({"status": status}, "Degraded")
        assert degraded["status"] == "True"
        assert degraded["reason"] == "ProgressDeadlineExceeded"
        assert "timed out progressing" in degraded["message"]
        # The config is still valid: only the Deployment is in trouble.
        assert _condition({"status": status}, "ConfigValid")["status"] == "True"
        assert _condition({"status": status}, "Ready")["lastTransitionTime"] >= pending_since


REFUSED = (
    "kafka refused the connection for 60s: kafka source: the brokers refused the "
    "SCRAM-SHA-512 credentials of spec.source.kafka.sasl.scramsha512.passwordSecret "
    "(Secret 'kafka-user' key 'password'): SASL authentication error"
)


def runtime_pod(udsink: str, pod: str, *, ready: bool, message: str) -> dict[str, Any]:
    """A pod of `udsink` whose runtime container restarted after ending with `message`."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod,
            "namespace": NAMESPACE,
            "labels": {
                constants.LABEL_MANAGED_BY: constants.FIELD_MANAGER,
                constants.LABEL_UDSINK: udsink,
            },
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": rc.CONTAINER_RUNTIME,
                    "ready": ready,
                    "restartCount": 1,
                    "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 3, "message": message}},
                }
            ],
        },
    }


async def test_a_runtime_that_ended_with_a_message_shows_it_in_ready(
    emulator: ApplyingEmulator,
) -> None:
    async with running_operator(emulator):
        await create(emulator, UDSINK_PATH, udsink_object())
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_PENDING)
        # Both pods run the latest template; none is ready.
        none_ready = {**ALL_READY, "readyReplicas": 0, "availableReplicas": 0}
        await patch(emulator, f"{DEPLOYMENTS_PATH}/orders/status", {"status": none_ready})
        await eventually(lambda: _status(emulator).get("message") == "0/2 replicas ready")
        # Another UDSink's failing pod is not this one's business.
        await create(
            emulator, PODS_PATH, runtime_pod("payments", "payments-1", ready=False, message="x")
        )
        # Nothing in the Deployment changes: the pod's own event brings the message.
        await create(
            emulator, PODS_PATH, runtime_pod("orders", "orders-1", ready=False, message=REFUSED)
        )
        ready = await eventually(
            lambda: (
                _condition(stored(emulator, UDSINKS, "orders"), "Ready")["reason"]
                == constants.REASON_RUNTIME_FAILING
                and _condition(stored(emulator, UDSINKS, "orders"), "Ready")
            )
        )
        assert ready["status"] == "False"
        assert ready["message"] == f"0/2 replicas ready; pod orders-1: {REFUSED}"
        assert _status(emulator)["message"] == ready["message"]
        # Only the UDSinks' pods are watched, and only this UDSink's are listed.
        selectors = {
            r.params.get("labelSelector")
            for r in emulator
            if r.url.path == PODS_PATH and r.method.value == "GET"
        }
        assert selectors == {
            f"{constants.LABEL_MANAGED_BY}={constants.FIELD_MANAGER}",
            f"{constants.LABEL_UDSINK}=orders",
        }

        # Every replica ready: the message goes, though the pods keep their last state.
        await patch(emulator, f"{PODS_PATH}/orders-1", {"status": {"conditions": []}})
        await patch(emulator, f"{DEPLOYMENTS_PATH}/orders/status", {"status": ALL_READY})
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_RUNNING)
        ready = _condition(stored(emulator, UDSINKS, "orders"), "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "ReplicasReady")
        assert ready["message"] == "2/2 replicas ready"


async def test_invalid_spec_creates_nothing_and_reports_it(emulator: ApplyingEmulator) -> None:
    invalid = udsink_object(
        sink={
            "udsink": {"container": {"image": "ghcr.io/acme/sink:1"}},
            "retryStrategy": {"onFailure": "fallback"},
        }
    )
    async with running_operator(emulator):
        await create(emulator, UDSINK_PATH, invalid)
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_FAILED)
        warning = await eventually(
            lambda: [e for e in events(emulator) if e["reason"] == "InvalidSpec"]
        )
        await settle(emulator)

    expected = f"spec.sink: {FALLBACK_NEEDED}"
    config_valid = _condition(stored(emulator, UDSINKS, "orders"), "ConfigValid")
    assert config_valid["status"] == "False"
    assert config_valid["reason"] == "InvalidSpec"
    assert config_valid["message"].startswith(expected)
    assert _status(emulator)["message"].startswith(expected)
    assert warning[0]["type"] == "Warning"
    assert warning[0]["message"].startswith(expected)
    assert warning[0]["involvedObject"]["name"] == "orders"
    for resource, name in [
        (DEPLOYMENTS, "orders"),
        (CONFIGMAPS, "orders-config"),
        (SERVICES, "orders-metrics"),
    ]:
        assert stored(emulator, resource, name) is None


async def test_missing_secret_blocks_until_it_appears(emulator: ApplyingEmulator) -> None:
    spec = NEEDS_KAFKA_CA
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "kafka-ca", "namespace": NAMESPACE},
        "data": {"other.crt": "eA=="},
    }
    options = handlers.OperatorOptions(sidecars="native", recheck_interval=0.3)
    async with running_operator(emulator, options):
        await create(emulator, UDSINK_PATH, udsink_object(**spec))
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_FAILED)
        missing = _condition(stored(emulator, UDSINKS, "orders"), "ConfigValid")["message"]
        assert missing == (
            "spec.source.kafka.tls.caCertSecret: Secret 'kafka-ca' not found in namespace 'shop'"
        )

        await create(emulator, SECRETS_PATH, secret)
        await eventually(
            lambda: (
                "has no key 'ca.crt' (it has: other.crt)"
                in _condition(stored(emulator, UDSINKS, "orders"), "ConfigValid")["message"]
            )
        )
        assert stored(emulator, DEPLOYMENTS, "orders") is None

        await patch(emulator, f"{SECRETS_PATH}/kafka-ca", {"data": {"ca.crt": "eA=="}})
        deployment = await eventually(lambda: stored(emulator, DEPLOYMENTS, "orders"))
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_PENDING)

    runtime = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {
        "name": "secret-kafka-ca",
        "mountPath": f"{rc.SECRETS_DIR}/kafka-ca",
        "readOnly": True,
    } in (runtime["volumeMounts"])


async def test_secret_check_off_reads_no_secret_and_builds_anyway(
    emulator: ApplyingEmulator,
) -> None:
    # The same spec as above, whose Secret does not exist: with the check off the operator
    # never asks for it, builds the children, and says in ConfigValid what it did not check.
    options = handlers.OperatorOptions(sidecars="native", check_secrets=False)
    async with running_operator(emulator, options):
        await create(emulator, UDSINK_PATH, udsink_object(**NEEDS_KAFKA_CA))
        deployment = await eventually(lambda: stored(emulator, DEPLOYMENTS, "orders"))
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_PENDING)
        await settle(emulator)

    valid = _condition(stored(emulator, UDSINKS, "orders"), "ConfigValid")
    assert valid["status"] == "True"
    assert "referenced Secrets were not checked" in valid["message"]
    assert "--no-secret-check" in valid["message"]
    assert not [r.url.path for r in list(emulator) if "/secrets" in r.url.path]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "secret-kafka-ca", "secret": {"secretName": "kafka-ca"}} in [
        {"name": v["name"], "secret": {"secretName": v["secret"]["secretName"]}}
        for v in volumes
        if "secret" in v
    ]


async def test_invalid_update_leaves_children_untouched(emulator: ApplyingEmulator) -> None:
    async with running_operator(emulator):
        await create(emulator, UDSINK_PATH, udsink_object())
        await eventually(lambda: stored(emulator, DEPLOYMENTS, "orders"))
        await settle(emulator)
        before = {
            name: stored(emulator, res, name)
            for res, name in [
                (DEPLOYMENTS, "orders"),
                (CONFIGMAPS, "orders-config"),
                (SERVICES, "orders-metrics"),
            ]
        }
        seen = len(list(emulator))

        await patch(
            emulator,
            f"{UDSINK_PATH}/orders",
            {
                "spec": {
                    "source": {"generator": None, "kafka": {"brokers": ["kafka"], "topics": ["o"]}}
                }
            },
        )
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_FAILED)
        await settle(emulator)
        later = writes(emulator, seen)

    assert not [
        w for w in later if "/deployments/" in w or "/configmaps/" in w or "/services/" in w
    ]
    for res, name in [
        (DEPLOYMENTS, "orders"),
        (CONFIGMAPS, "orders-config"),
        (SERVICES, "orders-metrics"),
    ]:
        assert stored(emulator, res, name) == before[name]
    message = _condition(stored(emulator, UDSINKS, "orders"), "ConfigValid")["message"]
    assert message == (
        'spec.source.kafka.brokers[0]: must be host:port, for example kafka:9092 (got "kafka")'
    )


async def test_resync_issues_no_writes(emulator: ApplyingEmulator) -> None:
    async with running_operator(emulator):
        await create(emulator, UDSINK_PATH, udsink_object())
        await eventually(lambda: _status(emulator).get("phase"))
        await patch(
            emulator,
            f"{DEPLOYMENTS_PATH}/orders/status",
            {
                "status": {
                    "replicas": 2,
                    "readyReplicas": 2,
                    "updatedReplicas": 2,
                    "availableReplicas": 2,
                }
            },
        )
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_RUNNING)
        await settle(emulator)
    seen = len(list(emulator))

    # A restarted operator resumes every UDSink: it reads everything and writes nothing.
    def requests_since() -> list[str]:
        return [f"{r.method.value} {r.url.path}" for r in list(emulator)[seen:]]

    async with running_operator(emulator):
        # The resume reconcile reads the Deployment last (after the ConfigMap and Service).
        await eventually(lambda: f"GET {DEPLOYMENTS_PATH}/orders" in requests_since())
        await settle(emulator)

    assert writes(emulator, seen) == []


async def test_deleted_deployment_is_recreated(emulator: ApplyingEmulator) -> None:
    async with running_operator(emulator):
        await create(emulator, UDSINK_PATH, udsink_object())
        await eventually(lambda: stored(emulator, DEPLOYMENTS, "orders"))
        await settle(emulator)
        await delete(emulator, f"{DEPLOYMENTS_PATH}/orders")
        assert stored(emulator, DEPLOYMENTS, "orders") is None
        recreated = await eventually(lambda: stored(emulator, DEPLOYMENTS, "orders"))
    assert recreated["metadata"]["ownerReferences"][0]["uid"] == "uid-orders"


async def test_sidecar_mode_follows_the_server_version(emulator: ApplyingEmulator) -> None:
    # kmock reports Kubernetes 1.26: no native sidecars there, so plain containers.
    async with running_operator(emulator, handlers.OperatorOptions(sidecars="auto")):
        await create(emulator, UDSINK_PATH, udsink_object())
        deployment = await eventually(lambda: stored(emulator, DEPLOYMENTS, "orders"))
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == [rc.CONTAINER_RUNTIME, rc.CONTAINER_UDSINK]
    assert "restartPolicy" not in pod["containers"][1]


async def test_a_failed_udsink_never_gets_a_finalizer(emulator: ApplyingEmulator) -> None:
    # Waiting for a Secret is re-checked without a finalizer: a UDSink left with one by an
    # operator that is gone could not be deleted, nor could its namespace.
    spec = NEEDS_KAFKA_CA
    options = handlers.OperatorOptions(sidecars="native", recheck_interval=0.2)
    async with running_operator(emulator, options):
        await create(emulator, UDSINK_PATH, udsink_object(**spec))
        await eventually(lambda: _status(emulator).get("phase") == constants.PHASE_FAILED)
        before = len(_udsink_writes(emulator))
        # Several re-checks, each a status write, none of which may add a finalizer.
        await eventually(lambda: len(_udsink_writes(emulator)) >= before + 5, within=30)
        body = stored(emulator, UDSINKS, "orders")
        assert body is not None
        assert not body["metadata"].get("finalizers"), body["metadata"]
    for request in _udsink_writes(emulator):
        assert "finalizers" not in request.text, request.text


def _udsink_writes(emu: ApplyingEmulator) -> list[Any]:
    return [
        r
        for r in list(emu)
        if r.method.value in ("POST", "PUT", "PATCH") and "/udsinks/" in r.url.path
    ]


async def test_a_large_udsink_keeps_kopf_bookkeeping_small(emulator: ApplyingEmulator) -> None:
    # ~150 KB of spec: a copy of it in an annotation would not fit beside the spec in the
    # object's 256 KiB annotation budget, so kopf keeps only a digest.
    env = [{"name": f"BLOB_{i}", "value": "x" * 30_000} for i in range(5)]
    sink = {"udsink": {"container": {"image": "ghcr.io/acme/sink:1", "env": env}}}
    async with running_operator(emulator):
        await create(emulator, UDSINK_PATH, udsink_object(sink=sink))
        deployment = await eventually(lambda: stored(emulator, DEPLOYMENTS, "orders"))
        assert deployment["spec"]["replicas"] == 2
        await settle(emulator)
        body = stored(emulator, UDSINKS, "orders")
        assert body is not None
        annotations = body["metadata"].get("annotations", {})
        kopf_bytes = sum(len(k) + len(v) for k, v in annotations.items())
        assert kopf_bytes < 2048, annotations.keys()
        assert any(v.startswith("sha256:") for v in annotations.values()), annotations

        # Changes are still told from echoes: an update reconciles once, then all is quiet.
        await patch(emulator, f"{UDSINK_PATH}/orders", {"spec": {"replicas": 3}})
        await eventually(lambda: stored(emulator, DEPLOYMENTS, "orders")["spec"]["replicas"] == 3)
        await settle(emulator)
        quiet = len(_udsink_writes(emulator))
        # Nothing to wait for: that no write comes is the claim, so a window it would show in.
        await asyncio.sleep(1.0)
        assert len(_udsink_writes(emulator)) == quiet
