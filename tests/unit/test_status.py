"""Status derivation: phase, metav1 conditions, transition times, and when to write."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from udsink_operator import api, constants, status

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)
SELECTOR = "udsink.dev/name=orders"


def deployment(
    desired: int = 2,
    *,
    replicas: int = 2,
    ready: int = 2,
    updated: int = 2,
    available: int | None = None,
    generation: int | None = 3,
    observed: int | None = 3,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "replicas": replicas,
        "readyReplicas": ready,
        "updatedReplicas": updated,
        "availableReplicas": ready if available is None else available,
        "conditions": conditions or [],
    }
    if observed is not None:
        state["observedGeneration"] = observed
    meta = {} if generation is None else {"generation": generation}
    return {"metadata": meta, "spec": {"replicas": desired}, "status": state}


OK = status.Validity.ok()


def derive(
    validity: status.Validity = OK,
    dep: dict[str, Any] | None = None,
    *,
    paused: bool = False,
    previous: dict[str, Any] | None = None,
    now: datetime.datetime = T0,
) -> dict[str, Any]:
    return status.derive_status(
        validity=validity,
        deployment=dep,
        paused=paused,
        observed_generation=4,
        selector=SELECTOR,
        previous=previous,
        now=now,
    )


def conditions(result: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in result["conditions"]}


STUCK = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": "ReplicaSet has timed out progressing.",
}
QUOTA = {
    "type": "ReplicaFailure",
    "status": "True",
    "reason": "FailedCreate",
    "message": "exceeded quota",
}

CASES: list[tuple[str, dict[str, Any], str, str, dict[str, tuple[str, str]]]] = [
    (
        "no-deployment-yet",
        {"dep": None},
        "Pending",
        "waiting for the Deployment to be created",
        {
            "ConfigValid": ("True", "Valid"),
            "Ready": ("False", "DeploymentMissing"),
            "Progressing": ("True", "Creating"),
            "Degraded": ("False", "AsExpected"),
        },
    ),
    (
        "all-ready",
        {"dep": deployment()},
        "Running",
        "2/2 replicas ready",
        {
            "ConfigValid": ("True", "Valid"),
            "Ready": ("True", "ReplicasReady"),
            "Progressing": ("False", "RolloutComplete"),
            "Degraded": ("False", "AsExpected"),
        },
    ),
    (
        "one-pod-not-ready",
        {"dep": deployment(ready=1, available=1)},
        "Running",
        "1/2 replicas ready",
        {
            "Ready": ("False", "ReplicasNotReady"),
            "Progressing": ("False", "RolloutComplete"),
            "Degraded": ("False", "AsExpected"),
        },
    ),
    (
        "rolled-out-none-ready",
        {"dep": deployment(ready=0, available=0)},
        "Pending",
        "0/2 replicas ready",
        {"Ready": ("False", "ReplicasNotReady"), "Progressing": ("False", "RolloutComplete")},
    ),
    (
        "rolling-out",
        {"dep": deployment(replicas=3, ready=2, updated=1)},
        "Pending",
        "rolling out: 1/2 updated, 2/2 replicas ready",
        {"Ready": ("False", "RollingOut"), "Progressing": ("True", "RollingOut")},
    ),
    (
        "controller-has-not-seen-new-spec",
        {"dep": deployment(generation=4, observed=3)},
        "Pending",
        "rolling out: 2/2 updated, 2/2 replicas ready",
        {"Progressing": ("True", "RollingOut")},
    ),
    (
        "scaled-to-zero",
        {"dep": deployment(0, replicas=0, ready=0, updated=0)},
        "Running",
        "0/0 replicas ready",
        {"Ready": ("True", "ReplicasReady")},
    ),
    (
        "stuck-rollout",
        {"dep": deployment(ready=1, updated=1, conditions=[STUCK])},
        "Failed",
        "1/2 replicas ready; ProgressDeadlineExceeded: ReplicaSet has timed out progressing.",
        {
            "ConfigValid": ("True", "Valid"),
            "Ready": ("False", "ProgressDeadlineExceeded"),
            "Degraded": ("True", "ProgressDeadlineExceeded"),
        },
    ),
    (
        "replica-failure",
        {"dep": deployment(ready=0, replicas=0, updated=0, conditions=[QUOTA])},
        "Failed",
        "0/2 replicas ready; FailedCreate: exceeded quota",
        {"Degraded": ("True", "FailedCreate")},
    ),
    (
        "paused-draining",
        {"dep": deployment(0, replicas=2, ready=2), "paused": True},
        "Paused",
        "paused (2 pods still terminating)",
        {"Ready": ("False", "Paused"), "Progressing": ("True", "ScalingDown")},
    ),
    (
        "paused",
        {"dep": deployment(0, replicas=0, ready=0, updated=0), "paused": True},
        "Paused",
        "paused",
        {"Ready": ("False", "Paused"), "Progressing": ("False", "Paused")},
    ),
    (
        "invalid-spec",
        {"validity": status.Validity.invalid("spec.sink: boom"), "dep": deployment()},
        "Failed",
        "spec.sink: boom",
        {
            "ConfigValid": ("False", "InvalidSpec"),
            "Ready": ("False", "InvalidSpec"),
            "Progressing": ("False", "InvalidSpec"),
            "Degraded": ("True", "InvalidSpec"),
        },
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "phase", "message", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_phase_message_and_conditions(
    kwargs: dict[str, Any], phase: str, message: str, expected: dict[str, tuple[str, str]]
) -> None:
    result = derive(**kwargs)
    assert result["phase"] == phase
    assert result["message"] == message
    got = conditions(result)
    assert [c["type"] for c in result["conditions"]] == [
        "ConfigValid",
        "Ready",
        "Progressing",
        "Degraded",
    ]
    for kind, value in expected.items():
        assert got[kind] == value, kind


def test_counts_selector_and_generation() -> None:
    result = derive(dep=deployment(3, replicas=4, ready=2, updated=3))
    assert (result["replicas"], result["readyReplicas"]) == (4, 2)
    assert result["selector"] == SELECTOR
    assert result["observedGeneration"] == 4
    assert all(c["observedGeneration"] == 4 for c in result["conditions"])
    assert all(c["lastTransitionTime"] == "2026-01-01T12:00:00Z" for c in result["conditions"])


def test_transition_time_kept_while_status_unchanged() -> None:
    first = derive(dep=deployment(ready=1, available=1))
    same = derive(dep=deployment(ready=1, available=1), previous=first, now=T1)
    assert same == first
    assert not status.status_changed(first, same)

    ready = derive(dep=deployment(), previous=first, now=T1)
    times = {c["type"]: c["lastTransitionTime"] for c in ready["conditions"]}
    assert times["Ready"] == "2026-01-01T12:05:00Z"  # flipped to True
    assert times["ConfigValid"] == "2026-01-01T12:00:00Z"  # still True
    assert status.status_changed(first, ready)


def test_status_changed_ignores_keys_of_others() -> None:
    current = derive(dep=deployment())
    stored = {**current, "kopf": {"progress": {}}}
    assert not status.status_changed(stored, current)
    assert status.status_changed(None, current)


def test_validity_recorded_in_status() -> None:
    invalid = derive(status.Validity.invalid("spec.batch.size: too big"))
    assert status.validity_from_status(invalid) == status.Validity.invalid(
        "spec.batch.size: too big"
    )
    assert status.validity_from_status(derive(dep=deployment())) == status.Validity.ok()
    assert status.validity_from_status(None) == status.Validity.ok()
    # What a valid spec's check covered survives a status refresh from a Deployment event.
    unchecked = status.Validity.ok(status.SPEC_VALID_SECRETS_UNCHECKED)
    recorded = derive(unchecked, dep=deployment())
    config_valid = [c for c in recorded["conditions"] if c["type"] == "ConfigValid"]
    assert [c["message"] for c in config_valid] == [status.SPEC_VALID_SECRETS_UNCHECKED]
    assert status.validity_from_status(recorded) == unchecked


@pytest.mark.parametrize("kwargs", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_every_status_written_is_the_schema_s_shape(kwargs: dict[str, Any]) -> None:
    # The status the operator writes (dicts built in status.py) and the CRD's status schema
    # (api.UDSinkStatus) are two descriptions of one shape: every status must parse as the
    # model, unknown keys refused, and come back unchanged.
    result = derive(**kwargs)
    model = api.UDSinkStatus.model_validate(result)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == result


# --- why the runtime container last ended, from the pods ---

ENDED = "kafka refused the connection for 60s: spec.source.kafka.sasl ... key 'password'"


def pod(name: str, *, ready: bool, container: str = "runtime", **states: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": container, **states}],
        },
    }


def ended(message: str) -> dict[str, Any]:
    return {"terminated": {"exitCode": 3, "message": message}}


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([], ""),
        # Restarted and running again, or waiting in back-off: the last end is what counts.
        ([pod("a", ready=False, state={"running": {}}, lastState=ended(ENDED))], f"pod a: {ENDED}"),
        ([pod("a", ready=False, state=ended(ENDED))], f"pod a: {ENDED}"),
        # A ready pod's old end is history; an end without a message says nothing.
        ([pod("a", ready=True, state={"running": {}}, lastState=ended(ENDED))], ""),
        ([pod("a", ready=False, lastState=ended(""))], ""),
        # Only the runtime's words: a sink container's message is the sink author's.
        ([pod("a", ready=False, container="udsink", lastState=ended("boom"))], ""),
        # Several pods: one, the same one each time.
        (
            [
                pod("b", ready=False, lastState=ended("second")),
                pod("a", ready=False, lastState=ended("first")),
            ],
            "pod a: first",
        ),
    ],
)
def test_runtime_failure_from_pods(pods: list[dict[str, Any]], expected: str) -> None:
    assert status.runtime_failure(pods) == expected


def test_runtime_failure_is_cut_to_its_bound() -> None:
    long = "x" * (constants.RUNTIME_MESSAGE_MAX_CHARS * 4)
    found = status.runtime_failure([pod("a", ready=False, lastState=ended(long))])
    assert found == "pod a: " + "x" * constants.RUNTIME_MESSAGE_MAX_CHARS


def test_ready_says_why_the_runtime_ended_until_every_replica_is_ready() -> None:
    why = f"pod a: {ENDED}"
    failing = status.derive_status(
        validity=OK,
        deployment=deployment(ready=1),
        paused=False,
        observed_generation=4,
        selector=SELECTOR,
        previous=None,
        now=T0,
        runtime_failing=why,
    )
    ready = {c["type"]: c for c in failing["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", constants.REASON_RUNTIME_FAILING)
    assert ready["message"] == failing["message"] == f"1/2 replicas ready; {why}"
    assert failing["phase"] == constants.PHASE_RUNNING
    # Ready, paused or invalid: the message has nothing to explain.
    for kwargs in (
        {"deployment": deployment()},
        {"deployment": deployment(ready=0), "paused": True},
        {"deployment": deployment(ready=0), "validity": status.Validity.invalid("bad")},
    ):
        args: dict[str, Any] = {"validity": OK, "paused": False, **kwargs}
        derived = status.derive_status(
            **args,
            observed_generation=4,
            selector=SELECTOR,
            previous=None,
            now=T0,
            runtime_failing=why,
        )
        assert why not in str(derived), kwargs
