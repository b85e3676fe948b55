"""What `udsink replay` and `udsink offsets` share: how they reach Kafka and read their input.

Both are day-two commands run by a person against a live cluster's Kafka. They take the same
connection flags (`--brokers`, a UDSink file with `-f`, librdkafka settings with `-X` or
`--command-config`), refuse bad input the same way (exit 2, naming the flag and the value),
and parse timestamps the same way. One module so that the two commands cannot drift apart.

A UDSink file gives brokers, topics, the consumer group and how to connect: its TLS and SASL
fields, whose Secret keys come from `--secret` / `--secrets-dir` here (udsink_cli.local_secrets),
built into librdkafka settings by the data plane's own code. Without a file, `-X` /
`--command-config` give librdkafka settings directly. Every connection is checked first
(`check_connection`): brokers that refuse the client (credentials, certificates, protocol) end
the command at once with the field and Secret key to fix and librdkafka's reason; brokers that
do not answer end it after TIMEOUT_S.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from udsink_cli.local_secrets import LocalSecretError, LocalSecrets, add_secret_args

if TYPE_CHECKING:
    from udsink_operator.api import UDSink

    from sink_runtime.config import KafkaConnection

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# Settings these commands choose themselves; a -X for them would silently change what they do.
OWNED_SETTINGS = frozenset({"bootstrap.servers", "metadata.broker.list", "group.id"})
TIMEOUT_S = 15.0  # one admin request or metadata lookup
# How often the connection check asks the brokers again and looks at librdkafka's errors.
CHECK_SLICE_S = 0.5
# A plaintext connection without an answer for this long: is the listener a TLS one?
TLS_GUESS_AFTER_S = 1.0
# librdkafka's own log lines (a broker briefly unreachable, ...) would interleave with the
# plan and the progress line; our errors say what went wrong, so its lines are dropped.
_QUIET = logging.getLogger("udsink.cli.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class CliError(Exception):
    """One message for the person at the terminal, and the exit code that goes with it."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def add_connection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument(
        "-f",
        "--filename",
        "--file",
        dest="filename",
        metavar="FILE",
        help="a UDSink YAML file ('-' = standard input): brokers, topics and consumer group",
    )
    g.add_argument("--brokers", help="bootstrap brokers, host:port[,host:port] (overrides -f)")
    g.add_argument(
        "-X",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka setting (TLS, SASL: security.protocol=SSL, ssl.ca.location=...); "
        "repeatable",
    )
    g.add_argument(
        "--command-config",
        type=Path,
        metavar="FILE",
        help="librdkafka settings as KEY=VALUE lines (# comments), e.g. SASL credentials kept "
        "out of the process list",
    )
    add_secret_args(g)


@dataclass(frozen=True)
class Connection:
    settings: dict[str, Any]  # librdkafka settings without group.id
    udsink: UDSink | None
    # The UDSink's source connection with its Secret keys laid out locally (None: no file).
    kafka: KafkaConnection | None = None

    @property
    def brokers(self) -> str:
        return str(self.settings["bootstrap.servers"])


