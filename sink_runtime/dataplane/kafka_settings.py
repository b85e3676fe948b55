"""librdkafka settings from the RuntimeConfig: connection, security, and the user's overrides.

One place that turns a KafkaConnection (brokers, TLS files, SASL files) into the flat
librdkafka map, so the Kafka source and the Kafka sink connect identically, and one place
that enforces which keys udsink owns. Secret values are read from their mounted files here,
at start-up, and never appear in an error, a log line or `redacted()` output.

Layering of a client's settings (later wins): our defaults, the user's `config` map, then the
settings we own. An owned key in the user's map is refused outright (as the operator does),
with an error naming the key and the field to use instead.

Every client udsink has (the data plane's source and Kafka sinks, `udsink run`, `udsink
replay`, `udsink offsets`, the bench) connects through `connection_settings`, and explains a
refused connection through `explain_failure`: the UDSink field and the Secret key involved and
librdkafka's reason, never a secret's value.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TypeAlias

from sink_runtime.config import (
    KafkaConnection,
    KafkaSinkConfig,
    KafkaSourceConfig,
    SaslFiles,
    TlsFiles,
    memory,
    owned_kafka_key,
)
from sink_runtime.config.constants import SASL_MEMBERS

Settings: TypeAlias = dict[str, str]

# Every value read from a Secret is hidden, the SASL user and the OIDC client id included:
# what a Secret holds appears in no log line (the errors name the Secret key instead).
_SECRET_KEY = re.compile(
    r"password|secret|\.pem$|jaas|oauthbearer\.config|^sasl\.username$|oauthbearer\.client\.id$",
    re.IGNORECASE,
)
_REDACTED = "<redacted>"

# Defaults the user's map may change. murmur2_random partitions keyed records exactly like
# the Java client, so our writes land on the same partitions as a Java producer's.
# delivery.report.only.error: the Kafka sink learns of failures from their reports and of
# successes from an empty queue, so a batch costs no Python call per delivered record.
PRODUCER_DEFAULTS: Mapping[str, str] = {
    "partitioner": "murmur2_random",
    "linger.ms": "5",
    "delivery.report.only.error": "true",
}
# fetch.queue.backoff.ms: once the prefetch queue is full, librdkafka pauses fetching for
# this long (its default is a whole second). A data plane that drains the queue in less than
# that then waits on an empty queue: measured on bench/dataplane_e2e.py's topic, reading and
# converting 1 KiB records went from 82,000 to 222,000 records/s with 10 ms.
# queued.max.messages.kbytes, fetch.max.bytes: librdkafka's prefetch, the part of the data
# plane's memory that does not depend on the batch (sink_runtime.config.memory has the bound
# they enter and their defaults; docs/operations.md, "Memory", the formula).
CONSUMER_DEFAULTS: Mapping[str, str] = {
    "enable.partition.eof": "false",
    "fetch.queue.backoff.ms": "10",
    memory.QUEUE_KBYTES_KEY: str(memory.DEFAULT_QUEUE_KBYTES),
    memory.FETCH_BYTES_KEY: str(memory.DEFAULT_FETCH_BYTES),
}
DEFAULT_DELIVERY_TIMEOUT_MS = 30_000


class KafkaSettingsError(ValueError):
    """The Kafka settings cannot be built; the message names the field, the value or file."""


# Where each client's connection sits in the UDSink, by the RuntimeConfig name (`where`) the
# data plane and the CLI use for it.
UDSINK_FIELDS: Mapping[str, str] = {
    "source": "spec.source.kafka",
    "sink": "spec.sink.kafka",
    "fallback": "spec.sink.fallback.kafka",
    "onSuccess": "spec.sink.onSuccess.kafka",
    "serve": "spec.sink.serve.kafka",
}
_TLS_FIELDS = {"ca_file": "caCertSecret", "cert_file": "certSecret", "key_file": "keySecret"}
_USER_PASSWORD = ("username_file", "password_file")
_SASL_FIELDS = {
    "username_file": "userSecret",
    "password_file": "passwordSecret",
    "client_id_file": "clientID",
    "client_secret_file": "clientSecret",
}


def udsink_field(where: str) -> str:
    """The UDSink field of a connection (`source` -> `spec.source.kafka`)."""
    return UDSINK_FIELDS.get(where, where)


def secret_text(path: str) -> str:
    """A secret file as a person knows it: its Secret and key when it sits where the operator
    mounts Secrets (`.../secrets/udsink/<secret>/<key>`, also the layout of local runs), else
    the path."""
    p = PurePosixPath(path)
    if len(p.parts) >= 5 and p.parent.parent.name == "udsink" and p.parents[2].name == "secrets":
        return f"Secret {p.parent.name!r} key {p.name!r}"
    return f"file {path}"


def tls_field(tls: TlsFiles, where: str, attr: str) -> str:
    """`spec.source.kafka.tls.caCertSecret (Secret 'kafka-ca' key 'ca.crt')`."""
    path = getattr(tls, attr)
    return f"{udsink_field(where)}.tls.{_TLS_FIELDS[attr]} ({secret_text(path)})"


def sasl_field(sasl: SaslFiles, where: str, attr: str) -> str:
    """`spec.source.kafka.sasl.scramsha512.passwordSecret (Secret 'kafka-user' key 'pw')`."""
    path = getattr(sasl, attr)
    member = SASL_MEMBERS[sasl.mechanism]
    return f"{udsink_field(where)}.sasl.{member}.{_SASL_FIELDS[attr]} ({secret_text(path)})"


def refuse_owned_keys(overrides: Mapping[str, str], where: str) -> None:
    """Raise for the first key of `overrides` that udsink sets itself."""
    for key in sorted(overrides):
        owned = owned_kafka_key(key)
        if owned is not None:
            raise KafkaSettingsError(
                f"{where}: librdkafka key {key!r} is set by udsink and may not be overridden; "
                f"{owned[1]}"
            )


def read_secret_file(path: str, field: str) -> str:
    """A mounted secret's value, without trailing line breaks (a common artefact of
    `kubectl create secret --from-file`). Errors name the field and path, never the value.
    """
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as err:
        raise KafkaSettingsError(
            f"{field}: cannot read secret file {path} ({err.strerror or err})"
        ) from None
    except UnicodeDecodeError:
        raise KafkaSettingsError(f"{field}: secret file {path} is not UTF-8 text") from None


def security_protocol(tls: TlsFiles | None, sasl: SaslFiles | None) -> str:
    match (tls is not None, sasl is not None):
        case (True, True):
            return "SASL_SSL"
        case (True, False):
            return "SSL"
        case (False, True):
            return "SASL_PLAINTEXT"
        case _:
            return "PLAINTEXT"


def tls_settings(tls: TlsFiles, where: str) -> Settings:
    out: Settings = {}
    for attr, key in (
        ("ca_file", "ssl.ca.location"),
        ("cert_file", "ssl.certificate.location"),
        ("key_file", "ssl.key.location"),
    ):
        path = getattr(tls, attr)
        if path is not None:
            if not Path(path).is_file():
                raise KafkaSettingsError(f"{tls_field(tls, where, attr)}: no such file {path}")
            out[key] = path
    if tls.insecure_skip_verify:
        out["enable.ssl.certificate.verification"] = "false"
        out["ssl.endpoint.identification.algorithm"] = "none"
    return out


def sasl_settings(sasl: SaslFiles, where: str) -> Settings:
    out: Settings = {"sasl.mechanism": sasl.mechanism}

    def read(attr: str) -> str:
        path = getattr(sasl, attr)
        assert path is not None  # SaslFiles checks each mechanism's files are set
        return read_secret_file(path, sasl_field(sasl, where, attr))

    if sasl.mechanism == "OAUTHBEARER":
        # OIDC client credentials, fetched and refreshed by librdkafka itself.
        assert sasl.token_endpoint
        out["sasl.oauthbearer.method"] = "oidc"
        out["sasl.oauthbearer.token.endpoint.url"] = sasl.token_endpoint
        out["sasl.oauthbearer.client.id"] = read("client_id_file")
        out["sasl.oauthbearer.client.secret"] = read("client_secret_file")
        if sasl.scope:
            out["sasl.oauthbearer.scope"] = sasl.scope
        return out
    out["sasl.username"] = read("username_file")
    out["sasl.password"] = read("password_file")
    return out


def connection_settings(conn: KafkaConnection, where: str) -> Settings:
    """Brokers and security, from the connection's fields and mounted files."""
    out: Settings = {
        "bootstrap.servers": ",".join(conn.brokers),
        "security.protocol": security_protocol(conn.tls, conn.sasl),
    }
    if conn.tls is not None:
        out |= tls_settings(conn.tls, where)
    if conn.sasl is not None:
        out |= sasl_settings(conn.sasl, where)
    return out


