"""Pure builders: a validated UDSink -> RuntimeConfig, ConfigMap, Deployment, Service.

No I/O and no clock: the same UDSink always yields byte-identical children, which is what makes
the operator idempotent (compare, then apply only on a difference) and what lets `udsink render`
show exactly what the operator would apply. The pod layout is docs/concepts.md's: the `runtime`
container, the user's sink containers as native sidecars sharing the socket directory, Kafka
secrets mounted into `runtime` only, restricted-profile security contexts, and a hash of the
rendered config on the pod template so a config change rolls the pods.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pydantic import BaseModel

from sink_runtime.config import (
    Backoff,
    BatchConfig,
    BlackholeSinkConfig,
    GeneratorSourceConfig,
    KafkaSinkConfig,
    KafkaSourceConfig,
    KeyHeadersConfig,
    LogSinkConfig,
    NackConfig,
    ObservabilityConfig,
    RetryStrategy,
    RuntimeConfig,
    SaslFiles,
    SecondaryRetry,
    SinkConfig,
    TlsFiles,
    UserSinkConfig,
    memory,
    revised,
)
from sink_runtime.config import constants as rc
from sink_runtime.config.sink_liveness import sink_livez_path, sink_probe_timing
from udsink_operator import api, constants

Manifest: TypeAlias = dict[str, Any]
SidecarMode: TypeAlias = rc.SidecarMode


@dataclass(frozen=True)
class BuildOptions:
    """Operator-wide choices that are not part of a UDSink."""

    runtime_image: str = constants.DEFAULT_RUNTIME_IMAGE
    # native: initContainers with restartPolicy Always (Kubernetes >= 1.29);
    # plain: ordinary containers, for older clusters (no start/stop ordering).
    sidecars: SidecarMode = "native"
    # The operator-wide defaults of the runtime container's resources (the chart's
    # runtime.resources), between the built-in ones and a UDSink's own (`runtime_resources`).
    runtime_resources: api.Resources | None = None


@dataclass(frozen=True)
class Children:
    """Everything built from one UDSink, in the order the operator applies it."""

    config: RuntimeConfig
    config_map: Manifest
    service: Manifest
    deployment: Manifest
    config_hash: str = field(default="")

    def manifests(self) -> list[Manifest]:
        # The ConfigMap first: pods of a new Deployment mount it.
        return [self.config_map, self.service, self.deployment]


# --- Names and labels ---


def config_map_name(name: str) -> str:
    return f"{name}{constants.CONFIG_MAP_SUFFIX}"


def service_name(name: str) -> str:
    return f"{name}{constants.METRICS_SERVICE_SUFFIX}"


def selector_labels(name: str) -> dict[str, str]:
    """The labels that select a UDSink's pods (immutable in a Deployment: keep it minimal)."""
    return {constants.LABEL_UDSINK: name}


def selector_string(name: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector_labels(name).items())


def child_labels(name: str) -> dict[str, str]:
    # Never the UDSink's own labels: they may carry Argo CD's tracking label, which would make
    # Argo CD adopt and prune our children.
    return {
        constants.LABEL_APP_NAME: constants.APP_NAME,
        constants.LABEL_MANAGED_BY: constants.FIELD_MANAGER,
        **selector_labels(name),
    }


