"""`udsink run`: one UDSink on a laptop, no cluster and no Kafka needed.

It reads the same UDSink file a user applies to a cluster, turns it into the RuntimeConfig the
operator would put in the pod (udsink_operator.build), starts each user-defined sink as a local
subprocess on a socket in a private temp directory (the pod's shared emptyDir, in miniature),
and runs the real data plane in-process. What differs from a pod is only where things come
from: the sink's local command (or its image in the local container engine), and the source
(the file's generator, a reachable Kafka, or `--input` JSON lines). Unmodified Numaflow SDK
sinks see that directory at /var/run/numaflow (udsink_cli.isolation). A sink with no local
command runs from its image (`--sink-image`, else the UDSink's container image) with docker or
podman. The rules a user reads are in `EPILOG` (`udsink run --help`); docs/sdk.md repeats them
with examples.

A local run is a tool a person watches: every sink's output appears, prefixed by its role;
the progress display shows a sink that stopped answering; a finite input always ends (a message
that keeps failing past its retry budget ends the run, naming its id); a second Ctrl-C quits at
once; and no sink outlives the run. Counts use the metrics module's names (`Counts`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml
from udsink_operator.api import SpecError, UDSink, parse_udsink
from udsink_operator.build import build_runtime_config

from sink_runtime.config import (
    FileSourceConfig,
    GeneratorSourceConfig,
    KafkaSourceConfig,
    ObservabilityConfig,
    RuntimeConfig,
    SinkConfig,
    UdSinkConfig,
    constants,
)
from sink_runtime.dataplane.app import DataPlane
from sink_runtime.dataplane.metrics import (
    ATTEMPT_COUNTS,
    COUNT_MEANINGS,
    MESSAGE_COUNTS,
    Counts,
    Metrics,
    counts,
)
from sink_runtime.dataplane.sinks import log as log_sink
from sink_runtime.dataplane.sources.file import FileSourceError, parse_file
from sink_runtime.logs import SHOWN_IDS, configure_logging, ids_text
from udsink_cli.isolation import ImageSink, image_sinks
from udsink_cli.sidecars import ROLES, SidecarError, SinkProcess

if TYPE_CHECKING:
    from rich.console import Console

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
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# The JSON summary's `outcome` is one of these; the exit code follows from it. Free text (which
# sink, which error) goes to `reason`.
OUTCOMES: Mapping[str, int] = {
    "completed": EXIT_OK,  # the input ended; every message read reached an outcome
    "gave-up": EXIT_FAILED,  # a finite input's messages kept failing past the retry budget
    "sink-exited": EXIT_FAILED,  # a sink process ended while the run needed it
    "failed": EXIT_FAILED,  # the data plane could not run (its error is the reason)
    "hung-up": 129,  # SIGHUP (the terminal closed)
    "interrupted": 130,  # SIGINT (Ctrl-C)
    "terminated": 143,  # SIGTERM
}
STOP_SIGNALS: Mapping[signal.Signals, tuple[str, str]] = {
    signal.SIGINT: ("interrupted", "interrupted (Ctrl-C)"),
    signal.SIGTERM: ("terminated", "terminated (SIGTERM)"),
    signal.SIGHUP: ("hung-up", "hung up (SIGHUP)"),
}
KAFKA_PROBE_TIMEOUT_S = 5.0
DEFAULT_STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_GRACE_S = 10.0
STALL_SHOWN_AFTER_S = 2.0  # a write waiting this long is shown under the progress line
STDIN = "-"

EPILOG = f"""\
local sink commands:
  Each user-defined sink (spec.sink.udsink, and the fallback's and onSuccess's) needs a local
  command: --sink-cmd / --fallback-cmd / --on-success-cmd, run from the current directory, or
  the UDSink's annotations {COMMAND_ANNOTATIONS[constants.CONTAINER_UDSINK]},
  {COMMAND_ANNOTATIONS[constants.CONTAINER_FALLBACK]},
  {COMMAND_ANNOTATIONS[constants.CONTAINER_ON_SUCCESS]}, run from the
  UDSink file's directory. A leading `python`/`python3` becomes the interpreter running udsink.
  The command sees spec.*.udsink.container.env's literal values ({constants.CONTAINER_TYPE_ENV}
  and the socket paths are set by udsink); the container image is not run.