def consumer_settings(cfg: KafkaSourceConfig, where: str = "source") -> Settings:
    """A consumer that commits only when told to (the forwarder acks whole batches)."""
    refuse_owned_keys(cfg.config, f"{where}.config")
    return {
        **CONSUMER_DEFAULTS,
        **cfg.config,
        **connection_settings(cfg, where),
        "group.id": cfg.consumer_group,
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": cfg.start_offset,
    }


def producer_settings(
    cfg: KafkaSinkConfig,
    where: str = "sink",
    delivery_timeout_ms: int = DEFAULT_DELIVERY_TIMEOUT_MS,
) -> Settings:
    """An idempotent producer: retries inside librdkafka never duplicate or reorder.

    `message.timeout.ms` defaults to `delivery_timeout_ms`, so every message gets a delivery
    report (success or timeout) within a bounded time; the user's map may change it.
    """
    refuse_owned_keys(cfg.config, f"{where}.config")
    return {
        **PRODUCER_DEFAULTS,
        "message.timeout.ms": str(delivery_timeout_ms),
        **cfg.config,
        **connection_settings(cfg, where),
        "enable.idempotence": "true",
        "acks": "all",
    }


# Settings confluent-kafka reads itself rather than passing them to librdkafka: it wants a
# Python bool for these, where our config (a Kubernetes string map) has text.
_PYTHON_BOOL_KEYS = ("delivery.report.only.error",)
_BOOL_TEXT = {"true": True, "false": False}


