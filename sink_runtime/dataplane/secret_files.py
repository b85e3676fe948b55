"""The Secret files the Kafka connections read, watched so a changed value is used.

librdkafka takes a SASL password and a TLS certificate or key once, when a client is made, and
keeps them for its life. The kubelet rewrites a mounted Secret's files when the Secret
changes (within its sync period, about a minute), so the data plane checks the files its
connections read every `POLL_S`; when one changed, it stops as on SIGTERM (the in-flight
batch is finished and acknowledged, nothing else is read) and exits 0, the kubelet starts
the container again, and the new process connects with the new value. Only digests of the
contents are kept, never logged; the log line names the UDSink fields and Secret keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sink_runtime.config import KafkaConnection, RuntimeConfig
from sink_runtime.dataplane.kafka_settings import sasl_field, tls_field

logger = logging.getLogger(__name__)

# How often the files are compared with what the process started with (seconds).
POLL_S = 5.0


def connection_files(config: RuntimeConfig) -> dict[str, str]:
    """Path -> the UDSink field (and Secret key) of every file a Kafka connection reads."""
    found: dict[str, str] = {}
    parts: dict[str, object] = {
        "source": config.source,
        "sink": config.sink,
        "fallback": config.fallback,
        "onSuccess": config.on_success,
        "serve": config.serve,
    }
    for where, part in parts.items():
        if not isinstance(part, KafkaConnection):
            continue
        tls, sasl = part.tls, part.sasl
        if tls is not None:
            for attr in ("ca_file", "cert_file", "key_file"):
                if getattr(tls, attr):
                    found.setdefault(getattr(tls, attr), tls_field(tls, where, attr))
        if sasl is not None:
            for attr in ("username_file", "password_file", "client_id_file", "client_secret_file"):
                if getattr(sasl, attr):
                    found.setdefault(getattr(sasl, attr), sasl_field(sasl, where, attr))
    return found


def _digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as err:
        return f"unreadable: {err.strerror or err}"


@dataclass
class SecretFileWatch:
    """The digests the process started with; `changed()` names the files that differ."""

    files: Mapping[str, str]
    started: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = {path: _digest(path) for path in self.files}

    @classmethod
    def of(cls, config: RuntimeConfig) -> SecretFileWatch | None:
        files = connection_files(config)
        return cls(files) if files else None

    def changed(self) -> list[str]:
        return [
            self.files[path] for path, before in self.started.items() if _digest(path) != before
        ]

    async def stop_on_change(self, stop: Callable[[], None], poll_s: float = POLL_S) -> list[str]:
        """Wait until a file changed, log which, call `stop`; the fields that changed."""
        while True:
            changed = self.changed()
            if changed:
                break
            await asyncio.sleep(poll_s)
        logger.warning(
            "secret files changed: %s; stopping after the in-flight batch so the container "
            "starts again with the new values",
            ", ".join(changed),
        )
        stop()
        return changed
