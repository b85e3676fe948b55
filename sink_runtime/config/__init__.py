"""RuntimeConfig: the whole contract between the operator and the data plane.

The operator renders a UDSink into this model and writes it as JSON into the pod's ConfigMap
(`/etc/udsink/config.json`); the data plane reads it at start-up and refuses to start when it
is invalid, naming the field. It holds file paths of mounted secrets, never secret values.
`udsink run` builds the same model for local runs, so the local and in-cluster data planes
are configured identically.

Field names are snake_case in Python and camelCase in JSON, like the UDSink resource.
Durations are integer milliseconds: the operator parses the Go-style strings of the resource,
and both sides take each duration's bounds and default from one `durations.DurationSpec`.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from sink_runtime.config import constants, exactly_once
from sink_runtime.config.durations import (
    BACKOFF_CAP,
    BACKOFF_INTERVAL,
    BATCH_TIMEOUT,
    NACK_DELAY,
    SHUTDOWN_GRACE,
    STARTUP_TIMEOUT,
    WRITE_TIMEOUT,
)
from sink_runtime.config.errors import FALLBACK_NEEDED, refused, validation_issues

TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"
BROKER_PATTERN = r"^[^\s:/]+:[0-9]{1,5}$"

Topic = Annotated[str, Field(pattern=TOPIC_PATTERN)]
Broker = Annotated[str, Field(pattern=BROKER_PATTERN)]

# --- Bounds and defaults the UDSink spec and the RuntimeConfig share ---
# One home: the operator's models (udsink_operator.api) use these very types and values, so
# what the API server accepts and what the data plane accepts cannot drift apart.
BatchSize = Annotated[int, Field(ge=1, le=10_000)]
DEFAULT_BATCH_SIZE = 500
# A Kafka batch also closes once its values reach this many bytes (docs/operations.md,
# "Memory": what a data plane holds is a small multiple of it).
BatchBytes = Annotated[int, Field(ge=1024, le=2**31 - 1)]
DEFAULT_BATCH_MAX_BYTES = 16 * 1024 * 1024
GeneratorRate = Annotated[int, Field(ge=0, le=10_000_000)]
DEFAULT_GENERATOR_RATE = 100
GeneratorCount = Annotated[int, Field(ge=0, le=2**62)]
ValueSize = Annotated[int, Field(ge=0, le=constants.DEFAULT_MAX_MESSAGE_BYTES)]
DEFAULT_VALUE_SIZE = 128
KeyCount = Annotated[int, Field(ge=0, le=1_000_000)]
DEFAULT_KEY_COUNT = 8
Partitions = Annotated[int, Field(ge=1, le=1024)]
BackoffFactor = Annotated[float, Field(ge=1.0, le=10.0)]
DEFAULT_BACKOFF_FACTOR = 2.0
RetrySteps = Annotated[int, Field(ge=0, le=1_000_000)]
DEFAULT_BACKOFF_STEPS = 10
DEFAULT_SECONDARY_STEPS = 20
Jitter = Annotated[float, Field(ge=0.0, le=1.0)]
DEFAULT_JITTER = 0.1
MaxDeliveries = Annotated[int, Field(ge=0, le=1_000_000)]
DEFAULT_MAX_DELIVERIES = 0  # unbounded
MaxMessageBytes = Annotated[int, Field(ge=1024, le=2**31 - 1)]
ValuePreviewBytes = Annotated[int, Field(ge=0, le=65536)]
DEFAULT_VALUE_PREVIEW_BYTES = 64


ModelT = TypeVar("ModelT", bound=BaseModel)


def revised(model: ModelT, **changes: Any) -> ModelT:
    """A copy of `model` with `changes` (by field name), validated as a new model would be:
    pydantic's `model_copy(update=...)` checks nothing, so a wrong value would pass."""
    values = {name: getattr(model, name) for name in type(model).model_fields}
    values.update(changes)
    return type(model).model_validate(values)


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


# --- Kafka connection security (files only: secrets are mounted, never inlined) ---


class TlsFiles(_Model):
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False


class SaslFiles(_Model):
    mechanism: constants.SaslMechanism
    username_file: str | None = None
    password_file: str | None = None
    # OAUTHBEARER (OIDC client credentials): the token endpoint and client credentials files.
    token_endpoint: str | None = None
    client_id_file: str | None = None
    client_secret_file: str | None = None
    scope: str | None = None

    @model_validator(mode="after")
    def _credentials_present(self) -> SaslFiles:
        if self.mechanism == "OAUTHBEARER":
            missing = [
                n
                for n in ("token_endpoint", "client_id_file", "client_secret_file")
                if getattr(self, n) is None
            ]
        else:
            missing = [n for n in ("username_file", "password_file") if getattr(self, n) is None]
        if missing:
            raise ValueError(
                f"sasl mechanism {self.mechanism} needs {', '.join(to_camel(m) for m in missing)}"
            )
        return self


