"""kopf wiring: every trigger computes the full desired state and converges on it.

Create, update and resume (operator start) all run the same `Reconciler.reconcile`: validate
(pydantic, then the referenced Secret keys unless the secret check is off), build the
children (pure, `build.py`), compare each with the live object, server-side dry-run every one
that differs and, when the API server refuses none, apply them; then derive the status (pure,
`status.py`) and write it only when it changed. A second pass over an unchanged world
therefore issues no write at all. Deployment events of owned Deployments refresh the status.
Children are owned through ownerReferences, so deletion is garbage collection: there is no
delete handler and no finalizer (and no kopf timer or daemon, which would add one). An invalid
spec touches no child, nor does one the API server would refuse in any child (the dry run comes
first); it is reported in status (ConfigValid=False, phase Failed) and as a Kubernetes Event.
A valid spec waiting for a Secret or key is re-checked by kopf's own retry (a temporary error
with the re-check delay).

While a UDSink has fewer ready replicas than wanted, the status also says why its runtime
container last ended when it left a termination message (a lasting Kafka refusal): the
operator lists the UDSink's pods for it, and pod events of its pods (server-side selected by
the managed-by label) refresh the status, since a runtime that restarts without ever being
ready changes nothing in the Deployment's status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

import kopf

from udsink_operator import api, build, constants, drift, status
from udsink_operator.cluster import ApiError, Cluster, bearer_token, manifest_path
from udsink_operator.metrics import OperatorMetrics

# (involved object, event type, reason, message)
EventPoster: TypeAlias = Callable[[Mapping[str, Any], str, str, str], None]
SidecarChoice: TypeAlias = Literal["auto"] | build.SidecarMode

log = logging.getLogger(__name__)

# The pods the operator watches: those of UDSinks (their template carries the child labels).
PODS = ("v1", "pods")
MANAGED_PODS = {constants.LABEL_MANAGED_BY: constants.FIELD_MANAGER}


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


def post_kopf_event(body: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
    kopf.event(
        kopf.Body(cast(kopf.RawBody, dict(body))), type=kind, reason=reason, message=message[:1024]
    )


def sidecars_for_version(version: Mapping[str, Any]) -> build.SidecarMode:
    """Native sidecars from Kubernetes 1.29 on (enabled by default there), plain before."""
    minor_text = "".join(ch for ch in str(version.get("minor", "")) if ch.isdigit())
    major_text = "".join(ch for ch in str(version.get("major", "")) if ch.isdigit())
    if not minor_text or not major_text:
        return "native"
    if int(major_text) > 1 or int(minor_text) >= constants.NATIVE_SIDECARS_MIN_MINOR:
        return "native"
    return "plain"


def _paused(body: Mapping[str, Any]) -> bool:
    lifecycle = (body.get("spec") or {}).get("lifecycle") or {}
    return bool(lifecycle.get("desiredPhase") == constants.PHASE_PAUSED)


def controller_owner(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The UDSink that controls a child, from its ownerReferences."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        ours = ref.get("kind") == constants.KIND and ref.get("apiVersion") == constants.API_VERSION
        if ours and ref.get("controller"):
            owner: Mapping[str, Any] = ref
            return owner
    return None


class WaitingFor(Exception):
    """A valid spec refers to something that does not exist yet (a Secret, a key in it)."""


@dataclass
class Reconciler:
    """Converges one UDSink's children and status on its spec."""

    cluster: Cluster
    options: build.BuildOptions = field(default_factory=build.BuildOptions)
    clock: Callable[[], datetime.datetime] = utc_now
    # Read the referenced Secrets to check their keys. Off, the operator never reads a Secret
    # (the chart then grants none) and the kubelet reports a missing one on the pods.
    check_secrets: bool = True

    # --- validation ---

    def secret_issues(self, udsink: api.UDSink) -> list[str]:
        """Referenced Secrets and keys that do not exist (the pods would never start)."""
        namespace = udsink.metadata.namespace
        seen: dict[str, Mapping[str, Any] | None] = {}
        issues: list[str] = []
        for path, ref in udsink.spec.secret_refs():
            if ref.name not in seen:
                seen[ref.name] = self.cluster.get_secret(namespace, ref.name)
            secret = seen[ref.name]
            if secret is None:
                issues.append(f"{path}: Secret {ref.name!r} not found in namespace {namespace!r}")
                continue
            keys = {*(secret.get("data") or {}), *(secret.get("stringData") or {})}
            if ref.key not in keys:
                issues.append(
                    f"{path}: Secret {ref.name!r} has no key {ref.key!r} "
                    f"(it has: {', '.join(sorted(keys)) or 'no keys'})"
                )
        return issues

    def validate(self, body: Mapping[str, Any]) -> tuple[api.UDSink | None, list[str]]:
        try:
            udsink = api.parse_udsink(body)
        except api.SpecError as err:
            return None, err.issues
        return udsink, self.secret_issues(udsink) if self.check_secrets else []

    def valid(self) -> status.Validity:
        """ConfigValid for a spec that passed `validate`, saying whether Secrets were read."""
        if self.check_secrets:
            return status.Validity.ok()
        return status.Validity.ok(status.SPEC_VALID_SECRETS_UNCHECKED)

    # --- status ---

    def write_status(
        self,
        body: Mapping[str, Any],
        new: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> bool:
        """Patch the status when it differs from the one in `body`; True if written."""
        if not status.status_changed(body.get("status"), new):
            return False
        meta = body["metadata"]
        self.cluster.patch_status(
            meta["namespace"], meta["name"], new, resource_version=resource_version
        )
        return True

    def _status(
        self,
        body: Mapping[str, Any],
        validity: status.Validity,
        deployment: Mapping[str, Any] | None,
        observed_generation: int | None,
    ) -> status.Status:
        selector = build.selector_string(body["metadata"]["name"])
        return status.derive_status(
            validity=validity,
            deployment=deployment,
            paused=_paused(body),
            observed_generation=observed_generation,
            selector=selector,
            previous=body.get("status"),
            now=self.clock(),
            runtime_failing=self.runtime_failing(body, validity, deployment, selector),
        )

    def runtime_failing(
        self,
        body: Mapping[str, Any],
        validity: status.Validity,
        deployment: Mapping[str, Any] | None,
        selector: str,
    ) -> str:
        """Why a runtime container of a pod that is not ready last ended (`status.
        runtime_failure`); the pods are listed only while some exist and replicas are
        missing."""
        if deployment is None or not validity.valid or _paused(body):
            return ""
        state = status.DeploymentState.from_object(deployment)
        if state.replicas == 0 or state.ready >= state.desired:
            return ""
        pods = self.cluster.list_pods(body["metadata"]["namespace"], selector)
        return status.runtime_failure(pods)

    def report_invalid(
        self, body: Mapping[str, Any], issues: list[str], post_event: EventPoster
    ) -> None:
        """Record an invalid spec: status and an Event; the children stay as they are."""
        meta = body["metadata"]
        message = "; ".join(issues)
        deployment = self.cluster.get_deployment(meta["namespace"], meta["name"])
        new = self._status(
            body, status.Validity.invalid(message), deployment, meta.get("generation")
        )
        if self.write_status(body, new):
            post_event(body, "Warning", "InvalidSpec", message)

    # --- the reconcile ---

    def refusals(self, manifests: Sequence[Mapping[str, Any]]) -> list[str]:
        """Why the API server would refuse any of `manifests`, from a server-side dry run of
        each (schema, defaulting, admission; nothing is persisted). Empty: apply them all."""
        found: list[str] = []
        for manifest in manifests:
            try:
                self.cluster.apply(manifest, dry_run=True)
            except ApiError as err:
                if err.status not in (400, 422):
                    raise
                # The child's own field path is in the message; name the child first.
                found.append(
                    f"the API server refuses {manifest['kind']} "
                    f"{manifest['metadata']['name']}: {err.message}"
                )
        return found

    def reconcile(self, body: Mapping[str, Any], post_event: EventPoster) -> list[str]:
        """Converge on the spec; returns the children that were written ("Kind/name").

        Raises `WaitingFor` when the spec is valid but refers to what does not exist yet (a
        Secret or one of its keys): the caller re-checks later.
        """
        udsink, issues = self.validate(body)
        if udsink is None or issues:
            self.report_invalid(body, issues, post_event)
            if udsink is not None:
                raise WaitingFor("; ".join(issues))
            return []
        children = build.build(udsink, self.options)
        live = {manifest_path(m): self.cluster.get(manifest_path(m)) for m in children.manifests()}
        stale = [m for m in children.manifests() if not drift.up_to_date(m, live[manifest_path(m)])]
        refusals = self.refusals(stale)
        if refusals:
            # Nothing was written: the children stay consistent with each other (a runtime
            # never reads a ConfigMap its pod template was not rolled for).
            self.report_invalid(body, refusals, post_event)
            return []
        written: list[str] = []
        for manifest in stale:
            live[manifest_path(manifest)] = self.cluster.apply(manifest)
            written.append(f"{manifest['kind']}/{manifest['metadata']['name']}")
        deployment = live[manifest_path(children.deployment)]
        if written:
            post_event(body, "Normal", "Applied", f"applied {', '.join(written)}")
        new = self._status(body, self.valid(), deployment, udsink.metadata.generation)
        self.write_status(body, new)
        return written

    def refresh_from_deployment(
        self, deployment: Mapping[str, Any], event_type: str | None, post_event: EventPoster
    ) -> None:
        """A watched Deployment changed: re-derive its owner's status. When an owned
        Deployment is deleted while its UDSink lives, converge again (recreate it)."""
        owner = controller_owner(deployment)
        if owner is None:
            return
        namespace = deployment["metadata"]["namespace"]
        gone = event_type == "DELETED"
        for _attempt in range(3):
            body = self.cluster.get_udsink(namespace, owner["name"])
            if body is None or body["metadata"].get("deletionTimestamp"):
                return
            if owner.get("uid") and body["metadata"].get("uid") not in (None, owner["uid"]):
                return  # a newer UDSink with the same name: not this Deployment's owner
            previous = body.get("status") or {}
            validity = status.validity_from_status(previous)
            new = self._status(
                body, validity, None if gone else deployment, previous.get("observedGeneration")
            )
            try:
                self.write_status(
                    body, new, resource_version=body["metadata"].get("resourceVersion")
                )
                break
            except ApiError as err:
                if err.status != 409:  # someone else wrote it first: read again
                    raise
        if gone and validity.valid and body is not None:
            with contextlib.suppress(WaitingFor):  # reported; the UDSink's handler re-checks
                self.reconcile(body, post_event)

    def refresh_from_pod(self, pod: Mapping[str, Any], post_event: EventPoster) -> None:
        """A pod of a UDSink changed: when its runtime container left a termination message
        while the pod is not ready, re-derive the owner's status from its Deployment."""
        if not status.runtime_failure([pod]):
            return  # a pod becoming ready changes the Deployment, whose event refreshes
        meta = pod["metadata"]
        name = (meta.get("labels") or {}).get(constants.LABEL_UDSINK)
        if not name:
            return
        deployment = self.cluster.get_deployment(meta["namespace"], name)
        if deployment is not None:
            self.refresh_from_deployment(deployment, None, post_event)


# --- kopf registration ---


@dataclass(frozen=True)
class OperatorOptions:
    """What `udsink operator` lets the user choose besides where to watch."""

    runtime_image: str = constants.DEFAULT_RUNTIME_IMAGE
    # Defaults of the runtime container's resources (BuildOptions.runtime_resources).
    runtime_resources: api.Resources | None = None
    sidecars: SidecarChoice = "auto"
    # How often UDSinks in phase Failed are reconciled again (a missing Secret may appear).
    recheck_interval: float = 60.0
    # Check that referenced Secrets and keys exist (needs `get` on Secrets; see Reconciler).
    check_secrets: bool = True


def connection_info(cluster: Cluster) -> kopf.ConnectionInfo:
    """kopf's credentials from the same client configuration the operator's calls use."""
    config = cluster.config
    token = bearer_token(config)
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert or None,
        insecure=not config.verify_ssl,
        scheme="Bearer" if token else None,
        token=token,
        certificate_path=config.cert_file or None,
        private_key_path=config.key_file or None,
        username=config.username or None,
        password=config.password or None,
    )


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's last-handled state as a digest, not a copy of the spec.

    kopf keeps the last handled spec to tell an update from an echo; in an annotation, a
    copy of a 150 KB spec fills the object's 256 KiB annotation budget and kopf then fails on
    every event. Our handlers converge on the whole spec and never read kopf's diff, so a
    digest of it is enough: an equal digest yields the current state (no change), another
    one a state that differs from it (a change). An annotation written by an operator that
    stored the full state differs too: one idempotent reconcile, then the digest.
    """

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        digest = _digest(essence)
        for full_key in self.make_keys(self.key, body=body):
            patch.metadata.annotations[full_key] = digest
        self._store_marker(prefix=self.prefix, patch=patch, body=body)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        for full_key in self.make_keys(self.key, body=body):
            stored = body.metadata.annotations.get(full_key)
            if stored is None:
                continue
            current = self.build(body=body)
            if stored == _digest(current):
                return current
            return cast(kopf.BodyEssence, {"spec": {"lastHandledDigest": stored.strip()}})
        return None


def _digest(essence: Mapping[str, Any]) -> str:
    canonical = json.dumps(essence, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def configure_settings(settings: kopf.OperatorSettings) -> None:
    # Progress lives in annotations only: the status belongs to the UDSink's users.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=f"operator.{constants.GROUP}"
    )
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(
        prefix=f"operator.{constants.GROUP}", key="last-handled-configuration"
    )
    # Only explicit kopf.event() calls become Kubernetes Events, not every log line.
    settings.posting.loggers = False
    # Pods are many: the API server sends only the UDSinks' own.
    settings.watching.label_selectors[PODS] = ",".join(f"{k}={v}" for k, v in MANAGED_PODS.items())


def _temporary(err: ApiError) -> kopf.TemporaryError:
    return kopf.TemporaryError(str(err), delay=5)


def build_registry(
    cluster: Cluster, options: OperatorOptions, metrics: OperatorMetrics | None = None
) -> kopf.OperatorRegistry:
    """All handlers of the operator in a fresh registry (no module-level state)."""
    registry = kopf.OperatorRegistry()
    metrics = metrics or OperatorMetrics()
    initial = "native" if options.sidecars == "auto" else options.sidecars
    reconciler = Reconciler(
        cluster,
        build.BuildOptions(
            runtime_image=options.runtime_image,
            sidecars=initial,
            runtime_resources=options.runtime_resources,
        ),
        check_secrets=options.check_secrets,
    )
    resource = (constants.GROUP, constants.VERSION, constants.PLURAL)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(cluster)

    @kopf.on.startup(registry=registry)
    def startup(*, settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
        configure_settings(settings)
        if options.sidecars == "auto":
            mode = sidecars_for_version(cluster.server_version())
            reconciler.options = dataclasses.replace(reconciler.options, sidecars=mode)
            logger.info("sidecar containers: %s (detected from the server version)", mode)

    def reconcile(*, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        try:
            with metrics.reconciling(not_errors=(WaitingFor,)):
                written = reconciler.reconcile(dict(body), post_kopf_event)
        except ApiError as err:
            raise _temporary(err) from err
        except WaitingFor as waiting:
            # Re-checked by kopf after the delay, with no finalizer (a kopf timer would add
            # one, and a UDSink left with a finalizer outlives the operator).
            raise kopf.TemporaryError(
                f"waiting for {waiting}; re-checking in {options.recheck_interval:g}s",
                delay=options.recheck_interval,
            ) from None
        if written:
            logger.info("applied %s", ", ".join(written))

    for register, handler_id in (
        (kopf.on.create, "reconcile-create"),
        (kopf.on.update, "reconcile-update"),
        (kopf.on.resume, "reconcile-resume"),
    ):
        register(*resource, id=handler_id, registry=registry)(reconcile)

    @kopf.on.event(*resource, registry=registry)
    def udsink_seen(*, event: kopf.RawEvent, **_: Any) -> None:
        meta, phase = (
            event["object"]["metadata"],
            (event["object"].get("status") or {}).get("phase"),
        )
        gone = event.get("type") == "DELETED"
        metrics.saw(
            meta["namespace"], meta["name"], None if gone else phase or constants.PHASE_PENDING
        )

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        labels={constants.LABEL_MANAGED_BY: constants.FIELD_MANAGER},
        registry=registry,
    )
    def deployment_changed(*, event: kopf.RawEvent, **_: Any) -> None:
        deployment = event["object"]
        if controller_owner(deployment) is None:
            return
        try:
            reconciler.refresh_from_deployment(deployment, event.get("type"), post_kopf_event)
        except ApiError as err:
            log.warning("status refresh from %s failed: %s", manifest_path(deployment), err)

    @kopf.on.event(*PODS, labels=MANAGED_PODS, registry=registry)
    def pod_changed(*, event: kopf.RawEvent, **_: Any) -> None:
        pod = event["object"]
        if event.get("type") == "DELETED":
            return
        try:
            reconciler.refresh_from_pod(pod, post_kopf_event)
        except ApiError as err:
            log.warning("status refresh from pod %s failed: %s", pod["metadata"]["name"], err)

    return registry


def operator_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    configure_settings(settings)
    return settings