def owner_references(udsink: api.UDSink) -> list[Manifest]:
    if udsink.metadata.uid is None:  # rendered from a file: nothing to own it yet
        return []
    return [
        {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND,
            "name": udsink.metadata.name,
            "uid": udsink.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def child_metadata(udsink: api.UDSink, name: str) -> Manifest:
    meta: Manifest = {
        "name": name,
        "namespace": udsink.metadata.namespace,
        "labels": child_labels(udsink.metadata.name),
    }
    owners = owner_references(udsink)
    if owners:
        meta["ownerReferences"] = owners
    return meta


# --- Secrets: referenced in the spec, mounted as files into `runtime` ---


def secret_file(ref: api.SecretKeyRef) -> str:
    return f"{rc.SECRETS_DIR}/{ref.name}/{ref.key}"


def secret_volume_name(secret: str) -> str:
    """A DNS-label volume name for a Secret (Secret names may be longer and contain dots)."""
    readable = re.sub(r"[^a-z0-9-]", "-", secret)
    name = f"{constants.SECRET_VOLUME_PREFIX}{readable}"
    if len(name) <= 63 and readable == secret:
        return name
    digest = hashlib.sha256(secret.encode()).hexdigest()[:8]
    return f"{name[: 63 - 9].rstrip('-')}-{digest}"


def secret_keys(spec: api.UDSinkSpec) -> dict[str, list[str]]:
    """Secret name -> sorted keys the runtime reads from it."""
    keys: dict[str, set[str]] = {}
    for _, ref in spec.secret_refs():
        keys.setdefault(ref.name, set()).add(ref.key)
    return {name: sorted(keys[name]) for name in sorted(keys)}


def _file(ref: api.SecretKeyRef | None) -> str | None:
    return None if ref is None else secret_file(ref)


# --- RuntimeConfig ---


def _tls(tls: api.Tls | None) -> TlsFiles | None:
    if tls is None:
        return None
    return TlsFiles(
        ca_file=_file(tls.ca_cert_secret),
        cert_file=_file(tls.cert_secret),
        key_file=_file(tls.key_secret),
        insecure_skip_verify=tls.insecure_skip_verify,
    )


def _sasl(sasl: api.Sasl | None) -> SaslFiles | None:
    if sasl is None:
        return None
    creds = sasl.credentials()
    if isinstance(creds, api.SaslOAuth):
        return SaslFiles(
            mechanism=sasl.mechanism,
            token_endpoint=creds.token_endpoint,
            client_id_file=secret_file(creds.client_id),
            client_secret_file=secret_file(creds.client_secret),
            scope=creds.scope,
        )
    return SaslFiles(
        mechanism=sasl.mechanism,
        username_file=secret_file(creds.user_secret),
        password_file=secret_file(creds.password_secret),
    )


def _kafka_sink(sink: api.KafkaSink) -> KafkaSinkConfig:
    return KafkaSinkConfig(
        brokers=sink.brokers,
        tls=_tls(sink.tls),
        sasl=_sasl(sink.sasl),
        config=sink.config,
        topic=sink.topic,
        set_key=sink.set_key,
        key_separator=sink.key_separator,
        headers=KeyHeadersConfig(
            keys=sink.headers.keys,
            keys_header=sink.headers.keys_header,
            propagate=sink.headers.propagate,
            static=sink.headers.static,
        ),
        exactly_once=sink.exactly_once,
    )


def _log_sink(sink: api.LogSink) -> LogSinkConfig:
    return LogSinkConfig(value_preview_bytes=sink.value_preview_bytes)


def _sink(sink: api.AbstractSink, container_type: rc.ContainerType) -> SinkConfig:
    if sink.udsink is not None:
        base = UserSinkConfig.for_container(container_type)
        return revised(
            base,
            max_message_bytes=sink.udsink.max_message_bytes,
            startup_timeout_ms=api.duration_ms(sink.udsink.startup_timeout),
            write_timeout_ms=api.duration_ms(sink.udsink.write_timeout),
        )
    if sink.kafka is not None:
        return _kafka_sink(sink.kafka)
    if sink.log is not None:
        return _log_sink(sink.log)
    return BlackholeSinkConfig()


def _source(udsink: api.UDSink) -> KafkaSourceConfig | GeneratorSourceConfig:
    source = udsink.spec.source
    if source.kafka is not None:
        kafka = source.kafka
        group = kafka.consumer_group or f"{udsink.metadata.namespace}.{udsink.metadata.name}"
        return KafkaSourceConfig(
            brokers=kafka.brokers,
            tls=_tls(kafka.tls),
            sasl=_sasl(kafka.sasl),
            config=kafka.config,
            topics=kafka.topics,
            consumer_group=group,
            start_offset=kafka.start_offset,
            keys_from_headers=kafka.keys_from_headers,
            keys_header=kafka.keys_header,
        )
    generator = source.generator
    assert generator is not None  # the Source union guarantees one member
    return GeneratorSourceConfig(
        rate=generator.rate,
        count=generator.count,
        value_size=generator.value_size,
        key_count=generator.key_count,
        partitions=generator.partitions,
    )


def build_runtime_config(udsink: api.UDSink) -> RuntimeConfig:
    """The data plane's whole configuration: file paths for secrets, milliseconds for
    durations, container types for the sidecars."""
    spec = udsink.spec
    sink = spec.sink
    backoff = sink.retry_strategy.backoff
    serve = sink.serve
    return RuntimeConfig(
        name=udsink.metadata.name,
        namespace=udsink.metadata.namespace,
        source=_source(udsink),
        batch=BatchConfig(
            size=spec.batch.size,
            timeout_ms=api.duration_ms(spec.batch.timeout),
            max_bytes=spec.batch.max_bytes,
        ),
        sink=_sink(sink, rc.CONTAINER_UDSINK),
        retry_strategy=RetryStrategy(
            backoff=Backoff(
                interval_ms=api.duration_ms(backoff.interval),
                factor=backoff.factor,
                cap_ms=api.duration_ms(backoff.cap),
                steps=backoff.steps,
                jitter=backoff.jitter,
            ),
            on_failure=sink.retry_strategy.on_failure,
            secondary=SecondaryRetry(
                steps=sink.retry_strategy.secondary.steps,
                on_exhausted=sink.retry_strategy.secondary.on_exhausted,
            ),
        ),
        fallback=None if sink.fallback is None else _sink(sink.fallback, rc.CONTAINER_FALLBACK),
        on_success=(
            None if sink.on_success is None else _sink(sink.on_success, rc.CONTAINER_ON_SUCCESS)
        ),
        serve=(
            None
            if serve is None
            else _kafka_sink(serve.kafka)
            if serve.kafka is not None
            else _log_sink(serve.log or api.LogSink.model_validate({}))
        ),
        nack=NackConfig(
            delay_ms=api.duration_ms(spec.nack.delay), max_deliveries=spec.nack.max_deliveries
        ),
        observability=ObservabilityConfig(
            metrics_port=rc.METRICS_PORT,
            metrics_host="",
            log_level=spec.runtime.log_level,
            log_format=spec.runtime.log_format,
        ),
        shutdown_grace_ms=api.duration_ms(spec.runtime.shutdown_grace_period),
    )


def config_hash(config_json: str) -> str:
    return hashlib.sha256(config_json.encode()).hexdigest()[:16]


# --- The one container builder ---


def restricted_security_context(*, read_only_root: bool) -> Manifest:
    """A container security context that passes the restricted Pod Security Standard."""
    context: Manifest = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if read_only_root:
        context["readOnlyRootFilesystem"] = True
    return context


@dataclass(frozen=True)
class ContainerPlan:
    """What differs between the runtime container, the sink sidecars and extra sidecars."""

    name: str
    image: str
    pull_policy: str | None = None
    command: Sequence[str] | None = None
    args: Sequence[str] | None = None
    env: Sequence[Manifest] = ()
    env_from: Sequence[Manifest] = ()
    resources: Manifest | None = None
    mounts: Sequence[Manifest] = ()
    ports: Sequence[Manifest] = ()
    probes: Mapping[str, Manifest] = field(default_factory=dict)
    read_only_root: bool = False
    # Native sidecars are initContainers that keep running: restartPolicy Always.
    native_sidecar: bool = False
    # The runtime writes why it ended there (a lasting Kafka refusal); the operator reads it
    # from the pod's container status into the UDSink's Ready condition.
    termination_message: bool = False


def build_container(plan: ContainerPlan) -> Manifest:
    """One container manifest; used for `runtime` and for every sidecar kind alike."""
    container: Manifest = {"name": plan.name, "image": plan.image}
    if plan.pull_policy is not None:
        container["imagePullPolicy"] = plan.pull_policy
    if plan.command is not None:
        container["command"] = list(plan.command)
    if plan.args is not None:
        container["args"] = list(plan.args)
    if plan.env:
        container["env"] = list(plan.env)
    if plan.env_from:
        container["envFrom"] = list(plan.env_from)
    if plan.ports:
        container["ports"] = list(plan.ports)
    container.update(plan.probes)
    if plan.resources:
        container["resources"] = plan.resources
    if plan.mounts:
        container["volumeMounts"] = list(plan.mounts)
    container["securityContext"] = restricted_security_context(read_only_root=plan.read_only_root)
    if plan.native_sidecar:
        container["restartPolicy"] = "Always"
    if plan.termination_message:
        container["terminationMessagePath"] = rc.TERMINATION_MESSAGE_PATH
        container["terminationMessagePolicy"] = "File"
    return container


def _dump(model: BaseModel | None) -> Manifest | None:
    if model is None:
        return None
    dumped: Manifest = model.model_dump(by_alias=True, exclude_none=True)
    return dumped


def _dump_all(models: Iterable[BaseModel] | None) -> list[Manifest]:
    return [model.model_dump(by_alias=True, exclude_none=True) for model in models or []]


def sockets_mount() -> Manifest:
    return {"name": constants.VOLUME_SOCKETS, "mountPath": rc.SOCKET_DIR}


def default_runtime_resources(config: RuntimeConfig) -> api.Resources:
    """The built-in resources of the runtime container: a CPU request and limit, and the
    data plane's memory bound for `config` as memory request and limit (memory cannot be
    taken back from a process, so the pod is sized for what it may hold)."""
    mem = f"{memory.in_mib(memory.memory_bound(config))}Mi"
    return api.Resources(
        requests={"cpu": constants.DEFAULT_RUNTIME_CPU_REQUEST, "memory": mem},
        limits={"cpu": constants.DEFAULT_RUNTIME_CPU_LIMIT, "memory": mem},
    )


def runtime_resources(
    config: RuntimeConfig, operator_wide: api.Resources | None, own: api.Resources | None
) -> Manifest:
    """The runtime container's resources: the built-in defaults, then the operator's, then
    the UDSink's. A layer that names a resource (in requests or limits) replaces both of its
    values below it, so each request and its limit come from one layer and stay consistent."""
    merged: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    for layer in (default_runtime_resources(config), operator_wide, own):
        if layer is None:
            continue
        given = {"requests": layer.requests or {}, "limits": layer.limits or {}}
        named = set(given["requests"]) | set(given["limits"])
        for part, values in merged.items():
            for name in named:
                values.pop(name, None)
            values.update(given[part])
    return {part: dict(sorted(values.items())) for part, values in merged.items() if values}


def runtime_plan(udsink: api.UDSink, options: BuildOptions, config: RuntimeConfig) -> ContainerPlan:
    runtime = udsink.spec.runtime
    mounts: list[Manifest] = [
        {"name": constants.VOLUME_CONFIG, "mountPath": rc.CONFIG_DIR, "readOnly": True},
        sockets_mount(),
        {"name": constants.VOLUME_TMP, "mountPath": constants.TMP_DIR},
    ]
    mounts += [
        {
            "name": secret_volume_name(secret),
            "mountPath": f"{rc.SECRETS_DIR}/{secret}",
            "readOnly": True,
        }
        for secret in secret_keys(udsink.spec)
    ]

    def probe(path: str, period: int) -> Manifest:
        return {
            "httpGet": {"path": path, "port": rc.METRICS_PORT_NAME},
            "periodSeconds": period,
            "failureThreshold": 3,
        }

    return ContainerPlan(
        name=rc.CONTAINER_RUNTIME,
        image=runtime.image or options.runtime_image,
        pull_policy=runtime.image_pull_policy,
        command=constants.RUNTIME_COMMAND,
        args=constants.RUNTIME_ARGS,
        resources=runtime_resources(config, options.runtime_resources, runtime.resources),
        mounts=mounts,
        ports=[{"name": rc.METRICS_PORT_NAME, "containerPort": rc.METRICS_PORT, "protocol": "TCP"}],
        probes={
            "livenessProbe": probe(rc.LIVEZ_PATH, 10),
            "readinessProbe": probe(rc.READYZ_PATH, 5),
        },
        read_only_root=True,
        termination_message=True,
    )


def sink_liveness_probe(container_type: rc.ContainerType, sink: api.UserDefinedSink) -> Manifest:
    """The sink container's liveness probe: the data plane's path for it, on the data plane's
    port (the pod shares one network namespace), timed by `sink_probe_timing`."""
    timing = sink_probe_timing(
        api.duration_ms(sink.write_timeout), api.duration_ms(sink.startup_timeout)
    )
    return {
        "httpGet": {"path": sink_livez_path(container_type), "port": rc.METRICS_PORT},
        "initialDelaySeconds": timing.initial_delay_s,
        "periodSeconds": timing.period_s,
        "timeoutSeconds": timing.timeout_s,
        "failureThreshold": timing.failure_threshold,
    }


def user_container_plan(
    name: str,
    container: api.Container,
    *,
    container_type: rc.ContainerType | None,
    native: bool,
    probes: Mapping[str, Manifest] | None = None,
) -> ContainerPlan:
    """A container of the user's: a sink sidecar (with its container type, the socket
    directory and its probes) or an extra sidecar (none of them)."""
    env = _dump_all(container.env)
    if container_type is not None:
        env.append({"name": rc.CONTAINER_TYPE_ENV, "value": container_type})
    return ContainerPlan(
        name=name,
        image=container.image,
        pull_policy=container.image_pull_policy,
        command=container.command,
        args=container.args,
        env=env,
        env_from=_dump_all(container.env_from),
        resources=_dump(container.resources),
        mounts=[sockets_mount()] if container_type is not None else [],
        probes=probes or {},
        native_sidecar=native,
    )


def user_sinks(spec: api.UDSinkSpec) -> list[tuple[rc.ContainerType, api.UserDefinedSink]]:
    """The user-defined sinks that run as sidecars, with their container type."""
    sinks: list[tuple[rc.ContainerType, api.AbstractSink | None]] = [
        (rc.CONTAINER_UDSINK, spec.sink),
        (rc.CONTAINER_FALLBACK, spec.sink.fallback),
        (rc.CONTAINER_ON_SUCCESS, spec.sink.on_success),
    ]
    return [(kind, sink.udsink) for kind, sink in sinks if sink and sink.udsink]


def sidecar_plans(spec: api.UDSinkSpec, native: bool) -> list[ContainerPlan]:
    # Extra sidecars first: with native sidecars the kubelet starts them in order, so a
    # database proxy is up before the sink that needs it.
    plans = [
        user_container_plan(c.name, c, container_type=None, native=native)
        for c in spec.pod.sidecars or []
    ]
    plans += [
        user_container_plan(
            kind,
            sink.container,
            container_type=kind,
            native=native,
            probes={"livenessProbe": sink_liveness_probe(kind, sink)},
        )
        for kind, sink in user_sinks(spec)
    ]
    return plans


# --- Pod and Deployment ---


def pod_security_context(spec: api.UDSinkSpec) -> Manifest:
    """Restricted by default. A UID/GID is always set: an image without a numeric USER would
    otherwise fail runAsNonRoot, and every container must share one user so the runtime may
    connect to the sinks' Unix sockets."""
    user = spec.pod.security_context or api.PodSecurityContext.model_validate({})
    context: Manifest = {
        "runAsNonRoot": True,
        "runAsUser": user.run_as_user if user.run_as_user is not None else constants.DEFAULT_UID,
        "runAsGroup": user.run_as_group if user.run_as_group is not None else constants.DEFAULT_UID,
        "fsGroup": user.fs_group if user.fs_group is not None else constants.DEFAULT_UID,
        "seccompProfile": _dump(user.seccomp_profile) or {"type": "RuntimeDefault"},
    }
    if user.fs_group_change_policy is not None:
        context["fsGroupChangePolicy"] = user.fs_group_change_policy
    if user.supplemental_groups:
        context["supplementalGroups"] = list(user.supplemental_groups)
    return context


def volumes(udsink: api.UDSink) -> list[Manifest]:
    result: list[Manifest] = [
        {"name": constants.VOLUME_SOCKETS, "emptyDir": {"medium": "Memory"}},
        {
            "name": constants.VOLUME_CONFIG,
            "configMap": {
                "name": config_map_name(udsink.metadata.name),
                "items": [{"key": rc.CONFIG_FILE, "path": rc.CONFIG_FILE}],
            },
        },
        {"name": constants.VOLUME_TMP, "emptyDir": {}},
    ]
    result += [
        {
            "name": secret_volume_name(secret),
            "secret": {"secretName": secret, "items": [{"key": k, "path": k} for k in keys]},
        }
        for secret, keys in secret_keys(udsink.spec).items()
    ]
    return result


def spread_constraints(udsink: api.UDSink) -> list[Manifest]:
    """spec.pod.topologySpreadConstraints, each without a labelSelector counting this
    UDSink's pods; when absent, replicas spread over nodes as a preference. Independent of
    the replica count: a pod template that changed with it would roll every pod whenever an
    autoscaler crossed one replica."""
    own = {"matchLabels": selector_labels(udsink.metadata.name)}
    given = udsink.spec.pod.topology_spread_constraints
    if given is None:
        return [
            {
                "maxSkew": 1,
                "topologyKey": constants.HOSTNAME_TOPOLOGY_KEY,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": own,
            }
        ]
    return [{"labelSelector": own, **_dump_all([c])[0]} for c in given]


def pod_spec(udsink: api.UDSink, options: BuildOptions, config: RuntimeConfig) -> Manifest:
    spec = udsink.spec
    pod = spec.pod
    native = options.sidecars == "native"
    runtime = build_container(runtime_plan(udsink, options, config))
    sidecars = [build_container(plan) for plan in sidecar_plans(spec, native)]
    grace = api.duration_ms(spec.runtime.shutdown_grace_period) // 1000
    result: Manifest = {}
    if native and sidecars:
        result["initContainers"] = sidecars
    result["containers"] = [runtime] if native else [runtime, *sidecars]
    result["volumes"] = volumes(udsink)
    result["securityContext"] = pod_security_context(spec)
    result["terminationGracePeriodSeconds"] = grace + constants.SHUTDOWN_MARGIN_SECONDS
    result["automountServiceAccountToken"] = pod.automount_service_account_token
    result["enableServiceLinks"] = False
    optional: dict[str, Any] = {
        "serviceAccountName": pod.service_account_name,
        "nodeSelector": pod.node_selector or None,
        "tolerations": _dump_all(pod.tolerations) or None,
        "affinity": _dump(pod.affinity) or None,
        "topologySpreadConstraints": spread_constraints(udsink) or None,
        "priorityClassName": pod.priority_class_name,
        "imagePullSecrets": _dump_all(pod.image_pull_secrets) or None,
        "runtimeClassName": pod.runtime_class_name,
    }
    result.update({k: v for k, v in optional.items() if v is not None})
    return result


def build_deployment(
    udsink: api.UDSink, config: RuntimeConfig, hash_: str, options: BuildOptions
) -> Manifest:
    name = udsink.metadata.name
    extra = udsink.spec.pod.metadata or api.PodMetadata.model_validate({})
    # Ours last: a user's pod label never overrides the selector (reserved keys are refused
    # by validation anyway).
    labels = {**(extra.labels or {}), **child_labels(name)}
    annotations = {**(extra.annotations or {}), constants.ANNOTATION_CONFIG_HASH: hash_}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(udsink, name),
        "spec": {
            "replicas": 0 if udsink.spec.paused else udsink.spec.replicas,
            "selector": {"matchLabels": selector_labels(name)},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec(udsink, options, config),
            },
        },
    }


