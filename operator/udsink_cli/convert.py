"""`udsink convert`: a Numaflow MonoVertex, or a Pipeline of one Kafka source and one sink, as a
UDSink.

Every field of the Numaflow object is either carried over or named on stderr with its path and
the reason. Each field read is marked as it is read, so a field this module does not know is
named too, never dropped in silence. The result is validated with the UDSink models before it is
printed, so what comes out is what `udsink render` and the API server accept. HELP below says
what is carried over and what each exit status means.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml
from pydantic import BaseModel
from udsink_operator import api, constants, yamlout

from sink_runtime.config import owned_kafka_key
from udsink_cli.manifests import InputError, display_name, read_documents

EXIT_CHANGED = 1  # printed, but it does not do all the Numaflow object did
EXIT_INVALID = 2  # nothing could be made of the input

NUMAFLOW_GROUP = "numaflow.numaproj.io"
# kubectl's copy of the object as last applied: the Numaflow object's, not the UDSink's.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
KINDS = ("MonoVertex", "Pipeline")
# Numaflow's sink retries when a retryStrategy sets no steps: attempts, the first included.
NUMAFLOW_DEFAULT_SINK_ATTEMPTS = 65_535
# Numaflow's generator when rpu, duration or msgSize is not set.
NUMAFLOW_GENERATOR_RPU = 5
NUMAFLOW_GENERATOR_MSG_SIZE = 8
NUMAFLOW_GENERATOR_DURATION = "1s"

AUTOSCALING = (
    "udsink does not scale by itself: point KEDA or an HPA at the UDSink's scale subresource "
    "(examples/04-autoscaling/)"
)
NO_ISB = "a UDSink has no inter-step buffer: its pod reads Kafka and writes the sink directly"
ONE_POD = (
    "the UDSink's one pod is built from the sink vertex (its settings and read limits); the "
    "source vertex's are not used"
)
START_OFFSETS = {
    "earliest": "earliest",
    "smallest": "earliest",
    "beginning": "earliest",
    "latest": "latest",
    "largest": "latest",
    "end": "latest",
}


@dataclass(frozen=True)
class Note:
    """A Numaflow field not carried over: its path, why, and whether leaving it out changes
    what the UDSink does."""

    path: str
    why: str
    changes: bool

    def line(self) -> str:
        mark = "changes behaviour" if self.changes else "no effect on the sink"
        return f"  - {self.path}: {self.why} [{mark}]"


class Unconvertible(Exception):
    """No UDSink can be made of the object; the message says why."""


@dataclass
class Notes:
    items: list[Note] = field(default_factory=list)

    def add(self, path: str, why: str, *, changes: bool) -> None:
        self.items.append(Note(path, why, changes))

    @property
    def changes(self) -> bool:
        return any(n.changes for n in self.items)


class Fields:
    """One mapping of the Numaflow object. Keys are taken as they are converted; `close`
    names whatever was not taken, so nothing is left out unnamed."""

    def __init__(self, notes: Notes, path: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise Unconvertible(f"{path}: must be a mapping (got {type(data).__name__})")
        self.notes, self.path, self.data = notes, path, data
        self.taken: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def take(self, key: str, default: Any = None) -> Any:
        self.taken.add(key)
        value = self.data.get(key)
        return default if value is None else value

    def sub(self, key: str) -> Fields | None:
        value = self.take(key)
        return None if value is None else Fields(self.notes, self.at(key), value)

    def items(self, key: str) -> list[Fields]:
        value = self.take(key, [])
        if not isinstance(value, list):
            raise Unconvertible(f"{self.at(key)}: must be a list (got {type(value).__name__})")
        return [Fields(self.notes, f"{self.at(key)}[{i}]", v) for i, v in enumerate(value)]

    def integer(self, key: str, default: int | None = None) -> int | None:
        value = self.take(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise Unconvertible(f"{self.at(key)}: must be an integer (got {value!r})")
        return value

    def drop(self, key: str, why: str, *, changes: bool) -> None:
        """Name `key` as not carried over, when it is set (empty counts as not set)."""
        self.taken.add(key)
        value = self.data.get(key)
        if value is not None and value != {} and value != [] and value is not False:
            self.notes.add(self.at(key), why, changes=changes)

    def close(self) -> None:
        for key in self.data:
            if key not in self.taken and self.data[key] is not None:
                self.notes.add(self.at(key), "udsink has no equivalent of this field", changes=True)

    def copy(self, out: dict[str, Any], *keys: str) -> None:
        """Carry keys whose name and shape are the same in a UDSink."""
        for key in keys:
            if self.has(key):
                out[key] = self.take(key)
            self.taken.add(key)


def _in_model_order(data: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """`data`'s keys in the order the UDSink model declares them (the reference's order)."""
    order = [info.alias or name for name, info in model.model_fields.items()]
    return {k: data[k] for k in sorted(data, key=order.index)}


# --- Secrets, TLS, SASL, librdkafka settings ---


def _secret_ref(f: Fields) -> dict[str, Any]:
    f.drop(
        "optional",
        "udsink needs every referenced Secret key to exist before it starts the pods",
        changes=False,
    )
    out: dict[str, Any] = {}
    f.copy(out, "name", "key")
    f.close()
    return out


def _tls(f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("caCertSecret", "certSecret", "keySecret"):
        ref = f.sub(key)
        if ref is not None:
            out[key] = _secret_ref(ref)
    if f.take("insecureSkipVerify") is True:
        out["insecureSkipVerify"] = True
    f.close()
    return out


def _user_password(f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("userSecret", "passwordSecret"):
        ref = f.sub(key)
        if ref is not None:
            out[key] = _secret_ref(ref)
    f.drop(
        "handshake",
        "librdkafka, which udsink uses, always sends the SASL handshake",
        changes=False,
    )
    f.close()
    return out


def _sasl(f: Fields) -> dict[str, Any] | None:
    mechanism = f.take("mechanism")
    if mechanism == "OAUTH":  # Numaflow's other spelling of OAUTHBEARER
        mechanism = "OAUTHBEARER"
    member = api.SASL_MEMBERS.get(str(mechanism))
    if member is None:
        supported = ", ".join(api.SASL_MEMBERS)
        f.notes.add(
            f.at("mechanism"),
            f"udsink supports the SASL mechanisms {supported}; with {mechanism} left out the "
            "UDSink cannot authenticate to the brokers",
            changes=True,
        )
        for key in ("gssapi", *api.SASL_MEMBERS.values()):
            f.taken.add(key)
        f.close()
        return None
    out: dict[str, Any] = {"mechanism": mechanism}
    creds = f.sub(member)
    if creds is not None:
        if member == "oauth":
            oauth: dict[str, Any] = {}
            for key in ("clientID", "clientSecret"):
                ref = creds.sub(key)
                if ref is not None:
                    oauth[key] = _secret_ref(ref)
            creds.copy(oauth, "tokenEndpoint")
            creds.close()
            out[member] = oauth
        else:
            out[member] = _user_password(creds)
    f.close()
    return out


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kafka_config(f: Fields, out: dict[str, Any], *, source: bool) -> None:
    """Numaflow's `config` (flat librdkafka `key: value` lines) into `config` and, for a source,
    `startOffset`."""
    text = f.take("config")
    if text is None:
        return
    path = f.at("config")
    try:
        settings = yaml.safe_load(text) if isinstance(text, str) else text
    except yaml.YAMLError as err:
        f.notes.add(path, f"not flat `key: value` lines ({err.__class__.__name__})", changes=True)
        return
    if settings is None:
        return
    if not isinstance(settings, dict):
        f.notes.add(path, "not flat `key: value` lines", changes=True)
        return
    config: dict[str, str] = {}
    for key, value in settings.items():
        where = f"{path}[{key}]"
        if isinstance(value, dict | list):
            f.notes.add(
                where,
                "a nested (Sarama-style) setting; udsink takes librdkafka keys only: "
                "translate it by hand into config",
                changes=True,
            )
            continue
        if source and key == "auto.offset.reset":
            start = START_OFFSETS.get(str(value))
            if start is None:
                f.notes.add(where, f"{value!r} is not earliest or latest", changes=True)
            else:
                out["startOffset"] = start
            continue
        owned = owned_kafka_key(str(key))
        if owned is not None:
            f.notes.add(where, f"udsink sets this key itself: {owned[1]}", changes=False)
            continue
        config[str(key)] = _scalar_text(value)
    if config:
        out["config"] = config


def _connection(f: Fields, out: dict[str, Any], *, source: bool) -> None:
    f.copy(out, "brokers")
    tls = f.sub("tls")
    if tls is not None:
        out["tls"] = _tls(tls)
    sasl = f.sub("sasl")
    if sasl is not None:
        converted = _sasl(sasl)
        if converted is not None:
            out["sasl"] = converted
    _kafka_config(f, out, source=source)


# --- Sources ---


def _kafka_source(f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _connection(f, out, source=True)
    topic = f.take("topic", "")
    # Numaflow takes several topics as one comma-separated string.
    out["topics"] = [t.strip() for t in str(topic).split(",") if t.strip()]
    group = f.take("consumerGroup")
    if group:
        out["consumerGroup"] = group
    else:
        f.notes.add(
            f.at("consumerGroup"),
            "not set: the UDSink's group is <namespace>.<name>, so it starts from startOffset, "
            "not from offsets a Numaflow group committed",
            changes=False,
        )
    f.drop("kafkaVersion", "librdkafka finds the broker's protocol version itself", changes=False)
    if "startOffset" not in out:
        out["startOffset"] = "earliest"  # Numaflow's built-in source's default
    f.close()
    return _in_model_order(out, api.KafkaSource)


def _duration_seconds(text: str) -> float:
    return api.exact_ms(text) / 1000


def _generator(f: Fields) -> dict[str, Any]:
    rpu = f.integer("rpu", NUMAFLOW_GENERATOR_RPU) or 0
    duration = str(f.take("duration", NUMAFLOW_GENERATOR_DURATION))
    seconds = _duration_seconds(duration) if api.is_duration(duration) else 0.0
    if seconds <= 0:
        raise Unconvertible(f"{f.at('duration')}: {duration!r} is not a positive duration")
    rate = rpu / seconds
    out: dict[str, Any] = {"rate": max(1, round(rate))}
    if not math.isclose(rate, out["rate"]):
        f.notes.add(
            f.at("rpu"),
            f"{rpu} per {duration} is {rate:g}/s; the generator's rate is whole messages per "
            f"second: {out['rate']}",
            changes=False,
        )
    out["valueSize"] = f.integer("msgSize", NUMAFLOW_GENERATOR_MSG_SIZE)
    if f.has("keyCount"):
        out["keyCount"] = f.integer("keyCount")
    for key in ("value", "valueBlob", "jitter"):
        f.drop(key, "udsink's generator makes its own values and times", changes=False)
    f.close()
    return out


OTHER_SOURCES = ("udsource", "http", "nats", "jetstream", "serving", "pulsar", "sqs")


def _source(f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kafka = f.sub("kafka")
    generator = f.sub("generator")
    if kafka is not None:
        out["kafka"] = _kafka_source(kafka)
    elif generator is not None:
        out["generator"] = _generator(generator)
    f.drop(
        "transformer",
        "udsink runs no source transformer: the sink gets the records as they are in Kafka "
        "(do the transformation in the sink)",
        changes=True,
    )
    others = [k for k in OTHER_SOURCES if f.has(k)]
    for key in OTHER_SOURCES:
        f.drop(key, "udsink reads Kafka (and a generator, for tests)", changes=True)
    f.close()
    if not out:
        found = ", ".join(others) or "none"
        raise Unconvertible(
            f"{f.path}: a UDSink reads a Kafka source (or a generator); this source has "
            f"neither (found: {found})"
        )
    return out


# --- Sinks ---

CONTAINER_SAME = ("image", "command", "args", "envFrom", "imagePullPolicy")


def _container(f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    f.copy(out, *CONTAINER_SAME)
    env = []
    for var in f.items("env"):
        name = var.data.get("name")
        if name in constants.RESERVED_ENV_NAMES:
            var.notes.add(var.path, f"{name} is set by udsink for each sink", changes=False)
            continue
        env.append(var.data)
    if env:
        out["env"] = env
    resources = f.sub("resources")
    if resources is not None:
        converted: dict[str, Any] = {}
        resources.copy(converted, "requests", "limits")
        resources.drop(
            "claims", "udsink's containers take no dynamic resource claims", changes=True
        )
        resources.close()
        if converted:
            out["resources"] = converted
    f.drop(
        "volumeMounts",
        "a UDSink mounts no volumes into its sink containers; the sink must not need them",
        changes=True,
    )
    f.drop(
        "securityContext",
        "udsink gives every container the restricted Pod Security Standard's context "
        "(non-root, no privilege escalation, no capabilities)",
        changes=False,
    )
    for key in ("readinessProbe", "livenessProbe"):
        f.drop(key, "udsink checks the sink's gRPC server itself", changes=False)
    f.drop("ports", "the sink is reached over a Unix socket; no port is needed", changes=False)
    f.close()
    return out


def _kafka_sink(f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _connection(f, out, source=False)
    f.copy(out, "topic")
    out["setKey"] = bool(f.take("setKey", False))  # Numaflow's default: no record key
    f.close()
    return out


def _abstract_sink(f: Fields) -> dict[str, Any] | None:
    """One of udsink, kafka, log, blackhole; None (named) for a sink udsink does not have."""
    udsink = f.sub("udsink")
    kafka = f.sub("kafka")
    out: dict[str, Any] | None = None
    if udsink is not None:
        container = udsink.sub("container")
        udsink.close()
        if container is None:
            raise Unconvertible(f"{udsink.path}: has no container")
        out = {"udsink": {"container": _container(container)}}
    elif kafka is not None:
        out = {"kafka": _kafka_sink(kafka)}
    elif f.take("log") is not None:
        out = {"log": {}}
    elif f.take("blackhole") is not None:
        out = {"blackhole": {}}
    for key in ("serve", "sqs", "pulsar"):
        f.drop(key, "udsink's sinks are udsink (gRPC), kafka, log and blackhole", changes=True)
    f.taken.update({"log", "blackhole"})
    return out


def _backoff(f: Fields, on_failure: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    f.copy(out, "interval", "factor", "cap", "jitter")
    if "interval" in out and "cap" not in out:
        default_cap = str(api.Backoff.model_fields["cap"].default)
        if api.exact_ms(str(out["interval"])) > api.exact_ms(default_cap):
            out["cap"] = out["interval"]  # Numaflow has no cap by default
    steps = f.integer("steps")
    if steps is not None:
        out["steps"] = max(0, steps - 1)  # Numaflow counts the first attempt
    elif on_failure != "retry":
        out["steps"] = NUMAFLOW_DEFAULT_SINK_ATTEMPTS - 1
    f.close()
    return _in_model_order(out, api.Backoff)


def _retry_strategy(f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    on_failure = str(f.take("onFailure", "retry")).lower()
    if on_failure != "retry":
        out["onFailure"] = on_failure
    backoff = f.sub("backoff")
    if backoff is not None:
        out["backoff"] = _backoff(backoff, on_failure)
    elif on_failure != "retry":
        out["backoff"] = {"steps": NUMAFLOW_DEFAULT_SINK_ATTEMPTS - 1}
    f.close()
    return _in_model_order(out, api.RetryStrategy)


def _secondary(f: Fields | None) -> dict[str, Any] | None:
    if f is None:
        return None
    out = _abstract_sink(f)
    f.close()
    return out


def _sink(f: Fields) -> dict[str, Any]:
    out = _abstract_sink(f)
    if out is None:
        f.close()
        raise Unconvertible(f"{f.path}: no sink a UDSink has (udsink, kafka, log, blackhole)")
    for key in ("fallback", "onSuccess"):
        secondary = _secondary(f.sub(key))
        if secondary is not None:
            out[key] = secondary
    retry = f.sub("retryStrategy")
    if retry is not None:
        converted = _retry_strategy(retry)
        if converted:
            out["retryStrategy"] = converted
    f.close()
    return out


# --- The pod ---

POD_SAME = (
    "nodeSelector",
    "tolerations",
    "imagePullSecrets",
    "priorityClassName",
    "affinity",
    "serviceAccountName",
    "runtimeClassName",
    "automountServiceAccountToken",
)
SECURITY_SAME = (
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "fsGroupChangePolicy",
    "supplementalGroups",
    "seccompProfile",
)


def _pod_security(f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    f.copy(out, *SECURITY_SAME)
    f.drop("runAsNonRoot", "udsink always sets runAsNonRoot: true", changes=False)
    f.close()
    return out


def _pod(f: Fields, spec: dict[str, Any]) -> None:
    """The pod template fields of a MonoVertex or of the sink vertex, into spec.pod."""
    pod: dict[str, Any] = {}
    f.copy(pod, *POD_SAME)
    meta = f.sub("metadata")
    if meta is not None:
        converted: dict[str, Any] = {}
        meta.copy(converted, "labels", "annotations")
        meta.close()
        if converted:
            pod["metadata"] = converted
    security = f.sub("securityContext")
    if security is not None:
        pod["securityContext"] = _pod_security(security)
    f.drop("priority", "Kubernetes takes it from priorityClassName", changes=False)
    for key in ("dnsPolicy", "dnsConfig"):
        f.drop(key, "a UDSink's pods use the cluster's DNS settings", changes=True)
    f.drop("resourceClaims", "a UDSink's pods take no dynamic resource claims", changes=True)
    sidecars = []
    for item in f.items("sidecars"):
        name = item.take("name")
        sidecars.append({"name": name, **_container(item)})
    if sidecars:
        pod["sidecars"] = sidecars
    f.drop(
        "initContainers",
        "a UDSink runs no init containers of the user's (native sidecars start first: "
        "spec.pod.sidecars)",
        changes=True,
    )
    f.drop("volumes", "a UDSink's pods mount no volumes of the user's", changes=True)
    f.drop(
        "containerTemplate",
        "the numa container's place is taken by udsink's runtime; its resources default from "
        "the batch bound (spec.runtime.resources sets them)",
        changes=False,
    )
    f.drop(
        "updateStrategy",
        "the operator's Deployment rolls out with Kubernetes' defaults",
        changes=False,
    )
    if pod:
        spec["pod"] = pod


def _scale(f: Fields | None, spec: dict[str, Any], replicas: int | None) -> None:
    minimum = None if f is None else f.integer("min")
    if replicas is not None:
        spec["replicas"] = replicas
    elif minimum is not None:
        spec["replicas"] = max(1, minimum)
    if f is None:
        return
    disabled = bool(f.take("disabled", False))
    if minimum == 0 and not disabled:
        f.notes.add(f.at("min"), f"0 (scale to zero when idle): {AUTOSCALING}", changes=False)
    for key in list(f.data):
        if key not in f.taken and not disabled:
            f.drop(key, AUTOSCALING, changes=False)
        f.taken.add(key)


def _limits(f: Fields | None, spec: dict[str, Any], fallback: Fields | None = None) -> None:
    """readBatchSize and readTimeout into spec.batch; the vertex's limits over the pipeline's."""
    batch: dict[str, Any] = {}
    for limits in (fallback, f):
        if limits is None:
            continue
        size = limits.integer("readBatchSize")
        if size is not None:
            bounds = api.field_bounds(api.Batch.model_fields["size"])
            assert bounds is not None
            top = int(bounds[1])
            if size > top:
                limits.notes.add(
                    limits.at("readBatchSize"),
                    f"{size} is above udsink's largest batch; {top} is used",
                    changes=False,
                )
            batch["size"] = min(size, top)
        timeout = limits.take("readTimeout")
        if timeout is not None:
            batch["timeout"] = timeout
        limits.drop(
            "concurrency",
            "udsink writes one batch at a time per pod, in order per partition",
            changes=False,
        )
        limits.drop(
            "rateLimit",
            "udsink does not limit the read rate: the sink sees Kafka's pace (answer NACK "
            "with a delay to hold messages back)",
            changes=True,
        )
        for key in ("bufferMaxLength", "bufferUsageLimit"):
            limits.drop(key, NO_ISB, changes=False)
        limits.close()
    if batch:
        spec["batch"] = batch


def _lifecycle(f: Fields | None, spec: dict[str, Any]) -> None:
    if f is None:
        return
    phase = f.take("desiredPhase")
    if phase == "Paused":
        spec["lifecycle"] = {"desiredPhase": "Paused"}
    elif phase not in (None, "Running"):
        f.notes.add(f.at("desiredPhase"), f"{phase!r}: a UDSink is Running or Paused", changes=True)
    for key in ("pauseGracePeriodSeconds", "deleteGracePeriodSeconds"):
        f.drop(
            key,
            "a UDSink pod finishes its batch within spec.runtime.shutdownGracePeriod",
            changes=False,
        )
    f.close()


# --- The objects ---

VERTEX_ONLY_INFO = (
    ("daemonTemplate", "udsink runs no daemon service"),
    ("streaming", "udsink acknowledges a batch at a time, in order per partition"),
    ("partitions", NO_ISB),
    ("ordered", "udsink keeps the order per partition always"),
)


def _udf(f: Fields, key: str, what: str) -> None:
    f.drop(
        key,
        f"{what}: udsink runs no map or reduce step, so the sink gets the source's records "
        "untransformed (do the work in the sink)",
        changes=True,
    )


def _source_and_sink(source: Fields | None, sink: Fields | None, spec: dict[str, Any]) -> None:
    """Both are converted even when one cannot be, so every field of both is named."""
    errors: list[str] = []
    for key, fields, convert in (("source", source, _source), ("sink", sink, _sink)):
        if fields is None:
            errors.append(f"spec.{key}: not set")
            continue
        try:
            spec[key] = convert(fields)
        except Unconvertible as err:
            errors.append(str(err))
    if errors:
        raise Unconvertible("; ".join(errors))


def _monovertex(f: Fields) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    try:
        _source_and_sink(f.sub("source"), f.sub("sink"), spec)
    finally:
        _monovertex_rest(f, spec)
    return _in_model_order(spec, api.UDSinkSpec)


def _monovertex_rest(f: Fields, spec: dict[str, Any]) -> None:
    """Everything of a MonoVertex but its source and sink."""
    _udf(f, "udf", "a map UDF")
    f.drop(
        "bypass",
        "udsink routes by the sink's answers only (FALLBACK, ON_SUCCESS), not by tags",
        changes=True,
    )
    _limits(f.sub("limits"), spec)
    _scale(f.sub("scale"), spec, f.integer("replicas"))
    _lifecycle(f.sub("lifecycle"), spec)
    for key, why in VERTEX_ONLY_INFO:
        f.drop(key, why, changes=False)
    _pod(f, spec)
    f.close()


def _vertex_role(vertex: Fields) -> str:
    if vertex.has("source"):
        return "source"
    if vertex.has("sink"):
        return "sink"
    return "udf"


def _pipeline(f: Fields) -> dict[str, Any]:
    vertices = f.items("vertices")
    by_role: dict[str, list[Fields]] = {"source": [], "sink": [], "udf": []}
    for vertex in vertices:
        by_role[_vertex_role(vertex)].append(vertex)
    if len(by_role["source"]) != 1 or len(by_role["sink"]) != 1:
        raise Unconvertible(
            f"{f.path}.vertices: a UDSink is one source and one sink; this Pipeline has "
            f"{len(by_role['source'])} source and {len(by_role['sink'])} sink vertices"
        )
    (source_vertex,), (sink_vertex,) = by_role["source"], by_role["sink"]
    spec: dict[str, Any] = {}
    try:
        _source_and_sink(source_vertex.sub("source"), sink_vertex.sub("sink"), spec)
    finally:
        _pipeline_rest(f, by_role, spec)
    return _in_model_order(spec, api.UDSinkSpec)


def _pipeline_rest(f: Fields, by_role: dict[str, list[Fields]], spec: dict[str, Any]) -> None:
    """Everything of a Pipeline but its source and sink."""
    (source_vertex,), (sink_vertex,) = by_role["source"], by_role["sink"]
    for vertex in by_role["udf"]:
        name = vertex.data.get("name", "?")
        vertex.notes.add(
            vertex.path,
            f"vertex {name!r}: udsink runs no map or reduce step between source and sink, so "
            "the sink gets the source's records untransformed (do the work in the sink)",
            changes=True,
        )
    # One pod does both: the sink vertex's settings make it, and its read limits are the
    # batches the sink was given.
    _limits(sink_vertex.sub("limits"), spec, f.sub("limits"))
    _scale(sink_vertex.sub("scale"), spec, None)
    _pod(sink_vertex, spec)
    for vertex in (source_vertex, sink_vertex):
        vertex.take("name")
        for key, why in VERTEX_ONLY_INFO:
            vertex.drop(key, why, changes=False)
        for key in ("initContainerTemplate", "sideInputsContainerTemplate", "sideInputs"):
            vertex.drop(key, NO_ISB, changes=False)
        _udf(vertex, "udf", "a UDF in this vertex")
    for key in [k for k in source_vertex.data if k not in source_vertex.taken]:
        source_vertex.drop(key, ONE_POD, changes=False)
    source_vertex.close()
    sink_vertex.close()
    _lifecycle(f.sub("lifecycle"), spec)
    f.take("edges")  # one source, one sink: nothing else to connect
    for key in ("interStepBufferServiceName", "interStepBuffer", "watermark", "templates"):
        f.drop(key, NO_ISB, changes=False)
    f.drop("sideInputs", "udsink has no side inputs", changes=True)
    f.drop("ordered", "udsink keeps the order per partition always", changes=False)
    f.close()


def is_numaflow(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and str(doc.get("apiVersion", "")).startswith(f"{NUMAFLOW_GROUP}/")
        and doc.get("kind") in KINDS
    )


def _metadata(f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    f.copy(out, "name", "namespace", "labels", "annotations")
    annotations = {k: v for k, v in out.pop("annotations", {}).items() if k != LAST_APPLIED}
    if annotations:
        out["annotations"] = annotations
    for key in list(f.data):
        f.taken.add(key)  # server-set fields (uid, resourceVersion...) belong to the old object
    return out


@dataclass
class Converted:
    """One Numaflow object's conversion: the UDSink (None when none could be made), the
    fields not carried over, and why it failed when it did."""

    kind: str
    name: str
    udsink: dict[str, Any] | None
    notes: Notes
    error: str | None = None


def convert_object(doc: dict[str, Any]) -> Converted:
    """A MonoVertex or Pipeline as a UDSink, checked with the UDSink models."""
    notes = Notes()
    kind = str(doc.get("kind"))
    name = str((doc.get("metadata") or {}).get("name", "?"))
    try:
        top = Fields(notes, "", doc)
        top.take("apiVersion")
        top.take("kind")
        top.drop("status", "the Numaflow object's status", changes=False)
        metadata = _metadata(Fields(notes, "metadata", top.take("metadata", {})))
        spec_fields = Fields(notes, "spec", top.take("spec", {}))
        spec = _monovertex(spec_fields) if kind == "MonoVertex" else _pipeline(spec_fields)
        top.close()
    except Unconvertible as err:
        return Converted(kind, name, None, notes, str(err))
    udsink = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": metadata,
        "spec": spec,
    }
    try:
        api.parse_udsink(udsink)
    except api.SpecError as err:
        issues = "\n".join(f"    {issue}" for issue in err.issues)
        return Converted(kind, name, None, notes, f"the UDSink made of it is invalid:\n{issues}")
    return Converted(kind, name, udsink, notes)


HELP = """\
Convert a Numaflow MonoVertex, or a Pipeline of one Kafka (or generator) source vertex and one
sink vertex, into a UDSink, printed as YAML:

  udsink convert -f monovertex.yaml > udsink.yaml