def _parse_setting(text: str, where: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CliError(f"{where}: {text!r} is not KEY=VALUE", EXIT_USAGE)
    if key in OWNED_SETTINGS:
        hint = "--brokers" if key != "group.id" else "the command's own flags"
        raise CliError(f"{where}: {key} is set by udsink; use {hint}", EXIT_USAGE)
    return key, value.strip()


def _settings(args: argparse.Namespace) -> dict[str, str]:
    out: dict[str, str] = {}
    if args.command_config is not None:
        path: Path = args.command_config
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise CliError(f"--command-config {path}: {err.strerror}", EXIT_USAGE) from None
        for n, line in enumerate(lines, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                key, value = _parse_setting(line, f"--command-config {path} line {n}")
                out[key] = value
    for text in args.settings:
        key, value = _parse_setting(text, "-X")
        out[key] = value
    return out


def _load(filename: str) -> UDSink:
    # Imported here: the file loader lives with `udsink run` (one home for its rules).
    from udsink_cli.manifests import InputError, load_udsink

    try:
        return load_udsink(filename)
    except InputError as err:
        raise CliError(str(err), EXIT_USAGE) from None


def connect(args: argparse.Namespace) -> Connection:
    """The librdkafka settings from the flags, checked against the brokers; CliError naming
    what is wrong (exit 2 for the flags and the file, 1 for the brokers' refusal)."""
    udsink = _load(args.filename) if args.filename else None
    brokers: str | None = args.brokers
    kafka_spec = udsink.spec.source.kafka if udsink is not None else None
    if brokers is None and udsink is not None:
        if kafka_spec is None:
            raise CliError(
                f"{args.filename}: spec.source is not kafka (no brokers to use); give --brokers",
                EXIT_USAGE,
            )
        brokers = ",".join(kafka_spec.brokers)
    if not brokers or not brokers.strip():
        raise CliError("give --brokers host:port, or a UDSink file with -f", EXIT_USAGE)
    settings: dict[str, Any] = {"bootstrap.servers": brokers.strip()}
    kafka: KafkaConnection | None = None
    if udsink is not None and kafka_spec is not None:
        kafka = _local_source(args, udsink, brokers.strip())
        from sink_runtime.dataplane.kafka_settings import KafkaSettingsError, connection_settings

        try:
            settings = dict(connection_settings(kafka, "source"))
        except KafkaSettingsError as err:
            raise CliError(str(err), EXIT_USAGE) from None
    settings |= _settings(args)  # -X and --command-config come last: they win
    settings["logger"] = _QUIET
    conn = Connection(settings=settings, udsink=udsink, kafka=kafka)
    problem = check_connection(settings, kafka, "source", TIMEOUT_S)
    if problem is not None:
        raise CliError(problem)
    return conn


def _local_source(args: argparse.Namespace, udsink: UDSink, brokers: str) -> KafkaConnection:
    """The UDSink's source connection as the operator builds it, its Secret keys laid out
    from --secret/--secrets-dir in a private directory that lives as long as the command."""
    from udsink_operator.build import build_runtime_config

    from sink_runtime.config import revised

    source = build_runtime_config(udsink).source
    assert source.type == "kafka"  # the caller checked spec.source.kafka
    source = revised(source, brokers=[b.strip() for b in brokers.split(",")])
    root = Path(tempfile.mkdtemp(prefix="udsink-secrets-"))
    _PRIVATE_DIRS.append(root)
    try:
        return LocalSecrets.from_args(args).localize(source, "source", root)
    except LocalSecretError as err:
        raise CliError(f"{args.filename}: {err}", EXIT_USAGE) from None


_PRIVATE_DIRS: list[Path] = []


def remove_private_dirs() -> None:
    """Remove what `connect` laid out (the commands call it on their way out)."""
    import shutil

    while _PRIVATE_DIRS:
        shutil.rmtree(_PRIVATE_DIRS.pop(), ignore_errors=True)


def check_connection(
    settings: Mapping[str, Any], kafka: KafkaConnection | None, where: str, timeout_s: float
) -> str | None:
    """None once a broker answers with metadata; else what is wrong, as soon as librdkafka's
    errors show that the brokers refuse this client (credentials, certificates, protocol:
    `kafka_settings.explain_failure`), or after `timeout_s` without an answer."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from sink_runtime.dataplane.kafka_settings import (
        REFUSED_ERRORS,
        explain_failure,
        speaks_tls,
        udsink_field,
    )

    errors: list[tuple[str, str]] = []

    def on_error(err: Any) -> None:
        errors.append((err.name(), err.str()))

    config: dict[str, Any] = {**settings, "error_cb": on_error, "logger": _QUIET}
    admin = AdminClient(config)
    started = time.monotonic()
    deadline = started + timeout_s
    last = "no answer"
    guessed = False
    while True:
        left = deadline - time.monotonic()
        try:
            if admin.list_topics(timeout=max(0.05, min(CHECK_SLICE_S, left))).brokers:
                return None
        except KafkaException as err:
            last = str(err.args[0].str() if err.args else err)
        admin.poll(0)  # serves error_cb
        if kafka is not None:
            why = explain_failure(kafka, where, errors)
            if why is not None:
                return why
            if kafka.tls is None and not guessed and time.monotonic() - started > TLS_GUESS_AFTER_S:
                guessed = True
                if speaks_tls(kafka.brokers[0]):
                    return (
                        f"{udsink_field(where)}.tls is not set (plaintext), but "
                        f"{kafka.brokers[0]} is a TLS listener: set tls (with caCertSecret "
                        "unless the system's CA certificates sign the brokers')"
                    )
        else:  # settings from -X only: no UDSink field to name, librdkafka's reason alone
            refused = [text for name, text in errors if name in REFUSED_ERRORS]
            if refused:
                return f"the brokers {settings.get('bootstrap.servers')} refused: {refused[0]}"
        if time.monotonic() >= deadline:
            seen = [text for name, text in errors if name != "_ALL_BROKERS_DOWN"]
            detail = seen[-1] if seen else last
            return (
                f"cannot reach the brokers {settings.get('bootstrap.servers')} within "
                f"{timeout_s:g}s ({detail})"
            )


def parse_datetime(flag: str, value: str) -> int:
    """ISO 8601 with a time zone -> epoch milliseconds; CliError(exit 2) otherwise."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CliError(
            f"{flag} {value!r} is not an ISO 8601 date-time (e.g. 2024-05-01T12:00:00Z)",
            EXIT_USAGE,
        ) from None
    if when.tzinfo is None:
        raise CliError(
            f"{flag} {value!r} has no time zone; add one (Z for UTC, or +02:00)", EXIT_USAGE
        )
    return int(when.timestamp() * 1000)


def format_ms(ms: int) -> str:
    if ms < 0:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")


def partitions_of(admin: Any, topic: str, flag: str, brokers: str) -> list[int]:
    """The topic's partitions; CliError(exit 2) naming the flag when it does not exist."""
    from confluent_kafka import KafkaException

    try:
        # All topics, not list_topics(topic=...): asking for one topic's metadata makes a
        # broker with auto.create.topics.enable create it, and a typo must not create a topic.
        md = admin.list_topics(timeout=TIMEOUT_S)
    except KafkaException as err:
        raise CliError(f"cannot reach the brokers {brokers}: {err.args[0]}") from None
    tmd = md.topics.get(topic)
    if tmd is None or tmd.error is not None or not tmd.partitions:
        raise CliError(f"{flag} {topic}: no such topic on {brokers}", EXIT_USAGE)
    return sorted(tmd.partitions)


def check_partitions(flag: str, wanted: list[int], existing: list[int], topic: str) -> None:
    for p in wanted:
        if p not in existing:
            raise CliError(
                f"{flag} {p}: topic {topic} has partitions {existing[0]}..{existing[-1]}",
                EXIT_USAGE,
            )


def plain(mapping: Mapping[int, int]) -> dict[str, int]:
    """Partition-keyed counts as JSON-friendly string keys."""
    return {str(k): v for k, v in sorted(mapping.items())}