def client_settings(settings: Settings, where: str) -> dict[str, Any]:
    """`settings` as confluent-kafka's clients take them (the keys above as bools)."""
    out: dict[str, Any] = dict(settings)
    for key in _PYTHON_BOOL_KEYS:
        if key in out:
            text = out[key]
            if text.lower() not in _BOOL_TEXT:
                raise KafkaSettingsError(
                    f"{where}.config: librdkafka key {key!r} is {text!r}; accepted: true, false"
                )
            out[key] = _BOOL_TEXT[text.lower()]
    return out


def redacted(settings: Mapping[str, object]) -> dict[str, str]:
    """Settings safe to log: secret values replaced, callbacks shown by name."""
    out: dict[str, str] = {}
    for key, value in settings.items():
        if _SECRET_KEY.search(key):
            out[key] = _REDACTED
        elif callable(value):
            out[key] = f"<{getattr(value, '__name__', type(value).__name__)}>"
        else:
            out[key] = str(value)
    return out


class ErrorThrottle:
    """Logs each kind of repeating librdkafka error at most once per interval (they repeat,
    alternating, while brokers are down); the repeats go to debug.
    """

    def __init__(self, log: logging.Logger, interval_s: float = 30.0) -> None:
        self._log = log
        self._interval_s = interval_s
        self._last: dict[object, float] = {}

    def warning(self, kind: object, text: str) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is None or now - last >= self._interval_s:
            self._last[kind] = now
            self._log.warning(text)
        else:
            self._log.debug(text)


class LibrdkafkaLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """librdkafka's own log lines, all at debug: what matters reaches us through error_cb
    (throttled, with context), and its per-attempt connection errors would flood the log.
    """

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        self.logger.log(logging.DEBUG, msg, *args, **kwargs)


# --- Why a connection was refused ---

# librdkafka error names (KafkaError.name()) that mean the brokers refused who we are or what
# we sent, rather than being away: they do not heal by waiting.
REFUSED_ERRORS = frozenset({"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL"})
# How long the TLS check of `explain_failure` may take per broker.
TLS_CHECK_TIMEOUT_S = 3.0
_CLIENT_CERT_REFUSED = re.compile(
    r"alert (bad certificate|certificate required|unknown ca|handshake failure)", re.IGNORECASE
)
_WRONG_PROTOCOL = re.compile(r"connecting to a (PLAINTEXT|SSL) broker listener", re.IGNORECASE)
_HANDSHAKE_CLOSED = re.compile(r"(closed|reset) by peer.*state SSL_HANDSHAKE", re.IGNORECASE)


def _reason(text: str) -> str:
    """librdkafka's reason without its broker prefix (`ssl://host:port/bootstrap: `)."""
    return re.sub(r"^\S+://\S+?/\S+: ", "", text)