Carried over: the Kafka source (brokers, topic, consumer group, TLS and SASL Secrets, librdkafka
config), the udsink / fallback / onSuccess sinks (container image, command, args, env, envFrom,
resources, pull policy; or kafka, log, blackhole), the retry strategy (backoff, onFailure),
limits (readBatchSize, readTimeout), replicas and scale.min, the lifecycle's Paused, and the pod
template (labels, annotations, node selector, tolerations, affinity, service account, security
context, image pull Secrets, priority and runtime class, sidecars).

Every other field is named on stderr with its path and the reason: UDFs, transformers, other
source kinds, volumes, autoscaling settings... docs/compatibility.md ("Moving from Numaflow")
lists every field and what behaves differently.

Exit status: 0 converted; 1 printed, but a field left out changes what the UDSink does (read
stderr before applying it); 2 nothing could be made of the input (the reason on stderr).
"""


def convert_main(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    stdout, stderr = out or sys.stdout, err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="udsink convert",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-f", "--filename", required=True, help="Numaflow YAML file ('-' = stdin)")
    args = parser.parse_args(list(argv))

    def say(line: str) -> None:
        print(f"udsink convert: {line}", file=stderr)

    try:
        docs = read_documents(args.filename)
    except InputError as error:
        say(str(error))
        return EXIT_INVALID
    source = display_name(args.filename)
    found = [d for d in docs if is_numaflow(d)]
    if not found:
        kinds = ", ".join(str(d.get("kind")) if isinstance(d, dict) else "?" for d in docs)
        say(f"{source}: no Numaflow MonoVertex or Pipeline (found: {kinds or 'nothing'})")
        return EXIT_INVALID
    for doc in docs:
        if not is_numaflow(doc):
            kind = doc.get("kind", "?") if isinstance(doc, dict) else "?"
            say(f"{source}: a {kind} is left out (only MonoVertex and Pipeline are converted)")
    results = [convert_object(doc) for doc in found]
    code = 0
    for result in results:
        what = f"{source}: {result.kind} {result.name!r}"
        if result.error is not None:
            say(f"{what}: not converted: {result.error}")
            code = EXIT_INVALID
        if result.notes.items:
            say(f"{what}: {len(result.notes.items)} field(s) not carried over:")
            for note in result.notes.items:
                print(note.line(), file=stderr)
        if result.udsink is not None and result.notes.changes:
            say(f"{what}: the UDSink does not do all it did (the fields marked above)")
            code = max(code, EXIT_CHANGED)
    stdout.write(yamlout.dump_all([r.udsink for r in results if r.udsink is not None]))
    return code
