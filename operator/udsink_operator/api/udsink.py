"""The UDSink itself: where messages come from, which sinks write them, what happens on
failure, how the pods run, and the status the operator reports.

Field names follow Numaflow where the idea is the same. Nothing here does I/O; checks that need
the cluster (does a referenced Secret key exist?) live in the handlers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from sink_runtime import config as rc
from sink_runtime.config import constants as runtime_constants
from sink_runtime.config import durations, exactly_once, memory, owned_kafka_key
from sink_runtime.config.errors import FALLBACK_NEEDED, refused
from sink_runtime.config.sink_liveness import UNANSWERED_SLACK_S
from udsink_operator import constants, messages
from udsink_operator.api.kube import (
    Container,
    Pod,
    PullPolicy,
    Resources,
)
from udsink_operator.api.schema import (
    CEL,
    CRD_DEFAULT,
    SECRET_KEY_PATTERN,
    URL_PATTERN,
    Broker,
    DnsSubdomain,
    GoDuration,
    Matches,
    ShownDefault,
    Topic,
    _ExactlyOne,
    _Model,
    cel,
    duration_cel,
    exact_ms,
    mib,
)
from udsink_operator.messages import cel_string

# --- Secrets: only ever referenced ---


class SecretKeyRef(_Model):
    """A key of a Secret in the UDSink's namespace. Its value is mounted as a file into the
    runtime container only; it never appears in the UDSink, the ConfigMap or a log."""

    name: DnsSubdomain = Field(description="Name of the Secret, in the UDSink's namespace.")
    key: Annotated[str, Matches(SECRET_KEY_PATTERN, messages.SECRET_KEY), Field(max_length=253)] = (
        Field(description="Key inside the Secret whose value is used.")
    )


# --- Kafka connection ---


class Tls(_Model):
    """TLS to the brokers. An empty object enables TLS with the system's CA certificates."""

    cel_rules = (
        cel(
            "has(self.certSecret) == has(self.keySecret)",
            "certSecret and keySecret must be set together (client certificate auth)",
        ),
    )

    ca_cert_secret: SecretKeyRef | None = Field(
        default=None, description="CA certificate (PEM) that signs the brokers' certificates."
    )
    cert_secret: SecretKeyRef | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS; needs keySecret."
    )
    key_secret: SecretKeyRef | None = Field(
        default=None, description="Client private key (PEM) for mutual TLS; needs certSecret."
    )
    insecure_skip_verify: bool = Field(
        default=False,
        description="Do not verify the brokers' certificates (testing only).",
    )

    @model_validator(mode="after")
    def _cert_and_key(self) -> Tls:
        if (self.cert_secret is None) != (self.key_secret is None):
            raise ValueError(
                "certSecret and keySecret must be set together (client certificate auth)"
            )
        return self


class SaslUserPassword(_Model):
    """A username and a password, each read from a Secret key."""

    user_secret: SecretKeyRef = Field(description="Secret key holding the SASL username.")
    password_secret: SecretKeyRef = Field(description="Secret key holding the SASL password.")


class SaslOAuth(_Model):
    """OAUTHBEARER with the OIDC client-credentials flow."""

    client_id: SecretKeyRef = Field(
        alias="clientID", description="Secret key holding the OIDC client id."
    )
    client_secret: SecretKeyRef = Field(description="Secret key holding the OIDC client secret.")
    token_endpoint: Annotated[str, Matches(URL_PATTERN, messages.URL), Field(max_length=2048)] = (
        Field(description="URL of the OIDC token endpoint.")
    )
    scope: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="Scope requested with the token (optional)."
    )


SaslMechanism: TypeAlias = runtime_constants.SaslMechanism
SASL_MEMBERS: dict[str, str] = runtime_constants.SASL_MEMBERS