class KafkaConnection(_Model):
    brokers: Annotated[list[Broker], Field(min_length=1)]
    tls: TlsFiles | None = None
    sasl: SaslFiles | None = None
    # librdkafka overrides; the keys we own are refused by the operator's validation.
    config: dict[str, str] = Field(default_factory=dict)


# --- Sources ---


class KafkaSourceConfig(KafkaConnection):
    type: Literal["kafka"] = "kafka"
    topics: Annotated[list[Topic], Field(min_length=1)]
    consumer_group: Annotated[str, Field(min_length=1, max_length=255)]
    start_offset: constants.StartOffset = "earliest"
    keys_from_headers: bool = True
    keys_header: str = constants.DEFAULT_KEYS_HEADER


class GeneratorSourceConfig(_Model):
    type: Literal["generator"] = "generator"
    rate: GeneratorRate = DEFAULT_GENERATOR_RATE  # messages per second; 0 = as fast as possible
    count: GeneratorCount = 0
    value_size: ValueSize = DEFAULT_VALUE_SIZE
    key_count: KeyCount = DEFAULT_KEY_COUNT
    partitions: Partitions = 1


class FileSourceConfig(_Model):
    """JSON lines (`{"value": ..., "keys": [...], "headers": {...}}`), for replaying cases."""

    type: Literal["file"] = "file"
    path: str


SourceConfig: TypeAlias = Annotated[
    KafkaSourceConfig | GeneratorSourceConfig | FileSourceConfig, Field(discriminator="type")
]


# --- Sinks ---


class KeyHeadersConfig(_Model):
    # split: __key_len + __key_0..N-1; single: one header holding a JSON array; none.
    keys: constants.KeyHeaderMode = "split"
    keys_header: str = constants.DEFAULT_KEYS_HEADER
    propagate: bool = True
    static: dict[str, str] = Field(default_factory=dict)


class KafkaSinkConfig(KafkaConnection):
    type: Literal["kafka"] = "kafka"
    topic: Topic
    set_key: bool = True
    key_separator: str = constants.DEFAULT_KEY_SEPARATOR
    headers: KeyHeadersConfig = Field(default_factory=KeyHeadersConfig)
    # Write each batch and its source offsets in one Kafka transaction (the primary sink only;
    # sink_runtime.config.exactly_once says when it may).
    exactly_once: bool = False


class UserSinkConfig(_Model):
    """A user-defined sink reached over gRPC on a Unix socket."""

    type: Literal["udsink"] = "udsink"
    container_type: constants.ContainerType = "udsink"
    socket_path: str
    server_info_path: str
    max_message_bytes: MaxMessageBytes = constants.DEFAULT_MAX_MESSAGE_BYTES
    # How long to wait for the server-info file and IsReady at start-up.
    startup_timeout_ms: int = STARTUP_TIMEOUT.millis_field()
    # Prefer the batch extension when the server advertises it.
    use_batch_extension: bool = True
    # How long one batch may take to be answered; then the stream is reset and the batch
    # counts as FAILURE (retried with backoff).
    write_timeout_ms: int = WRITE_TIMEOUT.millis_field()

    @classmethod
    def for_container(
        cls, container_type: constants.ContainerType, socket_dir: str = constants.SOCKET_DIR
    ) -> UserSinkConfig:
        return cls(
            container_type=container_type,
            socket_path=f"{socket_dir}/{constants.SOCKET_FILES[container_type]}",
            server_info_path=f"{socket_dir}/{constants.SERVER_INFO_FILES[container_type]}",
        )


class LogSinkConfig(_Model):
    type: Literal["log"] = "log"
    value_preview_bytes: ValuePreviewBytes = DEFAULT_VALUE_PREVIEW_BYTES


class BlackholeSinkConfig(_Model):
    type: Literal["blackhole"] = "blackhole"


SinkConfig: TypeAlias = Annotated[
    UserSinkConfig | KafkaSinkConfig | LogSinkConfig | BlackholeSinkConfig,
    Field(discriminator="type"),
]


# --- Delivery policy ---


class Backoff(_Model):
    interval_ms: int = BACKOFF_INTERVAL.millis_field()
    factor: BackoffFactor = DEFAULT_BACKOFF_FACTOR
    cap_ms: int = BACKOFF_CAP.millis_field()
    # Retries of the primary sink after the first attempt; then onFailure applies.
    steps: RetrySteps = DEFAULT_BACKOFF_STEPS
    jitter: Jitter = DEFAULT_JITTER


class SecondaryRetry(_Model):
    # Retries of a write to the fallback, on-success or serve sink (with the primary's backoff)
    # before on_exhausted applies: stop (hold the batch, not ready, keep trying at the capped
    # delay) or log (log the record's coordinates, count it as dropped, go on).
    steps: RetrySteps = DEFAULT_SECONDARY_STEPS
    on_exhausted: constants.OnExhausted = "stop"


class RetryStrategy(_Model):
    backoff: Backoff = Field(default_factory=Backoff)
    on_failure: constants.OnFailure = "retry"
    secondary: SecondaryRetry = Field(default_factory=SecondaryRetry)


