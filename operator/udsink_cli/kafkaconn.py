"""What `udsink replay` and `udsink offsets` share: how they reach Kafka and read their input.

Both are day-two commands run by a person against a live cluster's Kafka. They take the same
connection flags (`--brokers`, a UDSink file with `-f`, librdkafka settings with `-X` or
`--command-config`), refuse bad input the same way (exit 2, naming the flag and the value),
and parse timestamps the same way. One module so that the two commands cannot drift apart.

A UDSink file gives brokers, topics and the consumer group. Its TLS and SASL settings name
Kubernetes Secrets, which a laptop cannot read: those settings come from `-X` /
`--command-config` (librdkafka names, e.g. `security.protocol=SASL_SSL`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from udsink_operator.api import UDSink

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# Settings these commands choose themselves; a -X for them would silently change what they do.
OWNED_SETTINGS = frozenset({"bootstrap.servers", "metadata.broker.list", "group.id"})
TIMEOUT_S = 15.0  # one admin request or metadata lookup
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


@dataclass(frozen=True)
class Connection:
    settings: dict[str, Any]  # librdkafka settings without group.id
    udsink: UDSink | None

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
    """The librdkafka settings from the flags; CliError(exit 2) naming what is wrong."""
    udsink = _load(args.filename) if args.filename else None
    brokers: str | None = args.brokers
    if brokers is None and udsink is not None:
        kafka = udsink.spec.source.kafka
        if kafka is None:
            raise CliError(
                f"{args.filename}: spec.source is not kafka (no brokers to use); give --brokers",
                EXIT_USAGE,
            )
        brokers = ",".join(kafka.brokers)
    if not brokers or not brokers.strip():
        raise CliError("give --brokers host:port, or a UDSink file with -f", EXIT_USAGE)
    settings: dict[str, Any] = {"bootstrap.servers": brokers.strip(), **_settings(args)}
    kafka = udsink.spec.source.kafka if udsink is not None else None
    secured = kafka is not None and (kafka.tls is not None or kafka.sasl is not None)
    if secured and "security.protocol" not in settings:
        # A plaintext client against a TLS listener only times out: say why up front.
        print(
            f"note: {args.filename} connects with TLS/SASL from Secrets, which udsink does not "
            "read here; give them with -X or --command-config (security.protocol=...)",
            file=sys.stderr,
        )
    settings["logger"] = _QUIET
    return Connection(settings=settings, udsink=udsink)


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