def tls_check(conn: KafkaConnection) -> str | None:
    """Verify the first broker's certificate ourselves, with the connection's CA and host
    name, to say what librdkafka's `certificate verify failed` was about (expired, another
    host, an untrusted issuer). None when it verifies, or cannot be checked."""
    tls = conn.tls
    if tls is None or tls.insecure_skip_verify:
        return None
    host, _, port = conn.brokers[0].rpartition(":")
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file and tls.key_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        with (
            socket.create_connection((host, int(port)), timeout=TLS_CHECK_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return None
    except ssl.SSLCertVerificationError as err:
        return str(err.verify_message or err.reason)
    except (OSError, ValueError):
        return None


def speaks_tls(broker: str, timeout_s: float = TLS_CHECK_TIMEOUT_S) -> bool:
    """Whether `broker` (host:port) answers a TLS handshake (its certificate not verified):
    a plaintext client's connections to a TLS listener are only closed, with no reason."""
    return _tls_answer(broker, timeout_s) is True


def _tls_answer(broker: str, timeout_s: float = TLS_CHECK_TIMEOUT_S) -> bool | None:
    """True when `broker` completes a TLS handshake, False when it accepts the connection
    but not the handshake (a plaintext listener), None when it cannot be reached."""
    host, _, port = broker.rpartition(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        raw = socket.create_connection((host, int(port)), timeout=timeout_s)
    except (OSError, ValueError):
        return None
    try:
        with context.wrap_socket(raw, server_hostname=host):
            return True
    except (OSError, ValueError):
        return False
    finally:
        raw.close()


def explain_failure(
    conn: KafkaConnection, where: str, errors: Iterable[tuple[str, str]], *, check_tls: bool = True
) -> str | None:
    """What to fix, when librdkafka's errors (name, text) say the brokers refused this client
    (not merely that they are away): the UDSink field and Secret key involved and librdkafka's
    reason. None when no error says so. No secret value is ever part of the text: librdkafka
    names neither passwords nor keys, and the fields are named by their Secret and key.
    """
    field = udsink_field(where)
    for name, text in errors:
        reason = _reason(text)
        if name in ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED"):
            if conn.sasl is None:
                return f"{field}.sasl is not set, but the brokers want SASL: {reason}"
            if conn.sasl.mechanism == "OAUTHBEARER":
                creds = [sasl_field(conn.sasl, where, "client_id_file")]
                creds.append(sasl_field(conn.sasl, where, "client_secret_file"))
            else:
                creds = [
                    sasl_field(conn.sasl, where, a) for a in ("username_file", "password_file")
                ]
            return (
                f"the brokers refused the {conn.sasl.mechanism} credentials of "
                f"{' and '.join(creds)}: {reason}"
            )
        protocol = _WRONG_PROTOCOL.search(reason)
        plaintext = protocol is not None and protocol.group(1).upper() == "PLAINTEXT"
        # librdkafka adds its "connecting to a PLAINTEXT listener?" hint to only some of
        # the closes; an unhinted close during the handshake is settled by asking the
        # listener for a handshake ourselves.
        if not plaintext and check_tls and conn.tls is not None:
            plaintext = (
                _HANDSHAKE_CLOSED.search(reason) is not None
                and _tls_answer(conn.brokers[0]) is False
            )
        if plaintext:
            return (
                f"{field}.tls is set, but {conn.brokers[0]} is a plaintext listener (no TLS): "
                f"{reason}"
            )
        if name == "_SSL" or (name == "_TRANSPORT" and "SSL" in reason):
            return _explain_tls(conn, where, reason, check_tls=check_tls)
    return None


def _explain_tls(conn: KafkaConnection, where: str, reason: str, *, check_tls: bool) -> str:
    field = udsink_field(where)
    tls = conn.tls
    if tls is None:
        return f"{field}: {reason}"
    if _CLIENT_CERT_REFUSED.search(reason):
        if tls.cert_file is None:
            return (
                f"the brokers want a client certificate (mutual TLS) and {field}.tls has "
                f"no certSecret/keySecret: {reason}"
            )
        return (
            f"the brokers refused the client certificate of {tls_field(tls, where, 'cert_file')}: "
            f"{reason}"
        )
    if "certificate verify failed" in reason:
        ca = (
            tls_field(tls, where, "ca_file")
            if tls.ca_file
            else f"{field}.tls (no caCertSecret: the system's CA certificates)"
        )
        detail = tls_check(conn) if check_tls else None
        why = f" ({detail})" if detail else ""
        return f"the brokers' certificate does not verify against {ca}{why}: {reason}"
    return f"{field}.tls: {reason}"


__all__ = [
    "CONSUMER_DEFAULTS",
    "DEFAULT_DELIVERY_TIMEOUT_MS",
    "PRODUCER_DEFAULTS",
    "REFUSED_ERRORS",
    "UDSINK_FIELDS",
    "ErrorThrottle",
    "KafkaSettingsError",
    "LibrdkafkaLog",
    "Settings",
    "client_settings",
    "connection_settings",
    "consumer_settings",
    "explain_failure",
    "producer_settings",
    "read_secret_file",
    "redacted",
    "refuse_owned_keys",
    "sasl_field",
    "secret_text",
    "security_protocol",
    "speaks_tls",
    "tls_check",
    "tls_field",
    "udsink_field",
]