class Sasl(_Model):
    """SASL authentication: set `mechanism` and the one member that matches it."""

    cel_rules = (
        *(
            cel(f"self.mechanism != '{mech}' || has(self.{member})", f"{mech} needs {member}")
            for mech, member in SASL_MEMBERS.items()
        ),
        cel(
            "["
            + ", ".join(f"has(self.{m})" for m in SASL_MEMBERS.values())
            + "].filter(x, x).size() == 1",
            "set only the member that matches mechanism",
        ),
    )

    mechanism: SaslMechanism = Field(
        description="SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER."
    )
    plain: SaslUserPassword | None = Field(default=None, description="Credentials for PLAIN.")
    scramsha256: SaslUserPassword | None = Field(
        default=None, description="Credentials for SCRAM-SHA-256."
    )
    scramsha512: SaslUserPassword | None = Field(
        default=None, description="Credentials for SCRAM-SHA-512."
    )
    oauth: SaslOAuth | None = Field(default=None, description="Client credentials for OAUTHBEARER.")

    @model_validator(mode="after")
    def _member_matches(self) -> Sasl:
        wanted = SASL_MEMBERS[self.mechanism]
        chosen = self.set_members(list(SASL_MEMBERS.values()))
        if chosen != [wanted]:
            got = ", ".join(chosen) or "none"
            raise ValueError(f"mechanism {self.mechanism} needs {wanted} and only it (got {got})")
        return self

    def credentials(self) -> SaslUserPassword | SaslOAuth:
        member = getattr(self, SASL_MEMBERS[self.mechanism])
        assert isinstance(member, SaslUserPassword | SaslOAuth)  # ensured by _member_matches
        return member


def reserved_kafka_keys() -> list[str]:
    """Human-readable list of the librdkafka keys udsink owns."""
    exact = sorted(runtime_constants.KAFKA_OWNED_CONFIG_KEYS)
    return [*exact, *(f"{p}*" for p in runtime_constants.KAFKA_OWNED_CONFIG_PREFIXES)]


def _owned_key_message(key: str) -> str:
    """The words of both homes for an owned key: exact keys by name, the rest by prefix."""
    owned = ", ".join(reserved_kafka_keys())
    found = owned_kafka_key(key)
    assert found is not None, key
    name, hint = found
    if name in runtime_constants.KAFKA_OWNED_CONFIG_KEYS:
        return messages.KAFKA_OWNED_KEY.text(key=repr(key), hint=hint, owned=owned)
    return messages.KAFKA_OWNED_PREFIX.text(prefix=repr(name), hint=hint, owned=owned)


def _check_kafka_config(config: dict[str, str]) -> dict[str, str]:
    for key in sorted(config):
        found = owned_kafka_key(key)
        if found is not None:
            message = _owned_key_message(key)
            exact = found[0] in runtime_constants.KAFKA_OWNED_CONFIG_KEYS
            raise refused(message if exact else f"{message} (got {key!r})")
    return config


# One rule per owned key and per owned prefix, so the API server's message names it (a key
# picked out of the map by CEL would be too costly for the CRD's budget).
KAFKA_CONFIG_RULES = [
    *(
        cel(f"!({cel_string(key)} in self)", _owned_key_message(key))
        for key in sorted(runtime_constants.KAFKA_OWNED_CONFIG_KEYS)
    ),
    *(
        cel(f"!self.exists(k, k.startsWith({cel_string(p)}))", _owned_key_message(p))
        for p in runtime_constants.KAFKA_OWNED_CONFIG_PREFIXES
    ),
]

KafkaConfig = Annotated[
    dict[str, str],
    AfterValidator(_check_kafka_config),
    Field(json_schema_extra={"maxProperties": 200, CEL: KAFKA_CONFIG_RULES}),
]


class KafkaConnection(_Model):
    """Brokers and how to authenticate to them."""

    brokers: Annotated[list[Broker], Field(min_length=1, max_length=100)] = Field(
        description="Bootstrap brokers as host:port."
    )
    tls: Tls | None = Field(default=None, description="TLS to the brokers; absent = plaintext.")
    sasl: Sasl | None = Field(default=None, description="SASL authentication; absent = none.")
    config: KafkaConfig = Field(
        default_factory=dict,
        description=(
            "librdkafka settings (a map of strings; values may contain ':'). Keys that udsink "
            "owns are refused: " + ", ".join(reserved_kafka_keys()) + "."
        ),
    )

    def secret_refs(self) -> list[tuple[str, SecretKeyRef]]:
        """Every Secret key this connection reads, with its field path below the connection."""
        refs: list[tuple[str, SecretKeyRef]] = []
        if self.tls is not None:
            for field in ("ca_cert_secret", "cert_secret", "key_secret"):
                ref = getattr(self.tls, field)
                if ref is not None:
                    refs.append((f"tls.{Tls.alias_of(field)}", ref))
        if self.sasl is not None:
            member = SASL_MEMBERS[self.sasl.mechanism]
            creds = self.sasl.credentials()
            for field in type(creds).model_fields:
                ref = getattr(creds, field)
                if isinstance(ref, SecretKeyRef):
                    refs.append((f"sasl.{member}.{type(creds).alias_of(field)}", ref))
        return refs