--input FILE (JSON lines, one message per line; blank lines skipped):
  {{"value": "text"}} or {{"valueBase64": "AAEC"}}, optional "keys": ["k1", "k2"],
  "headers": {{"name": "value"}}, "eventTime": "2024-05-01T12:00:00Z" (ISO 8601).
  Message ids are file:0:<line number>, counted from 1 over every line of the file.

output:
  Every sink's stdout and stderr, prefixed by its role (primary, fallback, on_success), and a
  built-in log sink's lines; --hide-sink-output hides both. On a terminal a live progress
  line shows the counts and any sink that has not answered for {STALL_SHOWN_AFTER_S:g}s. The
  summary goes to stdout (--json: as JSON); its first line says how the run ended.
  Counts: messages ({", ".join(MESSAGE_COUNTS)}) count each message once;
  attempts ({", ".join(ATTEMPT_COUNTS)}) count each answer or delivery.

ending:
  A finite input (--input, or a generator with a count) ends the run when it is done. A message
  that still fails after the retry budget (spec.sink.retryStrategy.backoff.steps) ends it too
  under onFailure retry, with the ids that never succeeded and exit code 1; --on-failure drop
  or fallback decides otherwise for this run. Ctrl-C finishes the in-flight batch (up to
  {SHUTDOWN_GRACE_S:g}s); a second Ctrl-C quits at once. Nothing unanswered is committed; no
  sink outlives the run.

exit codes:
  0 completed (dropped messages are named in the summary's first line), 1 the run failed (a
  message never succeeded, a sink exited, the data plane stopped), 2 invalid input (file,
  YAML, UDSink, --input line, options), 129 SIGHUP, 130 Ctrl-C, 143 SIGTERM.
"""


class RunError(Exception):
    """Something a newcomer can fix; the message is the one line (or block) they read."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# --- Reading the file and planning the run (pure apart from reading the file) ---