def build_config_map(udsink: api.UDSink, config_json: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(udsink, config_map_name(udsink.metadata.name)),
        "data": {rc.CONFIG_FILE: config_json},
    }


def build_service(udsink: api.UDSink) -> Manifest:
    name = udsink.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(udsink, service_name(name)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name),
            "ports": [
                {
                    "name": rc.METRICS_PORT_NAME,
                    "port": rc.METRICS_PORT,
                    "targetPort": rc.METRICS_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:16]


def stamp_applied_hash(manifest: Manifest) -> Manifest:
    """Record the hash of the desired manifest on it, so a later reconcile can tell that the
    desired state changed even where the live object still holds a removed field."""
    annotations = manifest["metadata"].setdefault("annotations", {})
    annotations.pop(constants.ANNOTATION_APPLIED_HASH, None)
    annotations[constants.ANNOTATION_APPLIED_HASH] = manifest_hash(manifest)
    return manifest


def build(udsink: api.UDSink, options: BuildOptions | None = None) -> Children:
    """Every child of a UDSink."""
    opts = options or BuildOptions()
    config = build_runtime_config(udsink)
    config_json = config.to_json()
    hash_ = config_hash(config_json)
    return Children(
        config=config,
        config_map=stamp_applied_hash(build_config_map(udsink, config_json)),
        service=stamp_applied_hash(build_service(udsink)),
        deployment=stamp_applied_hash(build_deployment(udsink, config, hash_, opts)),
        config_hash=hash_,
    )
