"""Pure: (validation result, Deployment state, generation, previous status) -> UDSink status.

Kept apart from the handlers so every combination (invalid spec, paused, rolling out, stuck,
ready) is a table test, and so both triggers (a reconcile of the UDSink and an event of its
Deployment) derive the status the same way. Conditions follow metav1.Condition: a condition's
lastTransitionTime is kept while its status stays the same, so an unchanged world yields an
identical status and the operator writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from sink_runtime.config import constants as rc
from udsink_operator import constants

Status: TypeAlias = dict[str, Any]
ConditionDict: TypeAlias = dict[str, Any]

SPEC_VALID = "spec is valid"
# ConfigValid's message when the operator does not read Secrets (--no-secret-check): the
# user learns that a missing Secret or key is reported by the kubelet on the pods instead.
SPEC_VALID_SECRETS_UNCHECKED = (
    "spec is valid; referenced Secrets were not checked (the operator runs with "
    "--no-secret-check): a missing Secret or key shows in the events of the UDSink's pods"
)

CONDITION_ORDER = (
    constants.CONDITION_CONFIG_VALID,
    constants.CONDITION_READY,
    constants.CONDITION_PROGRESSING,
    constants.CONDITION_DEGRADED,
)


@dataclass(frozen=True)
class Validity:
    """The outcome of validating a spec (schema, cross-field rules and referenced Secrets)."""

    valid: bool
    message: str = ""

    @classmethod
    def ok(cls, message: str = SPEC_VALID) -> Validity:
        """A valid spec; `message` says what was checked (ConfigValid's message)."""
        return cls(valid=True, message=message)

    @classmethod
    def invalid(cls, message: str) -> Validity:
        return cls(valid=False, message=message)


@dataclass(frozen=True)
class DeploymentState:
    """The parts of a Deployment that the status is derived from."""

    desired: int
    replicas: int
    ready: int
    updated: int
    available: int
    # False while the Deployment controller has not seen the latest Deployment spec.
    observed: bool
    stuck_reason: str | None = None
    stuck_message: str = ""

    @classmethod
    def from_object(cls, deployment: Mapping[str, Any]) -> DeploymentState:
        spec = deployment.get("spec") or {}
        status = deployment.get("status") or {}
        generation = (deployment.get("metadata") or {}).get("generation")
        observed_generation = status.get("observedGeneration")
        stuck_reason, stuck_message = None, ""
        for cond in status.get("conditions") or []:
            failed_progress = (
                cond.get("type") == "Progressing"
                and cond.get("status") == "False"
                and cond.get("reason") == "ProgressDeadlineExceeded"
            )
            replica_failure = cond.get("type") == "ReplicaFailure" and cond.get("status") == "True"
            if failed_progress or replica_failure:
                stuck_reason = str(cond.get("reason") or cond.get("type"))
                stuck_message = str(cond.get("message") or "")
        return cls(
            desired=int(spec.get("replicas", 1)),
            replicas=int(status.get("replicas") or 0),
            ready=int(status.get("readyReplicas") or 0),
            updated=int(status.get("updatedReplicas") or 0),
            available=int(status.get("availableReplicas") or 0),
            observed=(
                generation is None
                or observed_generation is None
                or int(observed_generation) >= int(generation)
            ),
            stuck_reason=stuck_reason,
            stuck_message=stuck_message,
        )

    @property
    def rolled_out(self) -> bool:
        """Every pod runs the latest template and no old pod is left (ready or not)."""
        return self.observed and self.updated >= self.desired and self.replicas == self.desired


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def runtime_failure(pods: Iterable[Mapping[str, Any]]) -> str:
    """Why the runtime container of a pod that is not ready last ended, in its own words (its
    termination message, cut to RUNTIME_MESSAGE_MAX_CHARS), naming the pod; "" when no such
    pod has one. The runtime writes a message only for a lasting Kafka refusal, and it names
    UDSink fields and Secret keys, never a secret's value."""
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name", ""))):
        if _pod_ready(pod):
            continue
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            if container.get("name") != rc.CONTAINER_RUNTIME:
                continue
            for state in (container.get("state"), container.get("lastState")):
                ended = (state or {}).get("terminated") or {}
                message = str(ended.get("message") or "").strip()
                if message:
                    cut = message[: constants.RUNTIME_MESSAGE_MAX_CHARS]
                    name = (pod.get("metadata") or {}).get("name", "?")
                    return f"pod {name}: {cut}"
    return ""


@dataclass(frozen=True)
class _Outcome:
    phase: str
    message: str
    ready: tuple[bool, str, str]
    progressing: tuple[bool, str, str]
    degraded: tuple[bool, str, str]


def _outcome(
    validity: Validity, state: DeploymentState | None, paused: bool, failing: str = ""
) -> _Outcome:
    outcome = _deployment_outcome(validity, state, paused)
    if not failing or outcome.ready[0] or state is None or paused or not validity.valid:
        return outcome
    message = f"{outcome.message}; {failing}"
    return dataclasses.replace(
        outcome, message=message, ready=(False, constants.REASON_RUNTIME_FAILING, message)
    )


def _deployment_outcome(
    validity: Validity, state: DeploymentState | None, paused: bool
) -> _Outcome:
    if not validity.valid:
        why = ("InvalidSpec", validity.message)
        return _Outcome(
            constants.PHASE_FAILED,
            validity.message,
            (False, *why),
            (False, *why),
            (True, *why),
        )
    healthy = (False, "AsExpected", "")
    if state is None:
        waiting = "waiting for the Deployment to be created"
        return _Outcome(
            constants.PHASE_PENDING,
            waiting,
            (False, "DeploymentMissing", waiting),
            (True, "Creating", waiting),
            healthy,
        )
    if paused:
        draining = state.replicas > 0
        message = f"paused ({state.replicas} pods still terminating)" if draining else "paused"
        return _Outcome(
            constants.PHASE_PAUSED,
            message,
            (False, "Paused", message),
            (draining, "ScalingDown" if draining else "Paused", message),
            healthy,
        )
    counts = f"{state.ready}/{state.desired} replicas ready"
    if state.stuck_reason is not None:
        message = f"{counts}; {state.stuck_reason}: {state.stuck_message}".rstrip(": ")
        return _Outcome(
            constants.PHASE_FAILED,
            message,
            (False, state.stuck_reason, message),
            (False, state.stuck_reason, message),
            (True, state.stuck_reason, message),
        )
    if state.rolled_out:
        ready = state.ready >= state.desired
        running = ready or state.ready > 0
        return _Outcome(
            constants.PHASE_RUNNING if running else constants.PHASE_PENDING,
            counts,
            (ready, "ReplicasReady" if ready else "ReplicasNotReady", counts),
            (False, "RolloutComplete", counts),
            healthy,
        )
    rolling = f"rolling out: {state.updated}/{state.desired} updated, {counts}"
    return _Outcome(
        constants.PHASE_PENDING,
        rolling,
        (False, "RollingOut", rolling),
        (True, "RollingOut", rolling),
        healthy,
    )


def _condition(
    kind: str,
    value: tuple[bool, str, str],
    *,
    previous: Mapping[str, Mapping[str, Any]],
    generation: int | None,
    now: str,
) -> ConditionDict:
    is_true, reason, message = value
    status = "True" if is_true else "False"
    before = previous.get(kind)
    # metav1.Condition: the transition time moves only when the status flips.
    since = before["lastTransitionTime"] if before and before.get("status") == status else now
    cond: ConditionDict = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def derive_status(
    *,
    validity: Validity,
    deployment: Mapping[str, Any] | None,
    paused: bool,
    observed_generation: int | None,
    selector: str,
    previous: Mapping[str, Any] | None,
    now: datetime.datetime,
    runtime_failing: str = "",
) -> Status:
    """The whole status of a UDSink (the keys the operator owns); `runtime_failing` is
    `runtime_failure` of its pods, shown while not every replica is ready."""
    state = None if deployment is None else DeploymentState.from_object(deployment)
    outcome = _outcome(validity, state, paused, runtime_failing)
    before = {
        c["type"]: c
        for c in (previous or {}).get("conditions") or []
        if isinstance(c, Mapping) and "type" in c
    }
    stamp = rfc3339(now)
    config_valid = (
        (True, "Valid", validity.message or SPEC_VALID)
        if validity.valid
        else (False, "InvalidSpec", validity.message)
    )
    values = {
        constants.CONDITION_CONFIG_VALID: config_valid,
        constants.CONDITION_READY: outcome.ready,
        constants.CONDITION_PROGRESSING: outcome.progressing,
        constants.CONDITION_DEGRADED: outcome.degraded,
    }
    status: Status = {
        "phase": outcome.phase,
        "replicas": state.replicas if state else 0,
        "readyReplicas": state.ready if state else 0,
        "selector": selector,
        "message": outcome.message,
        "conditions": [
            _condition(
                kind, values[kind], previous=before, generation=observed_generation, now=stamp
            )
            for kind in CONDITION_ORDER
        ],
    }
    if observed_generation is not None:
        status["observedGeneration"] = observed_generation
    return status


def validity_from_status(status: Mapping[str, Any] | None) -> Validity:
    """The last validation result recorded in a status (for updates driven by Deployment
    events, which do not re-validate the spec)."""
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") != constants.CONDITION_CONFIG_VALID:
            continue
        if cond.get("status") == "False":
            return Validity.invalid(str(cond.get("message") or ""))
        return Validity.ok(str(cond.get("message") or SPEC_VALID))
    return Validity.ok()


def status_changed(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing `new` would change anything (keys of others, e.g. kopf's, are ignored)."""
    old = previous or {}
    return any(old.get(key) != value for key, value in new.items())