# --- Sources ---


class KafkaSource(KafkaConnection):
    """Consume Kafka topics with a consumer group; offsets are committed once per batch."""

    topics: Annotated[list[Topic], Field(min_length=1, max_length=100)] = Field(
        description="Topics to consume."
    )
    consumer_group: Annotated[
        Annotated[str, Field(min_length=1, max_length=255)] | None,
        ShownDefault("<namespace>.<name>"),
    ] = Field(default=None, description="Consumer group id.")
    start_offset: runtime_constants.StartOffset = Field(
        default="earliest",
        description="Where to start when the group has no committed offset yet.",
    )
    keys_from_headers: bool = Field(
        default=True,
        description=(
            "Rebuild multi-part keys from __key_len/__key_N (or the single keys header) when "
            "present and well formed; otherwise the record key is the single key."
        ),
    )
    keys_header: Annotated[str, Field(min_length=1, max_length=255)] = Field(
        default=runtime_constants.DEFAULT_KEYS_HEADER,
        description="Header holding a JSON array of keys (the `single` layout).",
    )


class GeneratorSource(_Model):
    """Generate messages inside the pod (demos, load tests, local runs): no Kafka needed."""

    rate: rc.GeneratorRate = Field(
        default=rc.DEFAULT_GENERATOR_RATE,
        description="Messages per second; 0 = as fast as possible.",
    )
    count: rc.GeneratorCount = Field(
        default=0, description="Stop after this many messages; 0 = never."
    )
    value_size: rc.ValueSize = Field(
        default=rc.DEFAULT_VALUE_SIZE, description="Size of each value in bytes."
    )
    key_count: rc.KeyCount = Field(
        default=rc.DEFAULT_KEY_COUNT, description="Number of distinct keys cycled through."
    )
    partitions: rc.Partitions = Field(default=1, description="Number of simulated partitions.")


class Source(_ExactlyOne):
    """Where messages come from: exactly one of kafka, generator."""

    one_of = ("kafka", "generator")

    kafka: KafkaSource | None = Field(default=None, description="Consume from Kafka.")
    generator: GeneratorSource | None = Field(
        default=None, description="Generate messages in the pod."
    )


# --- Sinks ---


class UserDefinedSink(_Model):
    """A user-defined sink: the user's container serving the Numaflow sink gRPC contract."""

    container: Container = Field(description="The sink's container (runs as a native sidecar).")
    startup_timeout: Annotated[str, GoDuration(durations.STARTUP_TIMEOUT)] = Field(
        default=durations.STARTUP_TIMEOUT.default,
        description=(
            "How long to wait for the sink's server to become ready; also the delay before its "
            "container's first liveness probe."
        ),
    )
    max_message_bytes: Annotated[
        rc.MaxMessageBytes, ShownDefault(mib(runtime_constants.DEFAULT_MAX_MESSAGE_BYTES))
    ] = Field(
        default=runtime_constants.DEFAULT_MAX_MESSAGE_BYTES,
        description="Largest gRPC message exchanged with the sink.",
    )
    write_timeout: Annotated[str, GoDuration(durations.WRITE_TIMEOUT)] = Field(
        default=durations.WRITE_TIMEOUT.default,
        description=(
            "How long the sink may take to answer one batch; then the stream is reset and the "
            "batch counts as FAILURE (retried with backoff). A warning is logged after a third "
            "of it. A sink that keeps the runtime waiting 2 x this + "
            f"{UNANSWERED_SLACK_S:g}s without an answer fails its container's liveness probe "
            "and is restarted."
        ),
    )


KEY_HEADER_RESERVED_PREFIX = "__key"


_RESERVED_HEADER = messages.RESERVED_HEADER.text(prefix=repr(KEY_HEADER_RESERVED_PREFIX))


def _check_static_headers(headers: dict[str, str]) -> dict[str, str]:
    for key in sorted(headers):
        if key.startswith(KEY_HEADER_RESERVED_PREFIX):
            raise refused(f"{_RESERVED_HEADER} (got {key!r})")
    return headers


