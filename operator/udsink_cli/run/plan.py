"""What a local run will run: the UDSink file and the flags, turned into a Plan.

Pure apart from reading files: the RuntimeConfig the operator would build, moved onto local
sockets and a local source, and each user-defined sink's local command, image and env.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from udsink_operator.api import UDSink
from udsink_operator.build import build_runtime_config

from sink_runtime.config import (
    FileSourceConfig,
    GeneratorSourceConfig,
    KafkaConnection,
    KafkaSinkConfig,
    KafkaSourceConfig,
    ObservabilityConfig,
    RuntimeConfig,
    SinkConfig,
    UserSinkConfig,
    constants,
    revised,
)
from sink_runtime.config.errors import FALLBACK_NEEDED
from udsink_cli.isolation import ImageSink, image_sinks
from udsink_cli.local_secrets import LocalSecretError, LocalSecrets
from udsink_cli.run import DRAIN_S, EXIT_USAGE, RunError
from udsink_cli.sidecars import ROLES

ANNOTATION_PREFIX = "local.udsink.dev/"
COMMAND_ANNOTATIONS: Mapping[constants.ContainerType, str] = {
    constants.CONTAINER_UDSINK: ANNOTATION_PREFIX + "sink-command",
    constants.CONTAINER_FALLBACK: ANNOTATION_PREFIX + "fallback-command",
    constants.CONTAINER_ON_SUCCESS: ANNOTATION_PREFIX + "on-success-command",
}
FLAGS: Mapping[constants.ContainerType, str] = {
    constants.CONTAINER_UDSINK: "--sink-cmd",
    constants.CONTAINER_FALLBACK: "--fallback-cmd",
    constants.CONTAINER_ON_SUCCESS: "--on-success-cmd",
}
# Where a local run's private consumer group starts (--from): only records written while it
# runs, so trying a sink against a shared topic never pushes its whole history through it.
DEFAULT_START_FROM = "latest"
PRIVATE_GROUP_PREFIX = "udsink-run"


def private_group(udsink: UDSink) -> str:
    """A consumer group of this run alone, named after the UDSink (offsets shows it)."""
    meta = udsink.metadata
    return f"{PRIVATE_GROUP_PREFIX}.{meta.namespace}.{meta.name}.{secrets.token_hex(4)}"


def split_command(text: str) -> list[str]:
    """A command line as a shell splits it into words (no pipes, no variables, no `~`)."""
    return shlex.split(text)


def resolve_program(argv: list[str], path: str | None) -> list[str]:
    """`argv` with its program found as the user's shell finds it: a name without a slash is
    looked up in `path` (the PATH of the environment `udsink run` was started from, so an
    activated venv's `python` is that venv's); a path is left as it is, relative to the
    directory the command runs from. A name found nowhere is left for the start to report."""
    if not argv or "/" in argv[0]:
        return argv
    found = shutil.which(argv[0], path=path)
    return argv if found is None else [found, *argv[1:]]


def sink_commands(
    udsink: UDSink,
    overrides: Mapping[constants.ContainerType, str | None],
    path: str | None = None,
) -> dict[constants.ContainerType, list[str]]:
    """The local command of each user-defined sink the config uses, its program resolved
    with `path` (default: this process's PATH)."""
    annotations = udsink.metadata.annotations
    search = os.environ.get("PATH", os.defpath) if path is None else path
    out: dict[constants.ContainerType, list[str]] = {}
    for ctype, annotation in COMMAND_ANNOTATIONS.items():
        text = overrides.get(ctype) or annotations.get(annotation)
        if text:
            out[ctype] = resolve_program(split_command(text), search)
    return out


def sink_envs(
    udsink: UDSink, container_types: Sequence[constants.ContainerType]
) -> tuple[dict[constants.ContainerType, dict[str, str]], list[str]]:
    """The literal env values of each sink's container, for its local command, and notes on
    the references that only a cluster resolves (read as the image runner reads them)."""
    envs: dict[constants.ContainerType, dict[str, str]] = {}
    notes: list[str] = []
    for ctype, container in image_sinks(udsink, container_types, None).items():
        envs[ctype] = container.env
        if container.unresolved_env:
            notes.append(
                f"the {ROLES[ctype]} sink's env {', '.join(container.unresolved_env)} comes "
                "from references (Secrets, ConfigMaps, fields) that exist only in a cluster; "
                "locally it is taken from your environment if set there"
            )
    return envs, notes


def _ud_types(config: RuntimeConfig) -> Iterator[constants.ContainerType]:
    for sink in (config.sink, config.fallback, config.on_success):
        if isinstance(sink, UserSinkConfig):
            yield sink.container_type


# How long a local sink may take to serve: it is a process on this machine (an image is
# pulled before it starts), so the UDSink's startupTimeout, sized for pod scheduling, is not.
LOCAL_STARTUP_TIMEOUT_MS = 30_000


def _relocate(sink: SinkConfig | None, socket_dir: Path) -> SinkConfig | None:
    if isinstance(sink, UserSinkConfig):
        local = UserSinkConfig.for_container(sink.container_type, socket_dir=str(socket_dir))
        return revised(
            sink,
            socket_path=local.socket_path,
            server_info_path=local.server_info_path,
            startup_timeout_ms=LOCAL_STARTUP_TIMEOUT_MS,
        )
    return sink


@dataclass
class Plan:
    config: RuntimeConfig
    commands: dict[constants.ContainerType, list[str]]
    cwd: Path  # where annotation commands run
    notes: list[str] = field(default_factory=list)
    # Sinks whose command came from a flag run where the flag was typed instead.
    cwds: dict[constants.ContainerType, Path] = field(default_factory=dict)
    # Sinks with no local command, run from their image.
    images: dict[constants.ContainerType, ImageSink] = field(default_factory=dict)
    envs: dict[constants.ContainerType, dict[str, str]] = field(default_factory=dict)
    # The source ends by itself (a file, a generator with a count): the run must end too.
    finite: bool = False

    def cwd_of(self, ctype: constants.ContainerType) -> Path:
        return self.cwds.get(ctype, self.cwd)


@dataclass(frozen=True)
class RunRequest:
    """What the command line asks of a local run, beside the UDSink itself."""

    file_dir: Path  # the UDSink file's directory: where annotation commands run
    invoked_from: Path  # where the user typed the command: where flag commands run
    socket_dir: Path
    overrides: Mapping[constants.ContainerType, str | None] = field(default_factory=dict)
    input_file: Path | None = None
    count: int | None = None
    rate: int | None = None
    log_level: str = "info"
    metrics_port: int | None = None
    sink_image: str | None = None
    on_failure: str | None = None
    local_secrets: LocalSecrets | None = None
    secrets_root: Path | None = None
    start_from: str | None = None
    join_group: str | None = None


def plan_run(udsink: UDSink, request: RunRequest) -> Plan:
    """The data plane's config for this machine and how each user-defined sink starts."""
    config = _local_config(udsink, request)
    used = set(_ud_types(config))
    commands = sink_commands(udsink, request.overrides)
    if request.sink_image and constants.CONTAINER_UDSINK in commands:
        if request.overrides.get(constants.CONTAINER_UDSINK):
            raise RunError("give --sink-cmd or --sink-image, not both", EXIT_USAGE)
        del commands[constants.CONTAINER_UDSINK]  # the flag beats the annotation
    unset = [t for t in _ud_types(config) if t not in commands]
    images = image_sinks(udsink, unset, request.sink_image)
    missing = [t for t in unset if t not in images]
    if missing:
        raise RunError(
            "no local command or image for the "
            + ", ".join(
                f"{ROLES[t]} sink (give {FLAGS[t]} or annotation {COMMAND_ANNOTATIONS[t]})"
                for t in missing
            ),
            EXIT_USAGE,
        )
    envs, env_notes = sink_envs(udsink, [t for t in used if t in commands])
    source = config.source
    return Plan(
        config=config,
        commands={t: c for t, c in commands.items() if t in used},
        cwd=request.file_dir,
        notes=env_notes,
        cwds={t: request.invoked_from for t in used if request.overrides.get(t)},
        images=images,
        envs={t: e for t, e in envs.items() if t in used},
        finite=isinstance(source, FileSourceConfig)
        or (isinstance(source, GeneratorSourceConfig) and source.count > 0),
    )


def _local_config(udsink: UDSink, request: RunRequest) -> RuntimeConfig:
    """The operator's RuntimeConfig, moved to this machine: Secret keys from local files,
    the input file or generator limits, a private consumer group unless told otherwise,
    sockets in `socket_dir`, metrics on loopback."""
    config = build_runtime_config(udsink)
    if request.secrets_root is not None:
        try:
            config = (request.local_secrets or LocalSecrets()).localize_config(
                config, request.secrets_root
            )
        except LocalSecretError as err:
            raise RunError(str(err), EXIT_USAGE) from None
    source = config.source
    if request.input_file is not None:
        source = FileSourceConfig(path=str(request.input_file))
    elif isinstance(source, GeneratorSourceConfig):
        limits = {"count": request.count, "rate": request.rate}
        source = revised(source, **{k: v for k, v in limits.items() if v is not None})
    elif isinstance(source, KafkaSourceConfig):
        source = _local_group(udsink, source, request.start_from, request.join_group)
    retry = config.retry_strategy
    if request.on_failure is not None:
        if request.on_failure == "fallback" and config.fallback is None:
            raise RunError(f"--on-failure fallback: spec.sink.{FALLBACK_NEEDED}", EXIT_USAGE)
        retry = revised(retry, on_failure=request.on_failure)
    return revised(
        config,
        source=source,
        retry_strategy=retry,
        sink=_relocate(config.sink, request.socket_dir),
        fallback=_relocate(config.fallback, request.socket_dir),
        on_success=_relocate(config.on_success, request.socket_dir),
        observability=ObservabilityConfig.model_validate(
            {
                "metrics_port": request.metrics_port or 0,
                "metrics_host": "127.0.0.1",
                "log_level": request.log_level,
                "log_format": "text",
            }
        ),
        shutdown_grace_ms=int(DRAIN_S * 1000),
    )


def _local_group(
    udsink: UDSink, source: KafkaSourceConfig, start_from: str | None, join_group: str | None
) -> KafkaSourceConfig:
    """The run's consumer group: a private one, unless --join-group names the UDSink's own."""
    if join_group is None:
        return revised(
            source,
            consumer_group=private_group(udsink),
            start_offset=start_from or DEFAULT_START_FROM,
        )
    if join_group != source.consumer_group:
        raise RunError(
            f"--join-group {join_group}: the UDSink's consumer group is "
            f"{source.consumer_group}; name it exactly to join it (without --join-group the "
            "run reads with a private group)",
            EXIT_USAGE,
        )
    return source if start_from is None else revised(source, start_offset=start_from)


def kafka_connections(config: RuntimeConfig) -> list[tuple[str, KafkaConnection]]:
    """Every Kafka connection of the config, by its RuntimeConfig name."""
    out: list[tuple[str, KafkaConnection]] = []
    if isinstance(config.source, KafkaSourceConfig):
        out.append(("source", config.source))
    for where, sink in (
        ("sink", config.sink),
        ("fallback", config.fallback),
        ("onSuccess", config.on_success),
        ("serve", config.serve),
    ):
        if isinstance(sink, KafkaSinkConfig):
            out.append((where, sink))
    return out


def check_kafka(config: RuntimeConfig, timeout_s: float) -> None:
    """Each Kafka connection of the run answers, built as the data plane builds it; a
    refusal (credentials, certificates, protocol) ends the run at once naming the field."""
    from sink_runtime.dataplane.kafka_settings import KafkaSettingsError, connection_settings
    from udsink_cli.kafkaconn import check_connection

    connections = list(kafka_connections(config))
    if not connections:
        return  # the quickstart's installation (the `cli` extra) has no Kafka client
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        raise RunError(
            "the UDSink uses Kafka but confluent-kafka is not installed: install the "
            "'kafka' extra (from a clone: pip install -e '.[kafka,cli]'), or use --input FILE"
        ) from None
    for where, conn in connections:
        try:
            settings = connection_settings(conn, where)
        except KafkaSettingsError as err:
            raise RunError(str(err), EXIT_USAGE) from None
        problem = check_connection(settings, conn, where, timeout_s)
        if problem is not None:
            hint = "; or replay messages with --input FILE" if where == "source" else ""
            raise RunError(f"{problem}{hint}")
