"""A UDSink's Kafka Secret keys on a laptop (`--secret`, `--secrets-dir`), and the consumer
group a local run reads with: pure, no broker (the broker tests are tests/kafka)."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest
from udsink_cli.local_secrets import LocalSecretError, LocalSecrets, add_secret_args
from udsink_cli.run import EXIT_USAGE, RunError
from udsink_cli.run.plan import DEFAULT_START_FROM, RunRequest, plan_run
from udsink_operator.api import UDSink
from udsink_operator.build import build_runtime_config

from sink_runtime.config import KafkaSourceConfig
from sink_runtime.dataplane.kafka_settings import connection_settings


def udsink() -> UDSink:
    ref = {"name": "kafka-user", "key": "password"}
    return UDSink.model_validate(
        {
            "apiVersion": "udsink.dev/v1alpha1",
            "kind": "UDSink",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {
                "source": {
                    "kafka": {
                        "brokers": ["kafka:9093"],
                        "topics": ["orders"],
                        "tls": {"caCertSecret": {"name": "kafka-ca", "key": "ca.crt"}},
                        "sasl": {
                            "mechanism": "SCRAM-SHA-512",
                            "scramsha512": {
                                "userSecret": {"name": "kafka-user", "key": "username"},
                                "passwordSecret": ref,
                            },
                        },
                    }
                },
                "sink": {"log": {}},
            },
        }
    )


def secrets(*argv: str) -> LocalSecrets:
    p = argparse.ArgumentParser()
    add_secret_args(p)
    return LocalSecrets.from_args(p.parse_args(list(argv)))


def test_keys_from_a_file_the_environment_and_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    tree = tmp_path / "tree"
    (tree / "kafka-user").mkdir(parents=True)
    (tree / "kafka-user" / "username").write_text("alice\n")
    monkeypatch.setenv("KAFKA_PW", "pw-from-env")
    given = secrets(
        "--secret", f"kafka-ca/ca.crt={ca}", "--secret", "kafka-user/password=env:KAFKA_PW",
        "--secrets-dir", str(tree),
    )  # fmt: skip
    root = tmp_path / "private"
    source = build_runtime_config(udsink()).source
    assert isinstance(source, KafkaSourceConfig)
    local = given.localize(source, "source", root)
    settings = connection_settings(local, "source")
    assert settings["security.protocol"] == "SASL_SSL"
    assert Path(settings["ssl.ca.location"]).resolve() == ca.resolve()
    assert settings["sasl.username"] == "alice"
    assert settings["sasl.password"] == "pw-from-env"
    written = root / "secrets" / "udsink" / "kafka-user" / "password"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_a_key_not_given_names_field_secret_and_flag(tmp_path: Path) -> None:
    source = build_runtime_config(udsink()).source
    assert isinstance(source, KafkaSourceConfig)
    with pytest.raises(LocalSecretError) as err:
        secrets("--secret", f"kafka-ca/ca.crt={tmp_path}/absent").localize(
            source, "source", tmp_path / "p"
        )
    assert str(err.value).startswith("spec.source.kafka.tls.caCertSecret (Secret 'kafka-ca' key")
    assert "no readable file" in str(err.value)
    with pytest.raises(LocalSecretError) as err:
        secrets().localize(source, "source", tmp_path / "p")
    assert "pass --secret kafka-ca/ca.crt=FILE (or =env:VAR)" in str(err.value)
    with pytest.raises(LocalSecretError, match="is not NAME/KEY=FILE"):
        secrets("--secret", "kafka-ca=ca.pem")


def plan(tmp_path: Path, **kw: object) -> KafkaSourceConfig:
    request = RunRequest(
        file_dir=tmp_path,
        invoked_from=tmp_path,
        socket_dir=tmp_path,
        log_level="warning",
        **kw,  # type: ignore[arg-type]
    )
    p = plan_run(udsink(), request)
    assert isinstance(p.config.source, KafkaSourceConfig)
    return p.config.source


def test_a_local_run_reads_with_a_private_group_unless_told(tmp_path: Path) -> None:
    private = plan(tmp_path)
    assert private.consumer_group.startswith("udsink-run.shop.orders.")
    assert private.start_offset == DEFAULT_START_FROM == "latest"
    assert plan(tmp_path).consumer_group != private.consumer_group
    assert plan(tmp_path, start_from="earliest").start_offset == "earliest"
    joined = plan(tmp_path, join_group="shop.orders")
    assert joined.consumer_group == "shop.orders"
    with pytest.raises(RunError) as err:
        plan(tmp_path, join_group="shop.other")
    assert err.value.code == EXIT_USAGE
    assert "the UDSink's consumer group is shop.orders" in str(err.value)


@pytest.mark.parametrize("command", ["run", "replay", "offsets"])
def test_the_help_says_where_secret_keys_come_from(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from udsink_cli.main import main as udsink

    with pytest.raises(SystemExit):
        udsink([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--secret NAME/KEY=FILE" in text and "--secrets-dir DIR" in text
    if command == "run":
        assert "udsink-run.<namespace>.<name>.<random>" in text
        assert f"(default {DEFAULT_START_FROM}: only records written while it runs)" in text
        assert "--join-group GROUP joins the UDSink's own group" in text
        assert (
            "It is refused while that group has members (pause the UDSink first), unless --force"
            in text
        )