StaticHeaders = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=255)], str],
    AfterValidator(_check_static_headers),
    Field(
        json_schema_extra={
            "maxProperties": 64,
            CEL: [
                cel(
                    f"self.all(k, !k.startsWith('{KEY_HEADER_RESERVED_PREFIX}'))",
                    _RESERVED_HEADER,
                )
            ],
        }
    ),
]


class KeyHeaders(_Model):
    """Which headers a Kafka record gets: keys, the message's own headers, static ones."""

    keys: runtime_constants.KeyHeaderMode = Field(
        default="split",
        description=(
            "How keys travel in headers. split: __key_len = N and __key_0..__key_{N-1} "
            "(Numaflow-compatible); single: one header (keysHeader) holding a JSON array "
            "(lossless even if keys contain the separator); none: no key headers. Key headers "
            "take precedence over same-named message headers."
        ),
    )
    keys_header: Annotated[str, Field(min_length=1, max_length=255)] = Field(
        default=runtime_constants.DEFAULT_KEYS_HEADER,
        description="Header name for the `single` layout.",
    )
    propagate: bool = Field(default=True, description="Copy the message's own headers.")
    static: StaticHeaders = Field(
        default_factory=dict, description="Headers added to every record."
    )


class KafkaSink(KafkaConnection):
    """Produce to a Kafka topic, keeping keys and headers."""

    topic: Topic = Field(description="Topic to produce to.")
    set_key: bool = Field(
        default=True,
        description="Record key = the message's keys joined by keySeparator.",
    )
    key_separator: Annotated[
        str, Field(max_length=16), ShownDefault(repr(runtime_constants.DEFAULT_KEY_SEPARATOR))
    ] = Field(
        default=runtime_constants.DEFAULT_KEY_SEPARATOR,
        description="Separator that joins keys into the record key.",
    )
    headers: KeyHeaders = Field(
        default_factory=KeyHeaders, description="Key headers, propagated and static headers."
    )
    exactly_once: bool = Field(
        default=False,
        description=(
            "spec.sink.kafka only: write each batch's records (and its dead-letter, onSuccess "
            "and serve records) and the source offsets in one Kafka transaction, so readers "
            "with isolation.level=read_committed see every input record exactly once. Needs a "
            "Kafka source on the same brokers, Kafka secondary sinks with the same "
            "connection, and an onFailure other than drop."
        ),
    )


class LogSink(_Model):
    """Log each message (a debugging sink)."""

    value_preview_bytes: rc.ValuePreviewBytes = Field(
        default=rc.DEFAULT_VALUE_PREVIEW_BYTES, description="How many bytes of each value to log."
    )


class BlackholeSink(_Model):
    """Discard every message (benchmarks, tests)."""


SINK_MEMBERS = ("udsink", "kafka", "log", "blackhole")
PRIMARY_ONLY = ("fallback", "onSuccess", "serve", "retryStrategy")


class AbstractSink(_ExactlyOne):
    """A sink: exactly one of udsink, kafka, log, blackhole."""

    one_of = SINK_MEMBERS

    udsink: UserDefinedSink | None = Field(
        default=None, description="A user-defined sink container (gRPC)."
    )
    kafka: KafkaSink | None = Field(default=None, description="Produce to Kafka.")
    log: LogSink | None = Field(default=None, description="Log messages.")
    blackhole: BlackholeSink | None = Field(default=None, description="Discard messages.")


