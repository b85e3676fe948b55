"""Names, paths, ports and header names shared by the SDK, the data plane and the operator.

One module so that a fact (a socket path, a reserved container name, a header name) has one
source of truth: the operator builds pods from these values and the data plane and the SDK
server read the same ones. It imports nothing, so every layer may depend on it.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

# --- The words the UDSink spec, the RuntimeConfig and the CLI flags share (one list each) ---
OnFailure: TypeAlias = Literal["retry", "fallback", "drop"]
OnExhausted: TypeAlias = Literal["stop", "log"]
KeyHeaderMode: TypeAlias = Literal["split", "single", "none"]
StartOffset: TypeAlias = Literal["earliest", "latest"]
SaslMechanism: TypeAlias = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
# The member of a UDSink's `sasl` holding each mechanism's credentials (`sasl.<member>`).
SASL_MEMBERS: Final[dict[str, str]] = {
    "PLAIN": "plain",
    "SCRAM-SHA-256": "scramsha256",
    "SCRAM-SHA-512": "scramsha512",
    "OAUTHBEARER": "oauth",
}
LogLevel: TypeAlias = Literal["debug", "info", "warning", "error"]
LogFormat: TypeAlias = Literal["json", "text"]
SidecarMode: TypeAlias = Literal["native", "plain"]

# --- Sidecar kinds and their sockets (the paths every Numaflow SDK uses by default) ---
ContainerType: TypeAlias = Literal["udsink", "fb-udsink", "ons-udsink"]

SOCKET_DIR: Final = "/var/run/numaflow"
CONTAINER_TYPE_ENV: Final = "NUMAFLOW_UD_CONTAINER_TYPE"
# Local runs and tests point the SDK server elsewhere with these.
SOCKET_PATH_ENV: Final = "UDSINK_SOCKET_PATH"
SERVER_INFO_PATH_ENV: Final = "UDSINK_SERVER_INFO_PATH"

CONTAINER_UDSINK: Final = "udsink"
CONTAINER_FALLBACK: Final = "fb-udsink"
CONTAINER_ON_SUCCESS: Final = "ons-udsink"
CONTAINER_RUNTIME: Final = "runtime"
RESERVED_CONTAINER_NAMES: Final = frozenset(
    {CONTAINER_RUNTIME, CONTAINER_UDSINK, CONTAINER_FALLBACK, CONTAINER_ON_SUCCESS}
)

SOCKET_FILES: Final[dict[str, str]] = {
    CONTAINER_UDSINK: "sink.sock",
    CONTAINER_FALLBACK: "fb-sink.sock",
    CONTAINER_ON_SUCCESS: "ons-sink.sock",
}
SERVER_INFO_FILES: Final[dict[str, str]] = {
    CONTAINER_UDSINK: "sinker-server-info",
    CONTAINER_FALLBACK: "fb-sinker-server-info",
    CONTAINER_ON_SUCCESS: "ons-sinker-server-info",
}

# The server-info file ends with these 13 ASCII characters (U+005C then "__END__"),
# the marker Numaflow's reader and its SDKs look for.
SERVER_INFO_END_MARKER: Final = "U+005C__END__"
# Server-info metadata key that advertises the batch extension (udsink.v1.BatchSink).
BATCH_EXTENSION_KEY: Final = "udsink.batch"
BATCH_EXTENSION_VERSION: Final = "v1"
MINIMUM_NUMAFLOW_VERSION: Final = "1.4.0-z"

DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024

# --- The runtime container ---
CONFIG_PATH: Final = "/etc/udsink/config.json"
CONFIG_DIR: Final = "/etc/udsink"
CONFIG_FILE: Final = "config.json"
SECRETS_DIR: Final = "/var/run/secrets/udsink"
METRICS_PORT: Final = 9090
METRICS_PORT_NAME: Final = "metrics"
LIVEZ_PATH: Final = "/livez"
READYZ_PATH: Final = "/readyz"
METRICS_PATH: Final = "/metrics"
# Where the runtime container leaves the reason it ended (the kubelet's default path, set
# explicitly on the container with terminationMessagePolicy File); the operator reads it from
# the pod's container status into the UDSink's Ready condition.
TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"
# How long Kafka brokers may refuse a connection (credentials, certificates, TLS against a
# plaintext listener: not an outage) before the runtime ends with its reason in the termination
# message (seconds). The restart reads the mounted Secret files again.
KAFKA_REFUSED_LIMIT_S: Final = 60.0

# --- Key headers (docs/keys-and-headers.md) ---
KEY_LEN_HEADER: Final = "__key_len"
KEY_HEADER_PREFIX: Final = "__key_"
DEFAULT_KEYS_HEADER: Final = "__keys"
DEFAULT_KEY_SEPARATOR: Final = ":"

# Error headers added to messages written to a fallback sink.
FALLBACK_STATUS_HEADER: Final = "x-udsink-status"
FALLBACK_ERROR_HEADER: Final = "x-udsink-error"
FALLBACK_ATTEMPTS_HEADER: Final = "x-udsink-attempts"
FALLBACK_SOURCE_HEADER: Final = "x-udsink-source"
# Added by the Kafka source to a record it delivers without its own headers (they could not be
# read): why (docs/concepts.md, "Records no producer should write").
SOURCE_ERROR_HEADER: Final = "x-udsink-source-error"

# --- librdkafka settings the data plane owns (docs/design/api.md: `config` may not set them) ---
# Exact names, plus every name under the prefixes, each with what to do instead of setting it.
# The operator refuses them at validation and the data plane refuses them again at start-up,
# both naming the key.
KAFKA_OWNED_KEY_HINTS: Final[dict[str, str]] = {
    "bootstrap.servers": "set brokers",
    "metadata.broker.list": "set brokers",
    "group.id": "set consumerGroup",
    "enable.auto.commit": "udsink commits offsets itself, after each batch",
    "enable.auto.offset.store": "udsink commits offsets itself, after each batch",
    "auto.offset.reset": "set startOffset",
    "security.protocol": "set tls and sasl",
    "enable.ssl.certificate.verification": "set tls.insecureSkipVerify",
    "transactional.id": "set the sink's exactlyOnce: udsink derives one id per data plane",
    "enable.idempotence": "udsink's producer is always idempotent with acks=all",
    "acks": "udsink's producer is always idempotent with acks=all",
    "request.required.acks": "udsink's producer is always idempotent with acks=all",
}
# Every key under these prefixes is owned too.
KAFKA_OWNED_PREFIX_HINTS: Final[dict[str, str]] = {
    "sasl.": "set sasl (credentials come from Secrets)",
    "ssl.": "set tls (certificates come from Secrets)",
}
KAFKA_OWNED_CONFIG_KEYS: Final = frozenset(KAFKA_OWNED_KEY_HINTS)
KAFKA_OWNED_CONFIG_PREFIXES: Final = tuple(KAFKA_OWNED_PREFIX_HINTS)

# --- Logging of the SDK server and the data plane (sink_runtime/logs.py) ---
LOG_LEVEL_ENV: Final = "UDSINK_LOG_LEVEL"
# "json" (one object per line) or "text"; default: text on a terminal, json otherwise.
LOG_FORMAT_ENV: Final = "UDSINK_LOG_FORMAT"

# --- Server-info of sinks built with our SDK ---
# Numaflow checks `version` of a "python" server against the minimum pynumaflow version it
# supports per container type (0.9.0rc100 for sinks, 0.11.1rc100 for on-success sinks, NACK
# from 0.11.0rc100). Our SDK speaks the sink.v1 contract of this pynumaflow release, so it
# reports that version there; its own version goes into the metadata under SDK_VERSION_KEY.
SDK_COMPAT_VERSION: Final = "0.14.0"
SDK_VERSION_KEY: Final = "udsink.version"
