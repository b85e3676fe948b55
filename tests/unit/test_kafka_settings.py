"""librdkafka settings from the RuntimeConfig: security mapping, owned keys, secret handling.

The resulting maps are also handed to real librdkafka clients (constructed, not connected),
so a misspelt or invalid property name fails here.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from sink_runtime.config import KafkaSinkConfig, KafkaSourceConfig, SaslFiles, TlsFiles
from sink_runtime.config.constants import KAFKA_OWNED_CONFIG_KEYS
from sink_runtime.dataplane.kafka_settings import (
    KafkaSettingsError,
    client_settings,
    consumer_settings,
    explain_failure,
    producer_settings,
    redacted,
    secret_text,
)

_quiet = logging.getLogger("tests.unit.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def source(**kw: Any) -> KafkaSourceConfig:
    return KafkaSourceConfig(
        brokers=["b1:9092", "b2:9093"], topics=["in"], consumer_group="shop.g", **kw
    )


def sink(**kw: Any) -> KafkaSinkConfig:
    return KafkaSinkConfig(brokers=["b1:9092"], topic="out", **kw)


@pytest.fixture
def secrets(tmp_path: Path) -> dict[str, str]:
    files = {
        "user": "alice\n",
        "password": "s3cr3t-pw\r\n",
        "client_id": "udsink-client",
        "client_secret": "oidc-s3cr3t\n",
        "ca": "-----BEGIN CERTIFICATE-----\n",
        "cert": "-----BEGIN CERTIFICATE-----\n",
        "key": "-----BEGIN PRIVATE KEY-----\n",
    }
    out = {}
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        out[name] = str(path)
    return out


def construct(settings: dict[str, Any], kind: type) -> None:
    """Real librdkafka validates every property name and value at construction."""
    client = kind({**client_settings(settings, "sink"), "logger": _quiet})
    if kind is Consumer:
        client.close()
    else:
        client.flush(0)


def test_plain_consumer_owns_commits_and_group() -> None:
    s = consumer_settings(source(start_offset="latest", config={"fetch.min.bytes": "1"}))
    assert s["bootstrap.servers"] == "b1:9092,b2:9093"
    assert s["security.protocol"] == "PLAINTEXT"
    assert s["group.id"] == "shop.g"
    assert s["enable.auto.commit"] == "false"
    assert s["enable.auto.offset.store"] == "false"
    assert s["auto.offset.reset"] == "latest"
    assert s["fetch.min.bytes"] == "1"
    assert not any(k.startswith(("ssl.", "sasl.")) for k in s)
    construct(s, Consumer)


def test_producer_is_idempotent_with_bounded_delivery() -> None:
    s = producer_settings(sink(), delivery_timeout_ms=12_000)
    assert s["enable.idempotence"] == "true"
    assert s["acks"] == "all"
    assert s["message.timeout.ms"] == "12000"
    assert s["partitioner"] == "murmur2_random"
    construct(s, Producer)
    # Defaults (not owned) may be changed by the user's map.
    s = producer_settings(sink(config={"message.timeout.ms": "5000", "linger.ms": "0"}))
    assert s["message.timeout.ms"] == "5000"
    assert s["linger.ms"] == "0"


def test_keys_the_python_client_reads_become_bools_or_are_refused() -> None:
    # Only failures are reported by default; a user's "false" turns every report back on.
    s = client_settings(producer_settings(sink()), "sink")
    assert s["delivery.report.only.error"] is True
    user = sink(config={"delivery.report.only.error": "False"})
    s = client_settings(producer_settings(user), "fallback")
    assert s["delivery.report.only.error"] is False
    construct(producer_settings(user), Producer)
    bad = sink(config={"delivery.report.only.error": "yes"})
    with pytest.raises(KafkaSettingsError) as err:
        client_settings(producer_settings(bad), "fallback")
    assert str(err.value) == (
        "fallback.config: librdkafka key 'delivery.report.only.error' is 'yes'; "
        "accepted: true, false"
    )


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("bootstrap.servers", "set brokers"),
        ("group.id", "set consumerGroup"),
        ("auto.offset.reset", "set startOffset"),
        ("enable.auto.commit", ""),
        ("security.protocol", "set tls and sasl"),
        ("sasl.password", "set sasl"),
        ("ssl.ca.location", "set tls"),
        ("transactional.id", ""),
        ("enable.idempotence", ""),
        ("acks", ""),
    ],
)
def test_owned_keys_are_refused_naming_the_key(key: str, hint: str) -> None:
    with pytest.raises(KafkaSettingsError) as err:
        consumer_settings(source(config={"fetch.min.bytes": "1", key: "x"}))
    msg = str(err.value)
    assert msg.startswith(f"source.config: librdkafka key '{key}' is set by udsink")
    assert hint in msg
    with pytest.raises(KafkaSettingsError, match=rf"fallback\.config: librdkafka key '{key}'"):
        producer_settings(sink(config={key: "x"}), where="fallback")


def test_every_owned_key_is_refused() -> None:
    for key in KAFKA_OWNED_CONFIG_KEYS:
        with pytest.raises(KafkaSettingsError, match=key):
            producer_settings(sink(config={key: "1"}))


def test_tls_files_and_protocol(secrets: dict[str, str]) -> None:
    tls = TlsFiles(ca_file=secrets["ca"], cert_file=secrets["cert"], key_file=secrets["key"])
    s = consumer_settings(source(tls=tls))
    assert s["security.protocol"] == "SSL"
    assert s["ssl.ca.location"] == secrets["ca"]
    assert s["ssl.certificate.location"] == secrets["cert"]
    assert s["ssl.key.location"] == secrets["key"]
    assert "enable.ssl.certificate.verification" not in s


def test_tls_insecure_skip_verify() -> None:
    s = producer_settings(sink(tls=TlsFiles(insecure_skip_verify=True)))
    assert s["security.protocol"] == "SSL"
    assert s["enable.ssl.certificate.verification"] == "false"
    assert s["ssl.endpoint.identification.algorithm"] == "none"
    construct(s, Producer)


def test_missing_tls_file_names_field_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(KafkaSettingsError) as err:
        consumer_settings(source(tls=TlsFiles(ca_file=str(missing))))
    assert str(err.value) == (
        f"spec.source.kafka.tls.caCertSecret (file {missing}): no such file {missing}"
    )


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_user_password_from_files(mechanism: str, secrets: dict[str, str]) -> None:
    sasl = SaslFiles(
        mechanism=mechanism, username_file=secrets["user"], password_file=secrets["password"]
    )
    s = consumer_settings(source(sasl=sasl))
    assert s["security.protocol"] == "SASL_PLAINTEXT"
    assert s["sasl.mechanism"] == mechanism
    # Trailing line breaks of mounted files are not part of the credential.
    assert s["sasl.username"] == "alice"
    assert s["sasl.password"] == "s3cr3t-pw"
    construct(s, Consumer)

    with_tls = producer_settings(sink(sasl=sasl, tls=TlsFiles(ca_file=secrets["ca"])))
    assert with_tls["security.protocol"] == "SASL_SSL"


def test_oauthbearer_uses_librdkafka_oidc(secrets: dict[str, str]) -> None:
    sasl = SaslFiles(
        mechanism="OAUTHBEARER",
        token_endpoint="https://idp.example/token",
        client_id_file=secrets["client_id"],
        client_secret_file=secrets["client_secret"],
        scope="kafka",
    )
    s = producer_settings(sink(sasl=sasl, tls=TlsFiles()))
    assert s["security.protocol"] == "SASL_SSL"
    assert s["sasl.mechanism"] == "OAUTHBEARER"
    assert s["sasl.oauthbearer.method"] == "oidc"
    assert s["sasl.oauthbearer.token.endpoint.url"] == "https://idp.example/token"
    assert s["sasl.oauthbearer.client.id"] == "udsink-client"
    assert s["sasl.oauthbearer.client.secret"] == "oidc-s3cr3t"
    assert s["sasl.oauthbearer.scope"] == "kafka"


def test_unreadable_secret_names_field_and_path_not_value(
    tmp_path: Path, secrets: dict[str, str]
) -> None:
    missing = tmp_path / "absent"
    sasl = SaslFiles(
        mechanism="SCRAM-SHA-512", username_file=secrets["user"], password_file=str(missing)
    )
    with pytest.raises(KafkaSettingsError) as err:
        producer_settings(sink(sasl=sasl), where="onSuccess")
    msg = str(err.value)
    assert msg.startswith(
        f"spec.sink.onSuccess.kafka.sasl.scramsha512.passwordSecret (file {missing}): "
        f"cannot read secret file {missing}"
    )
    assert "No such file" in msg
    assert "alice" not in msg


def test_redacted_hides_secret_values(secrets: dict[str, str]) -> None:
    sasl = SaslFiles(
        mechanism="PLAIN", username_file=secrets["user"], password_file=secrets["password"]
    )
    s: dict[str, Any] = dict(consumer_settings(source(sasl=sasl)))
    s["error_cb"] = print
    shown = redacted(s)
    assert shown["sasl.password"] == "<redacted>"
    assert "s3cr3t-pw" not in repr(shown)
    assert shown["sasl.username"] == "<redacted>"  # a Secret's value too
    assert "alice" not in repr(shown)
    assert shown["error_cb"] == "<print>"

    oidc = SaslFiles(
        mechanism="OAUTHBEARER",
        token_endpoint="https://idp.example/token",
        client_id_file=secrets["client_id"],
        client_secret_file=secrets["client_secret"],
    )
    assert "oidc-s3cr3t" not in repr(redacted(producer_settings(sink(sasl=oidc))))


MOUNTED = "/var/run/secrets/udsink"


def mounted_sasl(mechanism: str = "SCRAM-SHA-512") -> SaslFiles:
    return SaslFiles(
        mechanism=mechanism,
        username_file=f"{MOUNTED}/kafka-user/username",
        password_file=f"{MOUNTED}/kafka-user/password",
    )


def test_secret_files_are_named_by_their_secret_and_key(tmp_path: Path) -> None:
    assert secret_text(f"{MOUNTED}/kafka-ca/ca.crt") == "Secret 'kafka-ca' key 'ca.crt'"
    local = tmp_path / "secrets" / "udsink" / "kafka-user" / "password"
    assert secret_text(str(local)) == "Secret 'kafka-user' key 'password'"
    assert secret_text("/etc/ssl/ca.pem") == "file /etc/ssl/ca.pem"


def test_refused_credentials_name_both_secret_keys_never_values() -> None:
    conn = source(sasl=mounted_sasl(), tls=TlsFiles(ca_file=f"{MOUNTED}/kafka-ca/ca.crt"))
    reason = (
        "sasl_ssl://b1:9092/bootstrap: SASL authentication error: Authentication failed "
        "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
    )
    why = explain_failure(conn, "source", [("_AUTHENTICATION", reason)])
    assert why == (
        "the brokers refused the SCRAM-SHA-512 credentials of "
        "spec.source.kafka.sasl.scramsha512.userSecret (Secret 'kafka-user' key 'username') and "
        "spec.source.kafka.sasl.scramsha512.passwordSecret (Secret 'kafka-user' key 'password'): "
        "SASL authentication error: Authentication failed during authentication due to invalid "
        "credentials with SASL mechanism SCRAM-SHA-512"
    )


def test_tls_refusals_name_the_tls_field() -> None:
    ca = TlsFiles(ca_file=f"{MOUNTED}/kafka-ca/ca.crt")
    plaintext = (
        "ssl://b1:9092/bootstrap: SSL handshake failed: Disconnected: SSL connection closed by "
        "peer: connecting to a PLAINTEXT broker listener? (after 8ms in state SSL_HANDSHAKE)"
    )
    why = explain_failure(sink(tls=ca), "fallback", [("_TRANSPORT", plaintext)])
    assert why is not None
    assert why.startswith("spec.sink.fallback.kafka.tls is set, but b1:9092 is a plaintext")
    no_cert = (
        "ssl://b1:9092/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls alert "
        "bad certificate: SSL alert number 42 (after 25ms in state APIVERSION_QUERY)"
    )
    why = explain_failure(source(tls=ca), "source", [("_TRANSPORT", no_cert)])
    assert why is not None
    assert "spec.source.kafka.tls has no certSecret/keySecret" in why
    verify = (
        "ssl://b1:9092/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
        "certificate verify failed: broker certificate could not be verified"
    )
    why = explain_failure(source(tls=ca), "source", [("_SSL", verify)], check_tls=False)
    assert why is not None
    assert why.startswith(
        "the brokers' certificate does not verify against spec.source.kafka.tls.caCertSecret "
        "(Secret 'kafka-ca' key 'ca.crt')"
    )


def test_an_unhinted_handshake_close_is_settled_by_asking_the_listener() -> None:
    """librdkafka hints "connecting to a PLAINTEXT listener?" on only some closes; without the
    hint, a listener that drops a TLS handshake (as Kafka's plaintext listener drops a
    ClientHello) is named plaintext, and one that cannot be asked stays a TLS failure."""
    closed = "Disconnected: SSL connection closed by peer (after 2ms in state SSL_HANDSHAKE)"
    ca = TlsFiles(ca_file=f"{MOUNTED}/kafka-ca/ca.crt")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        listener.settimeout(0.05)
        stop = threading.Event()

        def drop_every_connection() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                conn.close()

        dropper = threading.Thread(target=drop_every_connection)
        dropper.start()
        conn = KafkaSourceConfig(brokers=[address], topics=["in"], consumer_group="g", tls=ca)
        why = explain_failure(conn, "source", [("_TRANSPORT", closed)])
        stop.set()
        dropper.join()
        assert why == (
            f"spec.source.kafka.tls is set, but {address} is a plaintext listener (no TLS): "
            f"{closed}"
        )
    # The listener is gone: nothing says plaintext, so the TLS field and the reason stand.
    why = explain_failure(conn, "source", [("_TRANSPORT", closed)])
    assert why == f"spec.source.kafka.tls: {closed}"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("_ALL_BROKERS_DOWN", "1/1 brokers are down"),
        (
            "_TRANSPORT",
            "b1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused",
        ),
    ],
)
def test_brokers_that_are_away_are_not_a_refusal(name: str, text: str) -> None:
    assert explain_failure(source(sasl=mounted_sasl()), "source", [(name, text)]) is None
