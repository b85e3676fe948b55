"""The data plane notices a changed Secret file of a Kafka connection and stops for a restart."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from sink_runtime.config import (
    KafkaSinkConfig,
    KafkaSourceConfig,
    LogSinkConfig,
    RuntimeConfig,
    SaslFiles,
    TlsFiles,
)
from sink_runtime.dataplane.secret_files import SecretFileWatch, connection_files


def mounted(root: Path, secret: str, key: str, text: str) -> str:
    """A Secret key laid out as the operator mounts it (<root>/secrets/udsink/<secret>/<key>)."""
    path = root / "secrets" / "udsink" / secret / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def secured_config(root: Path) -> RuntimeConfig:
    ca = mounted(root, "kafka-ca", "ca.crt", "CA")
    sasl = SaslFiles(
        mechanism="SCRAM-SHA-512",
        username_file=mounted(root, "kafka-user", "username", "alice"),
        password_file=mounted(root, "kafka-user", "password", "first-password"),
    )
    client = TlsFiles(
        ca_file=ca,
        cert_file=mounted(root, "kafka-client", "tls.crt", "CERT"),
        key_file=mounted(root, "kafka-client", "tls.key", "KEY"),
    )
    return RuntimeConfig(
        source=KafkaSourceConfig(
            brokers=["b:9093"],
            topics=["t"],
            consumer_group="g",
            tls=TlsFiles(ca_file=ca),
            sasl=sasl,
        ),
        sink=LogSinkConfig(),
        fallback=KafkaSinkConfig(brokers=["b:9094"], topic="dlq", tls=client),
    )


def test_every_file_is_named_by_its_field_and_secret_key(tmp_path: Path) -> None:
    found = sorted(connection_files(secured_config(tmp_path)).values())
    assert found == [
        "spec.sink.fallback.kafka.tls.certSecret (Secret 'kafka-client' key 'tls.crt')",
        "spec.sink.fallback.kafka.tls.keySecret (Secret 'kafka-client' key 'tls.key')",
        "spec.source.kafka.sasl.scramsha512.passwordSecret (Secret 'kafka-user' key 'password')",
        "spec.source.kafka.sasl.scramsha512.userSecret (Secret 'kafka-user' key 'username')",
        "spec.source.kafka.tls.caCertSecret (Secret 'kafka-ca' key 'ca.crt')",
    ]


def test_no_watch_without_secret_files() -> None:
    config = RuntimeConfig(
        source=KafkaSourceConfig(brokers=["b:9092"], topics=["t"], consumer_group="g"),
        sink=LogSinkConfig(),
    )
    assert SecretFileWatch.of(config) is None


async def test_a_changed_password_stops_the_data_plane_naming_the_key_not_the_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watch = SecretFileWatch.of(secured_config(tmp_path))
    assert watch is not None and watch.changed() == []
    stopped = asyncio.Event()
    waiting = asyncio.ensure_future(watch.stop_on_change(stopped.set, poll_s=0.01))
    await asyncio.sleep(0.05)
    assert not stopped.is_set()
    # The kubelet swaps the mounted files for the Secret's new ones.
    password = tmp_path / "secrets" / "udsink" / "kafka-user" / "password"
    password.write_text("second-password")
    with caplog.at_level(logging.WARNING):
        changed = await asyncio.wait_for(waiting, timeout=10)
    assert stopped.is_set()
    field = "spec.source.kafka.sasl.scramsha512.passwordSecret (Secret 'kafka-user' key 'password')"
    assert changed == [field]
    assert field in caplog.text
    assert "password" in caplog.text and "second-password" not in caplog.text
    assert "first-password" not in caplog.text
