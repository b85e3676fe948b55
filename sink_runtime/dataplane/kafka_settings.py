"""librdkafka settings from the RuntimeConfig: connection, security, and the user's overrides.

One place that turns a KafkaConnection (brokers, TLS files, SASL files) into the flat
librdkafka map, so the Kafka source and the Kafka sink connect identically, and one place
that enforces which keys udsink owns. Secret values are read from their mounted files here,
at start-up, and never appear in an error, a log line or `redacted()` output.

Layering of a client's settings (later wins): our defaults, the user's `config` map, then the
settings we own. An owned key in the user's map is refused outright (as the operator does),
with an error naming the key and the field to use instead.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
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

Settings: TypeAlias = dict[str, str]

_SECRET_KEY = re.compile(r"password|secret|\.pem$|jaas|oauthbearer\.config", re.IGNORECASE)
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
                raise KafkaSettingsError(f"{where}.tls.{_camel(attr)}: no such file {path}")
            out[key] = path
    if tls.insecure_skip_verify:
        out["enable.ssl.certificate.verification"] = "false"
        out["ssl.endpoint.identification.algorithm"] = "none"
    return out


def sasl_settings(sasl: SaslFiles, where: str) -> Settings:
    field = f"{where}.sasl"
    out: Settings = {"sasl.mechanism": sasl.mechanism}
    if sasl.mechanism == "OAUTHBEARER":
        # OIDC client credentials, fetched and refreshed by librdkafka itself.
        assert sasl.token_endpoint and sasl.client_id_file and sasl.client_secret_file
        out["sasl.oauthbearer.method"] = "oidc"
        out["sasl.oauthbearer.token.endpoint.url"] = sasl.token_endpoint
        out["sasl.oauthbearer.client.id"] = read_secret_file(
            sasl.client_id_file, f"{field}.clientIdFile"
        )
        out["sasl.oauthbearer.client.secret"] = read_secret_file(
            sasl.client_secret_file, f"{field}.clientSecretFile"
        )
        if sasl.scope:
            out["sasl.oauthbearer.scope"] = sasl.scope
        return out
    assert sasl.username_file and sasl.password_file
    out["sasl.username"] = read_secret_file(sasl.username_file, f"{field}.usernameFile")
    out["sasl.password"] = read_secret_file(sasl.password_file, f"{field}.passwordFile")
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


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


__all__ = [
    "CONSUMER_DEFAULTS",
    "DEFAULT_DELIVERY_TIMEOUT_MS",
    "PRODUCER_DEFAULTS",
    "ErrorThrottle",
    "KafkaSettingsError",
    "LibrdkafkaLog",
    "Settings",
    "client_settings",
    "connection_settings",
    "consumer_settings",
    "producer_settings",
    "read_secret_file",
    "redacted",
    "refuse_owned_keys",
    "security_protocol",
]