class SecondarySink(AbstractSink):
    """A fallback or on-success sink: exactly one of udsink, kafka, log, blackhole, without
    its own fallback, onSuccess, serve or retryStrategy (only spec.sink has those)."""

    @model_validator(mode="before")
    @classmethod
    def _no_nesting(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            nested = [k for k in PRIMARY_ONLY if k in data]
            if nested:
                raise ValueError(
                    f"a fallback or onSuccess sink cannot have its own {', '.join(nested)}: "
                    "only spec.sink has fallback, onSuccess, serve and retryStrategy"
                )
        return data


class ServeSink(_ExactlyOne):
    """Where SERVE results go: exactly one of kafka, log."""

    one_of = ("kafka", "log")

    kafka: KafkaSink | None = Field(default=None, description="Produce served payloads to Kafka.")
    log: LogSink | None = Field(default=None, description="Log served payloads.")


# A field's value or its default, in CEL (the CRD writes no defaults but spec.replicas).
_CAP = f"(has(self.cap) ? self.cap : '{durations.BACKOFF_CAP.default}')"
_INTERVAL = f"(has(self.interval) ? self.interval : '{durations.BACKOFF_INTERVAL.default}')"


class Backoff(_Model):
    """Exponential backoff between retries of the primary sink."""

    cel_rules = (
        cel(
            # Malformed durations are reported by their own fields' rules, not converted here.
            f"!{duration_cel(_CAP)} || !{duration_cel(_INTERVAL)} || "
            f"duration({_CAP}) >= duration({_INTERVAL})",
            messages.CAP_BELOW_INTERVAL.text(cap="cap", interval="interval"),
            messages.CAP_BELOW_INTERVAL.cel(cap=_CAP, interval=_INTERVAL),
        ),
    )

    interval: Annotated[str, GoDuration(durations.BACKOFF_INTERVAL)] = Field(
        default=durations.BACKOFF_INTERVAL.default, description="Delay before the first retry."
    )
    factor: rc.BackoffFactor = Field(
        default=rc.DEFAULT_BACKOFF_FACTOR,
        description="Multiplier applied to the delay after each retry.",
    )
    cap: Annotated[str, GoDuration(durations.BACKOFF_CAP)] = Field(
        default=durations.BACKOFF_CAP.default, description="Largest delay."
    )
    steps: rc.RetrySteps = Field(
        default=rc.DEFAULT_BACKOFF_STEPS,
        description="Retries after the first attempt; then onFailure applies.",
    )
    jitter: rc.Jitter = Field(
        default=rc.DEFAULT_JITTER, description="Random fraction added to each delay."
    )

    @model_validator(mode="after")
    def _cap_covers_interval(self) -> Backoff:
        if exact_ms(self.cap) < exact_ms(self.interval):
            raise refused(messages.CAP_BELOW_INTERVAL.text(cap=self.cap, interval=self.interval))
        return self


class SecondaryRetry(_Model):
    """How long writes to the fallback, on-success and serve sinks are retried."""

    steps: rc.RetrySteps = Field(
        default=rc.DEFAULT_SECONDARY_STEPS,
        description=(
            "Retries of a write the secondary sink did not accept (with the backoff above); "
            "then onExhausted applies."
        ),
    )
    on_exhausted: runtime_constants.OnExhausted = Field(
        default="stop",
        description=(
            "stop: hold the batch (nothing more is read or committed), report the pod not "
            "ready with the reason, and keep retrying at the backoff cap until the sink takes "
            "it. log: log each record's coordinates (id, keys, size, error), count it in "
            "udsink_dropped_total, and go on."
        ),
    )


class RetryStrategy(_Model):
    """What happens when the primary sink fails a message."""

    backoff: Backoff = Field(default_factory=Backoff, description="Retry delays.")
    on_failure: runtime_constants.OnFailure = Field(
        default="retry",
        description=(
            "After the retries: retry (keep retrying, never drop), fallback (send to "
            "spec.sink.fallback, which must be set) or drop."
        ),
    )
    secondary: SecondaryRetry = Field(
        default_factory=SecondaryRetry,
        description="Retries of the fallback, on-success and serve sinks, and the last resort.",
    )


class Sink(AbstractSink):
    """The primary sink (exactly one of udsink, kafka, log, blackhole), its retry policy and
    its secondary sinks."""

    cel_rules = (
        cel(
            "!has(self.retryStrategy) || !has(self.retryStrategy.onFailure) || "
            "self.retryStrategy.onFailure != 'fallback' || has(self.fallback)",
            FALLBACK_NEEDED,
        ),
    )

    retry_strategy: RetryStrategy = Field(
        default_factory=RetryStrategy, description="Retries and what happens after them."
    )
    fallback: SecondarySink | None = Field(
        default=None,
        description=(
            "Where failed messages (onFailure fallback) and FALLBACK results go, e.g. a "
            "dead-letter topic. A udsink here runs as the fb-udsink sidecar."
        ),
    )
    on_success: SecondarySink | None = Field(
        default=None,
        description="Where ON_SUCCESS results go. A udsink here runs as the ons-udsink sidecar.",
    )
    serve: ServeSink | None = Field(
        default=None, description="Where SERVE results go: kafka or log."
    )

    @model_validator(mode="after")
    def _fallback_when_needed(self) -> Sink:
        if self.retry_strategy.on_failure == "fallback" and self.fallback is None:
            raise ValueError(FALLBACK_NEEDED)
        return self


# --- Delivery and batching ---


class Batch(_Model):
    """How messages are grouped; a batch is the unit of acknowledgement."""

    size: rc.BatchSize = Field(default=rc.DEFAULT_BATCH_SIZE, description="Largest batch.")
    max_bytes: Annotated[rc.BatchBytes, ShownDefault(mib(rc.DEFAULT_BATCH_MAX_BYTES))] = Field(
        default=rc.DEFAULT_BATCH_MAX_BYTES,
        description=(
            "A batch read from Kafka closes once its values reach this many bytes (a larger "
            "record makes a batch of one). Bounds the data plane's memory with large values: "
            "it holds about two batches."
        ),
    )
    timeout: Annotated[str, GoDuration(durations.BATCH_TIMEOUT)] = Field(
        default=durations.BATCH_TIMEOUT.default, description="Longest wait to fill a batch."
    )


class Nack(_Model):
    """Defaults for NACK results: redelivered later without using the retry budget."""

    delay: Annotated[str, GoDuration(durations.NACK_DELAY)] = Field(
        default=durations.NACK_DELAY.default, description="Redelivery delay."
    )
    max_deliveries: rc.MaxDeliveries = Field(
        default=rc.DEFAULT_MAX_DELIVERIES,
        description="Deliveries before onFailure applies; 0 = unbounded.",
    )


class Lifecycle(_Model):
    """Running or paused."""

    desired_phase: constants.DesiredPhase = Field(
        default=constants.PHASE_RUNNING,
        description=(
            f"{constants.PHASE_RUNNING}, or {constants.PHASE_PAUSED} (0 pods; spec.replicas is "
            "kept)."
        ),
    )


class Runtime(_Model):
    """The udsink data-plane container."""

    image: Annotated[
        Annotated[str, Field(min_length=1, max_length=1024)] | None,
        ShownDefault("the operator's runtime image"),
    ] = Field(default=None, description="Runtime image.")
    image_pull_policy: Annotated[PullPolicy | None, ShownDefault("Kubernetes' default")] = Field(
        default=None, description="Always, IfNotPresent or Never."
    )
    resources: Resources | None = Field(
        default=None,
        description=(
            "CPU and memory of the runtime. Each resource named here (in requests or limits) "
            "replaces both of its default values; the others keep theirs (a cpu request alone: "
            "no cpu limit). Defaults: the operator's (the chart's runtime.resources), else "
            f"requests cpu {constants.DEFAULT_RUNTIME_CPU_REQUEST}, limits cpu "
            f"{constants.DEFAULT_RUNTIME_CPU_LIMIT}, and memory request = limit = the data "
            "plane's memory bound, from batch.maxBytes, the Kafka source's "
            f"{memory.QUEUE_KBYTES_KEY} and {memory.FETCH_BYTES_KEY}, and whether a sink is "
            f"user-defined ({memory.default_kafka_bound_mib(user_sink=True)}Mi with their "
            f"defaults and a user-defined sink, {memory.default_kafka_bound_mib(user_sink=False)}"
            "Mi with a built-in one)."
        ),
    )
    log_level: runtime_constants.LogLevel = Field(
        default="info", description="debug, info, warning or error."
    )
    log_format: runtime_constants.LogFormat = Field(default="json", description="json or text.")
    shutdown_grace_period: Annotated[str, GoDuration(durations.SHUTDOWN_GRACE)] = Field(
        default=durations.SHUTDOWN_GRACE.default,
        description=(
            "Time to finish the in-flight batch after SIGTERM; the pod's termination grace "
            f"period is this plus {constants.SHUTDOWN_MARGIN_SECONDS}s."
        ),
    )


# --- The spec ---


class UDSinkSpec(_Model):
    """A source, a sink (user-defined or built-in) and what happens on failure."""

    replicas: Annotated[int, Field(ge=0, le=10_000)] = Field(
        default=1,
        description=(
            "Pods to run; the target of the scale subresource (kubectl scale, HPA, KEDA). "
            "Parallelism is bounded by the partition count."
        ),
        json_schema_extra={CRD_DEFAULT: True},
    )
    lifecycle: Lifecycle = Field(default_factory=Lifecycle, description="Running or paused.")
    source: Source = Field(description="Where messages come from.")
    batch: Batch = Field(default_factory=Batch, description="Batch size and timeout.")
    sink: Sink = Field(description="Where messages go, and what happens on failure.")
    nack: Nack = Field(default_factory=Nack, description="Defaults for NACK results.")
    runtime: Runtime = Field(default_factory=Runtime, description="The data-plane container.")
    pod: Pod = Field(default_factory=Pod, description="Pod-level settings.")

    @property
    def paused(self) -> bool:
        return self.lifecycle.desired_phase == constants.PHASE_PAUSED

    def secret_refs(self) -> list[tuple[str, SecretKeyRef]]:
        """Every Secret key the runtime reads, with the field path that references it."""
        refs: list[tuple[str, SecretKeyRef]] = []
        if self.source.kafka is not None:
            refs += [(f"spec.source.kafka.{p}", r) for p, r in self.source.kafka.secret_refs()]
        for path, sink in self.kafka_sinks():
            refs += [(f"{path}.{p}", r) for p, r in sink.secret_refs()]
        return refs

    @model_validator(mode="after")
    def _exactly_once_holds(self) -> UDSinkSpec:
        def leg(path: str, holder: AbstractSink | ServeSink) -> exactly_once.Leg:
            kafka = holder.kafka
            if kafka is None:
                return exactly_once.Leg(path, holder.member())
            connects = exactly_once.connection(kafka.brokers, kafka.tls, kafka.sasl, kafka.config)
            return exactly_once.Leg(path, "kafka", connects, kafka.exactly_once)

        source, primary = self.source.kafka, self.sink.kafka
        found = exactly_once.problems(
            root="spec.sink",
            source_kind=self.source.member(),
            source_brokers=[] if source is None else source.brokers,
            primary=leg("spec.sink", self.sink),
            primary_brokers=[] if primary is None else primary.brokers,
            others=[leg(path, holder) for path, holder in self.secondary_sinks()],
            on_failure=self.sink.retry_strategy.on_failure,
        )
        if found:
            raise refused("; ".join(found))
        return self

    def secondary_sinks(self) -> list[tuple[str, AbstractSink | ServeSink]]:
        """The fallback, onSuccess and serve sinks that are set, with their field paths."""
        holders: list[tuple[str, AbstractSink | ServeSink | None]] = [
            ("spec.sink.fallback", self.sink.fallback),
            ("spec.sink.onSuccess", self.sink.on_success),
            ("spec.sink.serve", self.sink.serve),
        ]
        return [(path, holder) for path, holder in holders if holder is not None]

    def kafka_sinks(self) -> list[tuple[str, KafkaSink]]:
        holders = [("spec.sink", self.sink), *self.secondary_sinks()]
        return [
            (f"{path}.kafka", holder.kafka) for path, holder in holders if holder.kafka is not None
        ]


# --- Status ---


class Condition(_Model):
    """A condition in the metav1.Condition shape."""

    type: Annotated[str, Field(min_length=1, max_length=316)] = Field(
        description="Ready, Progressing, Degraded or ConfigValid."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="Machine-readable reason, CamelCase."
    )
    message: Annotated[str, Field(max_length=32768)] = Field(
        default="", description="Human-readable details."
    )
    last_transition_time: str = Field(
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="The spec generation this condition was computed for."
    )


class UDSinkStatus(_Model):
    """Observed state, written by the operator only."""

    phase: constants.Phase | None = Field(
        default=None,
        description=f"{', '.join(constants.PHASES[:-1])} or {constants.PHASES[-1]}.",
    )
    observed_generation: int | None = Field(
        default=None, description="The spec generation the operator last acted on."
    )
    replicas: int | None = Field(default=None, description="Pods that exist (scale subresource).")
    ready_replicas: int | None = Field(default=None, description="Pods that are ready.")
    selector: str | None = Field(
        default=None, description="Label selector of the pods (scale subresource, HPA)."
    )
    message: str | None = Field(default=None, description="Human-readable summary.")
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready, Progressing, Degraded and ConfigValid.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


# --- The resource ---


class ObjectMeta(BaseModel):
    """The part of metadata the operator reads; everything else is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    name: Annotated[
        str,
        Matches(constants.NAME_PATTERN, messages.RESOURCE_NAME),
        Field(min_length=1, max_length=constants.NAME_MAX_LENGTH),
    ]
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class UDSink(BaseModel):
    """A whole UDSink object as read from a file or from the API server."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: Literal["udsink.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["UDSink"]
    metadata: ObjectMeta
    spec: UDSinkSpec