def _read_text(source: str) -> io.StringIO:
    """The file's text as a named stream, so YAML errors name the file."""
    if source == STDIN:
        stream = io.StringIO(sys.stdin.read())
        stream.name = "<stdin>"
        return stream
    try:
        stream = io.StringIO(Path(source).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{source}: no such file", EXIT_USAGE) from None
    except UnicodeDecodeError as err:
        raise RunError(f"{source} is not UTF-8 text: {err.reason}", EXIT_USAGE) from None
    except OSError as err:
        raise RunError(f"cannot read {source}: {err.strerror}", EXIT_USAGE) from None
    stream.name = source
    return stream


def load_udsink(source: str) -> UDSink:
    """The one UDSink of a file (or of standard input for `-`); RunError(exit 2) otherwise."""
    stream = _read_text(source)
    name = stream.name
    try:
        docs = [d for d in yaml.safe_load_all(stream) if d is not None]
    except yaml.YAMLError as err:
        raise RunError(f"{name} is not valid YAML: {err}", EXIT_USAGE) from None
    found = [d for d in docs if isinstance(d, dict) and d.get("kind") == "UDSink"]
    if len(found) != 1:
        kinds = [
            str(d.get("kind", "no kind")) if isinstance(d, dict) else type(d).__name__ for d in docs
        ]
        what = f"found {', '.join(kinds)}" if kinds else "it is empty"
        if len(found) > 1:
            what = f"found {len(found)} UDSinks; give one file per run"
        raise RunError(f"{name} must hold exactly one document of kind UDSink ({what})", EXIT_USAGE)
    try:
        return parse_udsink(found[0])
    except SpecError as err:
        issues = "\n".join(f"  {issue}" for issue in err.issues)
        raise RunError(f"{name} is not a valid UDSink:\n{issues}", EXIT_USAGE) from None


def split_command(text: str) -> list[str]:
    argv = shlex.split(text)
    if argv and argv[0] in {"python", "python3"}:
        argv[0] = sys.executable
    return argv


def sink_commands(
    udsink: UDSink, overrides: Mapping[constants.ContainerType, str | None]
) -> dict[constants.ContainerType, list[str]]:
    """The local command of each user-defined sink the config uses."""
    annotations = udsink.metadata.annotations
    out: dict[constants.ContainerType, list[str]] = {}
    for ctype, annotation in COMMAND_ANNOTATIONS.items():
        text = overrides.get(ctype) or annotations.get(annotation)
        if text:
            out[ctype] = split_command(text)
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
        if isinstance(sink, UdSinkConfig):
            yield sink.container_type


def _relocate(sink: SinkConfig | None, socket_dir: Path) -> SinkConfig | None:
    if isinstance(sink, UdSinkConfig):
        local = UdSinkConfig.for_container(sink.container_type, socket_dir=str(socket_dir))
        return sink.model_copy(
            update={
                "socket_path": local.socket_path,
                "server_info_path": local.server_info_path,
                "startup_timeout_ms": 30_000,
            }
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


def plan_run(
    udsink: UDSink,
    *,
    file_dir: Path,
    invoked_from: Path,
    socket_dir: Path,
    overrides: Mapping[constants.ContainerType, str | None],
    input_file: Path | None,
    count: int | None,
    rate: int | None,
    log_level: str,
    metrics_port: int | None,
    sink_image: str | None = None,
    on_failure: str | None = None,
) -> Plan:
    config = build_runtime_config(udsink)
    notes: list[str] = []
    source = config.source
    if input_file is not None:
        source = FileSourceConfig(path=str(input_file))
    elif isinstance(source, GeneratorSourceConfig):
        update: dict[str, Any] = {}
        if count is not None:
            update["count"] = count
        if rate is not None:
            update["rate"] = rate
        source = source.model_copy(update=update)
    elif isinstance(source, KafkaSourceConfig) and (
        source.tls is not None or source.sasl is not None
    ):
        notes.append(
            "the Kafka source uses TLS/SASL files mounted from Secrets in a pod; locally "
            "they must exist at the same paths"
        )
    retry = config.retry_strategy
    if on_failure is not None:
        if on_failure == "fallback" and config.fallback is None:
            raise RunError(
                "--on-failure fallback needs a fallback sink, and spec.sink.fallback is not "
                "set; choose --on-failure retry or drop",
                EXIT_USAGE,
            )
        retry = retry.model_copy(update={"on_failure": on_failure})
    config = config.model_copy(
        update={
            "source": source,
            "retry_strategy": retry,
            "sink": _relocate(config.sink, socket_dir),
            "fallback": _relocate(config.fallback, socket_dir),
            "on_success": _relocate(config.on_success, socket_dir),
            "observability": ObservabilityConfig(
                metrics_port=metrics_port or 0,
                metrics_host="127.0.0.1",
                log_level=log_level,  # type: ignore[arg-type]
                log_format="text",
            ),
            "shutdown_grace_ms": int(SHUTDOWN_GRACE_S * 1000),
        }
    )
    commands = sink_commands(udsink, overrides)
    if sink_image and constants.CONTAINER_UDSINK in commands:
        if overrides.get(constants.CONTAINER_UDSINK):
            raise RunError("give --sink-cmd or --sink-image, not both", EXIT_USAGE)
        del commands[constants.CONTAINER_UDSINK]  # the flag beats the annotation
    used = set(_ud_types(config))
    images = image_sinks(udsink, [t for t in _ud_types(config) if t not in commands], sink_image)
    missing = [t for t in _ud_types(config) if t not in commands and t not in images]
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
    return Plan(
        config=config,
        commands={t: c for t, c in commands.items() if t in used},
        cwd=file_dir,
        notes=notes + env_notes,
        cwds={t: invoked_from for t in used if overrides.get(t)},
        images=images,
        envs={t: e for t, e in envs.items() if t in used},
        finite=isinstance(source, FileSourceConfig)
        or (isinstance(source, GeneratorSourceConfig) and source.count > 0),
    )


def check_kafka_reachable(source: KafkaSourceConfig, timeout_s: float) -> None:
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:
        raise RunError(
            "the UDSink reads from Kafka but confluent-kafka is not installed: install the "
            "'kafka' extra (from a clone: pip install -e '.[kafka,cli]'), or use --input FILE"
        ) from None
    admin = AdminClient({"bootstrap.servers": ",".join(source.brokers), "log_level": 0})
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except Exception as err:
        raise RunError(
            f"Kafka brokers {', '.join(source.brokers)} not reachable within {timeout_s:g}s "
            f"({err}); start them, or replay messages with --input FILE"
        ) from None
    if not meta.brokers:
        raise RunError(f"Kafka brokers {', '.join(source.brokers)} answered with no brokers")


# --- Showing counts ---


def progress_line(c: Counts, elapsed_s: float) -> str:
    """The live line: message counts, then the attempt counts that are not zero."""
    rate = c.read / elapsed_s if elapsed_s > 0 else 0.0
    parts = [f"read {c.read:,} ({rate:,.0f}/s)"]
    parts += [f"{name} {getattr(c, name):,}" for name in MESSAGE_COUNTS[1:]]
    parts += [f"{name} {getattr(c, name):,}" for name in ATTEMPT_COUNTS if getattr(c, name)]
    return "  ".join(parts)


def stall_lines(writing: Mapping[str, tuple[float, int]], now: float) -> list[str]:
    """One line per sink role whose current write has waited STALL_SHOWN_AFTER_S or more."""
    return [
        f"{role} sink: no answer for {now - since:.0f}s to a write of {n:,} messages"
        for role, (since, n) in sorted(writing.items())
        if now - since >= STALL_SHOWN_AFTER_S
    ]


def headline(summary: Mapping[str, Any]) -> str:
    """The summary's first line: how the run ended, and any message not delivered."""
    m = summary["messages"]
    name, outcome = summary["name"], summary["outcome"]
    if outcome == "completed":
        line = f"{name}: completed: {m['read']:,} messages read, {m['acked']:,} acked"
    elif outcome == "gave-up":
        ids = [e["id"] for e in summary["never_succeeded"]]
        line = (
            f"{name}: gave up: {len(ids):,} messages never succeeded within the retry "
            f"budget: {ids_text(ids)}"
        )
    else:
        reason = summary["reason"].splitlines()[0]
        line = f"{name}: {reason if reason.startswith(outcome) else f'{outcome}: {reason}'}"
    if m["dropped"]:
        line += f"; {m['dropped']:,} messages DROPPED (the log names each)"
    if summary["abandoned"]:
        line += f"; {summary['abandoned']:,} in flight left uncommitted"
    return line


def render_summary(summary: Mapping[str, Any], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, highlight=False)
    # Whole lines, never wrapped by us: the first line is what a script or a person greps.
    console.print(Text(headline(summary)), soft_wrap=True)
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("name")
    table.add_column("count", justify="right")
    table.add_column("what it counts")
    for group in ("messages", "attempts"):
        for name, value in summary[group].items():
            table.add_row(name, f"{value:,}", COUNT_MEANINGS[name])
        table.add_section()
    table.add_row("abandoned", f"{summary['abandoned']:,}", "in flight at the end, not committed")
    table.add_row("elapsed", f"{summary['elapsed_s']:.2f}s", f"{summary['rate_per_s']:,.0f}/s read")
    console.print(table)
    for entry in summary["never_succeeded"][:SHOWN_IDS]:
        console.print(Text(f"never succeeded: {entry['id']}: {entry['last']}"), soft_wrap=True)


# --- Running ---


@dataclass
class Outcome:
    name: str
    reason: str

    @property
    def code(self) -> int:
        return OUTCOMES[self.name]


class Output:
    """Where the run's own lines, its log lines and its sinks' lines go, without colliding.

    On a terminal everything is printed through one rich Console, which draws the live
    progress display below the lines; elsewhere each line is written whole under a lock.
    """

    def __init__(self, stream: TextIO, console: Console | None) -> None:
        self.stream = stream
        self.console = console
        self._lock = threading.Lock()

    def line(self, text: str, *, prefix: str = "") -> None:
        if self.console is not None:
            from rich.text import Text

            self.console.print(
                Text.assemble((prefix, "cyan"), text), soft_wrap=True, highlight=False
            )
            return
        with self._lock:
            self.stream.write(f"{prefix}{text}\n")
            self.stream.flush()

    def sink_line(self, role: str, text: str) -> None:
        self.line(text, prefix=f"{role} | ")


class _LogSinkLines(logging.Handler):
    """The built-in log sink's lines, shown like a sink's own output (`primary | id=...`)."""

    def __init__(self, output: Output) -> None:
        super().__init__(logging.INFO)
        self.output = output

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        role, _, rest = message.partition("] ")
        if role.startswith("[") and rest:
            self.output.sink_line(role[1:], rest)
        else:
            self.output.line(message)


class LocalRun:
    """The run itself: sinks up, data plane in-process, everything down again."""

    def __init__(
        self,
        plan: Plan,
        socket_dir: Path,
        *,
        output: Output,
        show_sinks: bool = True,
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
    ) -> None:
        self.plan = plan
        self.socket_dir = socket_dir
        self.output = output
        self.startup_timeout_s = startup_timeout_s
        self.metrics = Metrics()
        self.sinks = [
            SinkProcess(
                ctype,
                cmd,
                socket_dir,
                cwd=plan.cwd_of(ctype),
                extra_env=plan.envs.get(ctype, {}),
                on_line=output.sink_line if show_sinks else None,
            )
            for ctype, cmd in plan.commands.items()
        ] + [
            SinkProcess(
                ctype,
                [],
                socket_dir,
                image=img,
                on_line=output.sink_line if show_sinks else None,
            )
            for ctype, img in plan.images.items()
        ]
        self.outcome = Outcome("completed", "the input ended")
        self.started = time.monotonic()
        self.dataplane: DataPlane | None = None
        self.never_succeeded: dict[str, str] = {}
        self.abandoned = 0
        self.forced = False
        self._stopping = asyncio.Event()
        self._dp_task: asyncio.Future[None] | None = None

    def _stop(self, outcome: Outcome, *, abandon_in_flight: bool = False) -> None:
        """Stop once with `outcome` (the first reason stands); abandon: do not drain."""
        if not self._stopping.is_set():
            self.outcome = outcome
        self._stopping.set()
        if self.dataplane is not None:
            # Abandon when nothing more can come of the in-flight batch (its sink is gone, or
            # its messages only keep failing): it stays unacknowledged, nothing is committed.
            self.dataplane.stop(abandon_in_flight=abandon_in_flight)

    def _quit_now(self) -> None:
        """The second Ctrl-C: cancel the data plane where it stands (the sinks are killed next);
        the in-flight batch stays unacknowledged."""
        if self.dataplane is not None and self._dp_task is not None and not self._dp_task.done():
            self.abandoned = self.dataplane.in_flight
            self._dp_task.cancel()

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self._stopping.is_set():
            name, reason = STOP_SIGNALS[sig]
            self._stop(Outcome(name, reason))
            if self.dataplane is not None:
                self.output.line(
                    f"udsink run: stopping: finishing the in-flight batch (up to "
                    f"{SHUTDOWN_GRACE_S:g}s); Ctrl-C again to quit at once"
                )
            return
        if self.forced:
            return
        self.forced = True
        self.output.line(
            "udsink run: quitting at once: the in-flight batch stays uncommitted; sinks are killed"
        )
        self._quit_now()

    async def _sinks_ready(self) -> bool:
        """Wait for every sink's server-info file; False when Ctrl-C/SIGTERM came first."""
        ready = asyncio.ensure_future(
            asyncio.gather(*(s.wait_ready(timeout_s=self.startup_timeout_s) for s in self.sinks))
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        either: set[asyncio.Future[Any]] = {ready, stopping}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if self._stopping.is_set():
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError, SidecarError):
                await ready
            return False
        await ready  # raises SidecarError when a sink did not come up
        return True

    async def _watch(self) -> None:
        """End the run when a sink exits, or when a finite input's messages only keep failing."""
        assert self.dataplane is not None
        forwarder = self.dataplane.forwarder
        give_up = self.plan.finite and forwarder.retry.on_failure == "retry"
        while True:
            for sink in self.sinks:
                code = sink.exit_code()
                if code is not None:
                    tail = "\n".join(f"  | {line}" for line in sink.stderr_tail()[-10:])
                    self._stop(
                        Outcome(
                            "sink-exited",
                            f"{sink.describe()} exited with code {code} while running; "
                            "nothing it had not answered was committed"
                            + (f"\nlast stderr lines:\n{tail}" if tail else ""),
                        ),
                        abandon_in_flight=True,
                    )
                    return
            exhausted = forwarder.exhausted_in_flight() if give_up else {}
            if exhausted:
                self.never_succeeded = exhausted
                self._stop(
                    Outcome(
                        "gave-up",
                        f"{len(exhausted)} messages still failed after "
                        f"{forwarder.retry.steps} retries (onFailure retry would retry them "
                        "forever; --on-failure drop or fallback decides otherwise)",
                    ),
                    abandon_in_flight=True,
                )
                return
            await asyncio.sleep(0.2)

    async def _show_progress(self, console: Console) -> None:
        from rich.console import Group
        from rich.live import Live
        from rich.text import Text

        assert self.dataplane is not None
        forwarder = self.dataplane.forwarder

        def display() -> Group:
            now = time.monotonic()
            lines = [progress_line(counts(self.metrics), now - self.started)]
            lines += stall_lines(forwarder.writing, now)
            return Group(*(Text(line, style="bold" if i else "") for i, line in enumerate(lines)))

        with Live(display(), console=console, refresh_per_second=4, transient=True) as live:
            while True:
                await asyncio.sleep(0.25)
                live.update(display())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        background: list[asyncio.Task[None]] = []
        try:
            for sink in self.sinks:
                sink.start()
            if not await self._sinks_ready():  # interrupted while the sinks were starting
                return
            self.dataplane = DataPlane(
                self.plan.config,
                metrics=self.metrics,
                serve_http=self.plan.config.observability.metrics_port != 0,
            )
            self.started = time.monotonic()
            background.append(asyncio.create_task(self._watch()))
            if self.output.console is not None:
                background.append(asyncio.create_task(self._show_progress(self.output.console)))
            self._dp_task = asyncio.ensure_future(self.dataplane.run())
            try:
                await self._dp_task
            except asyncio.CancelledError:
                this = asyncio.current_task()
                if this is not None and this.cancelling():
                    raise  # run() itself was cancelled, not just the data plane (_quit_now)
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            for sink in self.sinks:
                sink.stop(grace_s=0.0 if self.forced else 5.0)

    def summary(self) -> dict[str, Any]:
        c = counts(self.metrics)
        elapsed = time.monotonic() - self.started
        abandoned = self.abandoned or (self.dataplane.abandoned if self.dataplane else 0)
        return {
            "name": self.plan.config.name,
            "outcome": self.outcome.name,
            "reason": self.outcome.reason,
            "exit_code": self.outcome.code,
            "on_failure": self.plan.config.retry_strategy.on_failure,
            "messages": c.messages(),
            "attempts": c.attempts(),
            "abandoned": abandoned,
            "never_succeeded": [
                {"id": i, "last": last} for i, last in sorted(self.never_succeeded.items())
            ],
            "elapsed_s": round(elapsed, 3),
            "rate_per_s": round(c.read / elapsed, 1) if elapsed > 0 else 0.0,
        }

    def report(self) -> dict[str, Any]:
        """The summary with its first line (`headline`) first: what --json prints."""
        summary = self.summary()
        return {"headline": headline(summary), **summary}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="udsink run",
        description="Run a UDSink locally: the data plane in-process, each user-defined sink as "
        "a local subprocess on a socket in a private temp directory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-f",
        "--filename",
        "--file",
        dest="filename",
        required=True,
        metavar="FILE",
        help="the UDSink YAML file ('-' = standard input)",
    )
    p.add_argument("--sink-cmd", help="local command of the primary user-defined sink")
    p.add_argument(
        "--sink-image",
        help="run the primary sink from this image (docker or podman) instead of a command",
    )
    p.add_argument("--fallback-cmd", help="local command of the fallback user-defined sink")
    p.add_argument("--on-success-cmd", help="local command of the on-success user-defined sink")
    p.add_argument("--input", type=Path, help="read messages from JSON lines (format below)")
    p.add_argument("--count", type=int, help="generator: stop after this many messages")
    p.add_argument("--rate", type=int, help="generator: messages per second (0 = unlimited)")
    p.add_argument(
        "--on-failure",
        choices=["retry", "fallback", "drop"],
        help="what happens to a message after its retries, for this run "
        "(overrides spec.sink.retryStrategy.onFailure)",
    )
    p.add_argument(
        "--hide-sink-output",
        action="store_true",
        help="do not show the sinks' stdout/stderr nor a built-in log sink's lines",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON, no progress")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument("--metrics-port", type=int, help="serve /metrics, /livez, /readyz here")
    p.add_argument(
        "--socket-dir", type=Path, help="parent of the private socket directory (default: TMPDIR)"
    )
    p.add_argument(
        "--startup-timeout",
        type=float,
        default=DEFAULT_STARTUP_TIMEOUT_S,
        metavar="SECONDS",
        help="how long each sink may take to write its server-info file "
        f"(default {DEFAULT_STARTUP_TIMEOUT_S:g})",
    )
    args = p.parse_args(argv)
    if not args.startup_timeout > 0:
        p.error(f"--startup-timeout must be > 0 seconds (got {args.startup_timeout:g})")
    for name in ("count", "rate"):
        value = getattr(args, name)
        if value is not None and value < 0:
            p.error(f"--{name} must be >= 0 (got {value})")
    return args


def _private_dir(parent: Path | None) -> tempfile.TemporaryDirectory[str]:
    if parent is not None:
        if not parent.is_dir():
            raise RunError(f"--socket-dir {parent} is not a directory", EXIT_USAGE)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunError(
                f"--socket-dir {parent} is not writable; choose another directory", EXIT_USAGE
            )
    try:
        return tempfile.TemporaryDirectory(prefix="udsink-run-", dir=parent)
    except OSError as err:
        where = parent or Path(tempfile.gettempdir())
        raise RunError(f"cannot create a socket directory under {where}: {err.strerror}") from None


def _output(args: argparse.Namespace, err: TextIO) -> Output:
    """The run's output, and logging set up to go through it (never across the progress)."""
    console: Console | None = None
    if not args.json and err.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        console = Console(file=err)
        handler = RichHandler(
            console=console, show_path=False, markup=False, log_time_format="%H:%M:%S"
        )
        logging.getLogger().addHandler(handler)
    configure_logging(args.log_level, "text", stream=err)
    output = Output(err, console)
    # A built-in log sink's lines are the run's output: shown at any --log-level.
    sink_log = logging.getLogger(log_sink.__name__)
    sink_log.propagate = False
    if not args.hide_sink_output:
        sink_log.setLevel(logging.INFO)
        sink_log.addHandler(_LogSinkLines(output))
    return output


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    err = sys.stderr
    output = _output(args, err)
    try:
        udsink = load_udsink(args.filename)
        input_file = args.input.resolve() if args.input else None
        if input_file is not None:
            try:  # every line checked before any sink starts
                parse_file(input_file)
            except FileSourceError as e:
                raise RunError(f"--input {e}", EXIT_USAGE) from None
        file_dir = Path.cwd() if args.filename == STDIN else Path(args.filename).resolve().parent
        with _private_dir(args.socket_dir) as tmp:
            # Absolute: the sinks run from the UDSink file's directory, not from ours.
            socket_dir = Path(tmp).resolve()
            plan = plan_run(
                udsink,
                file_dir=file_dir,
                invoked_from=Path.cwd(),
                socket_dir=socket_dir,
                overrides={
                    constants.CONTAINER_UDSINK: args.sink_cmd,
                    constants.CONTAINER_FALLBACK: args.fallback_cmd,
                    constants.CONTAINER_ON_SUCCESS: args.on_success_cmd,
                },
                input_file=input_file,
                count=args.count,
                rate=args.rate,
                log_level=args.log_level,
                metrics_port=args.metrics_port,
                sink_image=args.sink_image,
                on_failure=args.on_failure,
            )
            if isinstance(plan.config.source, KafkaSourceConfig):
                check_kafka_reachable(plan.config.source, KAFKA_PROBE_TIMEOUT_S)
            for note in plan.notes:
                output.line(f"note: {note}")
            run = LocalRun(
                plan,
                socket_dir,
                output=output,
                show_sinks=not args.hide_sink_output,
                startup_timeout_s=args.startup_timeout,
            )
            try:
                asyncio.run(run.run())
            except SidecarError as e:
                raise RunError(str(e)) from None
            except Exception as e:  # the data plane could not run; say why in one line
                if run.outcome.code == EXIT_OK:  # else the first reason (a crash, a signal) stands
                    run.outcome = Outcome("failed", f"the data plane stopped: {e}")
            summary = run.report()
    except RunError as e:
        print(f"udsink run: {e}", file=err)
        return e.code
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        render_summary(summary, sys.stdout)
    if run.outcome.code == EXIT_FAILED:
        print(f"udsink run: {run.outcome.reason}", file=err)
    return run.outcome.code