class NackConfig(_Model):
    delay_ms: int = NACK_DELAY.millis_field()
    # 0 = unbounded; when reached, onFailure applies. Bounded as the UDSink's field is.
    max_deliveries: MaxDeliveries = DEFAULT_MAX_DELIVERIES


class BatchConfig(_Model):
    size: BatchSize = DEFAULT_BATCH_SIZE
    timeout_ms: int = BATCH_TIMEOUT.millis_field()
    max_bytes: BatchBytes = DEFAULT_BATCH_MAX_BYTES


class ObservabilityConfig(_Model):
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = constants.METRICS_PORT
    # Bind address of the HTTP server; "" = all interfaces (in-cluster), 127.0.0.1 locally.
    metrics_host: str = ""
    log_level: constants.LogLevel = "info"
    log_format: constants.LogFormat = "json"


class RuntimeConfig(_Model):
    name: str = "udsink"
    namespace: str = "default"
    source: SourceConfig
    batch: BatchConfig = Field(default_factory=BatchConfig)
    sink: SinkConfig
    retry_strategy: RetryStrategy = Field(default_factory=RetryStrategy)
    fallback: SinkConfig | None = None
    on_success: SinkConfig | None = None
    serve: Annotated[KafkaSinkConfig | LogSinkConfig, Field(discriminator="type")] | None = None
    nack: NackConfig = Field(default_factory=NackConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    # Time to finish the in-flight batch after SIGTERM before giving up (nothing unhandled
    # is committed either way).
    shutdown_grace_ms: int = SHUTDOWN_GRACE.millis_field()

    @model_validator(mode="after")
    def _fallback_when_needed(self) -> RuntimeConfig:
        if self.retry_strategy.on_failure == "fallback" and self.fallback is None:
            raise ValueError(FALLBACK_NEEDED)
        return self

    @model_validator(mode="after")
    def _exactly_once_holds(self) -> RuntimeConfig:
        def leg(path: str, sink: SinkConfig | KafkaSinkConfig | LogSinkConfig) -> exactly_once.Leg:
            if not isinstance(sink, KafkaSinkConfig):
                return exactly_once.Leg(path, sink.type)
            connects = exactly_once.connection(sink.brokers, sink.tls, sink.sasl, sink.config)
            return exactly_once.Leg(path, sink.type, connects, sink.exactly_once)

        found = exactly_once.problems(
            root="sink",
            source_kind=self.source.type,
            source_brokers=self.source.brokers if isinstance(self.source, KafkaConnection) else [],
            primary=leg("sink", self.sink),
            primary_brokers=self.sink.brokers if isinstance(self.sink, KafkaConnection) else [],
            others=[
                leg(path, sink)
                for path, sink in (
                    ("fallback", self.fallback),
                    ("onSuccess", self.on_success),
                    ("serve", self.serve),
                )
                if sink is not None
            ],
            on_failure=self.retry_strategy.on_failure,
        )
        if found:
            raise refused("; ".join(found))
        return self

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True, indent=2)


def owned_kafka_key(key: str) -> tuple[str, str] | None:
    """For a librdkafka key udsink sets itself: the owned key or prefix it falls under, and
    what to do instead; None when the key is the user's to set. The one check the operator's
    validation and the data plane's settings share."""
    if key in constants.KAFKA_OWNED_KEY_HINTS:
        return key, constants.KAFKA_OWNED_KEY_HINTS[key]
    for prefix, hint in constants.KAFKA_OWNED_PREFIX_HINTS.items():
        if key.startswith(prefix):
            return prefix, hint
    return None


class ConfigError(ValueError):
    """The runtime configuration could not be read; the message names the file and field."""


def _format_errors(err: ValidationError, origin: str) -> str:
    issues = validation_issues(err, RuntimeConfig)
    return "\n".join([f"invalid runtime config {origin}:", *(f"  {i}" for i in issues)])


def parse_config(text: str, origin: str = "<string>") -> RuntimeConfig:
    try:
        return RuntimeConfig.model_validate_json(text)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from None


def installed_version() -> str:
    """The installed `udsink` distribution's version (what server-info and build-info report),
    or "0+unknown" when running from a tree that was never installed."""
    try:
        return metadata.version("udsink")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def load_config(path: str | Path = constants.CONFIG_PATH) -> RuntimeConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read runtime config {p}: {err.strerror}") from None
    return parse_config(text, origin=str(p))


__all__ = [
    "Backoff",
    "BatchConfig",
    "BlackholeSinkConfig",
    "ConfigError",
    "FileSourceConfig",
    "GeneratorSourceConfig",
    "KafkaConnection",
    "KafkaSinkConfig",
    "KafkaSourceConfig",
    "KeyHeadersConfig",
    "LogSinkConfig",
    "NackConfig",
    "ObservabilityConfig",
    "RetryStrategy",
    "RuntimeConfig",
    "SaslFiles",
    "SecondaryRetry",
    "SinkConfig",
    "SourceConfig",
    "TlsFiles",
    "UserSinkConfig",
    "constants",
    "installed_version",
    "load_config",
    "parse_config",
    "revised",
]
