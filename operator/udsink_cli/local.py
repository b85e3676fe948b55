"""`udsink run`: one UDSink on a laptop, no cluster and no Kafka needed.

It reads the same UDSink file a user applies to a cluster, turns it into the RuntimeConfig the
operator would put in the pod (udsink_operator.build), starts each user-defined sink as a local
subprocess on a socket in a private temp directory (the pod's shared emptyDir, in miniature),
and runs the real data plane in-process. What differs from a pod is only where things come
from: the sink's local command (or its image in the local container engine), and the source
(the file's generator, a reachable Kafka, or `--input` JSON lines). Unmodified Numaflow SDK
sinks see that directory at /var/run/numaflow (udsink_cli.isolation).

Local commands come from `--sink-cmd` / `--fallback-cmd` / `--on-success-cmd`, run from the
current directory (where the user typed them), else from the UDSink's annotations
`local.udsink.dev/sink-command` (and `fallback-command`, `on-success-command`), run from the
UDSink file's directory (where they were written). A leading `python`/`python3` is replaced by
the interpreter running `udsink`, so the sink sees the same installed packages. A sink with no
local command runs from its image (`--sink-image`, else the UDSink's container image) with
docker or podman.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

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
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.logs import configure_logging
from udsink_cli.isolation import ImageSink, image_sinks
from udsink_cli.sidecars import SidecarError, SinkProcess

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
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
KAFKA_PROBE_TIMEOUT_S = 5.0
DEFAULT_STARTUP_TIMEOUT_S = 30.0


class RunError(Exception):
    """Something a newcomer can fix; the message is the one line (or block) they read."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# --- Reading the file and planning the run (pure apart from reading the file) ---


def load_udsink(path: Path) -> UDSink:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RunError(f"cannot read {path}: {err.strerror}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as err:
        raise RunError(f"{path} is not valid YAML: {err}") from None
    found = [d for d in docs if isinstance(d, dict) and d.get("kind") == "UDSink"]
    if len(found) != 1:
        raise RunError(f"{path} must hold exactly one UDSink document (found {len(found)})")
    try:
        return parse_udsink(found[0])
    except SpecError as err:
        issues = "\n".join(f"  {issue}" for issue in err.issues)
        raise RunError(f"{path} is not a valid UDSink:\n{issues}", EXIT_USAGE) from None


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
    config = config.model_copy(
        update={
            "source": source,
            "sink": _relocate(config.sink, socket_dir),
            "fallback": _relocate(config.fallback, socket_dir),
            "on_success": _relocate(config.on_success, socket_dir),
            "observability": ObservabilityConfig(
                metrics_port=metrics_port or 0,
                metrics_host="127.0.0.1",
                log_level=log_level,  # type: ignore[arg-type]
                log_format="text",
            ),
            "shutdown_grace_ms": 10_000,
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
                f"{t} sink (give {FLAGS[t]} or annotation {COMMAND_ANNOTATIONS[t]})"
                for t in missing
            )
        )
    return Plan(
        config=config,
        commands={t: c for t, c in commands.items() if t in used},
        cwd=file_dir,
        notes=notes,
        cwds={t: invoked_from for t in used if overrides.get(t)},
        images=images,
    )


def check_kafka_reachable(source: KafkaSourceConfig, timeout_s: float) -> None:
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:
        raise RunError(
            "the UDSink reads from Kafka but confluent-kafka is not installed: "
            "pip install 'udsink[kafka]', or use --input FILE"
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


# --- Counting and showing progress ---

COUNTERS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("read", "udsink_read_total", {}),
    ("ok", "udsink_written_total", {"sink": "primary"}),
    ("failed", "udsink_failed_total", {"sink": "primary"}),
    ("retried", "udsink_retried_total", {"sink": "primary"}),
    ("nacked", "udsink_nacked_total", {}),
    ("acked", "udsink_acked_total", {}),
)
FALLBACK_REASONS = ("fallback-status", "retries-exhausted", "max-deliveries")
DROP_REASONS = ("retries-exhausted", "max-deliveries")


def snapshot(metrics: Metrics) -> dict[str, int]:
    counts = {name: int(metrics.value(metric, **labels)) for name, metric, labels in COUNTERS}
    counts["fallback"] = int(
        sum(metrics.value("udsink_fallback_total", reason=r) for r in FALLBACK_REASONS)
    )
    counts["dropped"] = int(
        sum(metrics.value("udsink_dropped_total", reason=r) for r in DROP_REASONS)
    )
    counts["violations"] = int(
        sum(
            s.value
            for m in metrics.registry.collect()
            if m.name == "udsink_contract_violations"
            for s in m.samples
            if s.name.endswith("_total")
        )
    )
    return counts


def progress_line(counts: Mapping[str, int], elapsed_s: float) -> str:
    rate = counts["read"] / elapsed_s if elapsed_s > 0 else 0.0
    return (
        f"read {counts['read']:,} ({rate:,.0f}/s)  ok {counts['ok']:,}  "
        f"failed {counts['failed']:,}  fallback {counts['fallback']:,}  "
        f"nack {counts['nacked']:,}  dropped {counts['dropped']:,}  committed {counts['acked']:,}"
    )


def render_summary(summary: Mapping[str, Any], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"udsink run: {summary['name']}: {summary['outcome']}")
    table.add_column("what")
    table.add_column("messages", justify="right")
    for name in ("read", "ok", "failed", "retried", "fallback", "nacked", "dropped", "acked"):
        table.add_row("committed" if name == "acked" else name, f"{summary['counts'][name]:,}")
    if summary["counts"]["violations"]:
        table.add_row("contract violations", f"{summary['counts']['violations']:,}")
    table.add_row("elapsed", f"{summary['elapsed_s']:.2f}s")
    table.add_row("rate (read)", f"{summary['rate_per_s']:,.0f}/s")
    Console(file=out).print(table)


# --- Running ---


@dataclass
class Outcome:
    code: int
    reason: str


class LocalRun:
    """The run itself: sinks up, data plane in-process, everything down again."""

    def __init__(
        self,
        plan: Plan,
        socket_dir: Path,
        *,
        live: bool,
        out: TextIO,
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
    ) -> None:
        self.plan = plan
        self.socket_dir = socket_dir
        self.live = live
        self.out = out
        self.startup_timeout_s = startup_timeout_s
        self.metrics = Metrics()
        self.sinks = [
            SinkProcess(ctype, cmd, socket_dir, cwd=plan.cwd_of(ctype))
            for ctype, cmd in plan.commands.items()
        ] + [SinkProcess(ctype, [], socket_dir, image=img) for ctype, img in plan.images.items()]
        self.outcome = Outcome(EXIT_OK, "completed")
        self.started = time.monotonic()
        self.dataplane: DataPlane | None = None
        self._stopping = asyncio.Event()

    def _stop(self, outcome: Outcome, *, abandon_in_flight: bool = False) -> None:
        if self.outcome.code == EXIT_OK:
            self.outcome = outcome
        self._stopping.set()
        if self.dataplane is not None:
            if abandon_in_flight:
                # The sink that would answer the in-flight batch is gone and nothing restarts
                # it: waiting out the grace period cannot help. The batch stays unacknowledged.
                self.dataplane.grace_s = 0.0
            self.dataplane.stop()

    async def _sinks_ready(self) -> bool:
        """Wait for every sink's server-info file; False when Ctrl-C/SIGTERM came first."""
        ready = asyncio.ensure_future(
            asyncio.gather(*(s.wait_ready(timeout_s=self.startup_timeout_s) for s in self.sinks))
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        either: set[asyncio.Future[Any]] = {ready, stopping}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if self.outcome.code != EXIT_OK:
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError, SidecarError):
                await ready
            return False
        await ready  # raises SidecarError when a sink did not come up
        return True

    async def _watch_sinks(self) -> None:
        while True:
            for sink in self.sinks:
                code = sink.exit_code()
                if code is not None:
                    tail = "\n".join(f"  | {line}" for line in sink.stderr_tail()[-10:])
                    self._stop(
                        Outcome(
                            EXIT_FAILED,
                            f"{sink.describe()} exited with code {code} while running; "
                            "nothing it had not answered was committed"
                            + (f"\nlast stderr lines:\n{tail}" if tail else ""),
                        ),
                        abandon_in_flight=True,
                    )
                    return
            await asyncio.sleep(0.2)

    async def _show_progress(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.out)
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            while True:
                live.update(progress_line(snapshot(self.metrics), time.monotonic() - self.started))
                await asyncio.sleep(0.25)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(
            signal.SIGINT, self._stop, Outcome(EXIT_INTERRUPTED, "interrupted (Ctrl-C)")
        )
        loop.add_signal_handler(
            signal.SIGTERM, self._stop, Outcome(EXIT_TERMINATED, "terminated (SIGTERM)")
        )
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
            background.append(asyncio.create_task(self._watch_sinks()))
            if self.live:
                background.append(asyncio.create_task(self._show_progress()))
            await self.dataplane.run()
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
            for sink in self.sinks:
                sink.stop()

    def summary(self) -> dict[str, Any]:
        counts = snapshot(self.metrics)
        elapsed = time.monotonic() - self.started
        return {
            "name": self.plan.config.name,
            "outcome": self.outcome.reason.splitlines()[0],
            "exit_code": self.outcome.code,
            "counts": counts,
            "elapsed_s": round(elapsed, 3),
            "rate_per_s": round(counts["read"] / elapsed, 1) if elapsed > 0 else 0.0,
            "abandoned": self.dataplane.abandoned if self.dataplane is not None else 0,
        }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="udsink run",
        description="Run a UDSink locally: the data plane in-process, each user-defined sink as "
        "a local subprocess on a socket in a private temp directory.",
    )
    p.add_argument("-f", "--file", required=True, type=Path, help="the UDSink YAML file")
    p.add_argument("--sink-cmd", help="local command of the primary user-defined sink")
    p.add_argument(
        "--sink-image",
        help="run the primary sink from this image (docker or podman) instead of a command",
    )
    p.add_argument("--fallback-cmd", help="local command of the fallback user-defined sink")
    p.add_argument("--on-success-cmd", help="local command of the on-success user-defined sink")
    p.add_argument("--input", type=Path, help="read messages from JSON lines instead")
    p.add_argument("--count", type=int, help="generator: stop after this many messages")
    p.add_argument("--rate", type=int, help="generator: messages per second (0 = unlimited)")
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
            raise RunError(f"--socket-dir {parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunError(f"--socket-dir {parent} is not writable; choose another directory")
    try:
        return tempfile.TemporaryDirectory(prefix="udsink-run-", dir=parent)
    except OSError as err:
        where = parent or Path(tempfile.gettempdir())
        raise RunError(f"cannot create a socket directory under {where}: {err.strerror}") from None


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, "text")
    err = sys.stderr
    try:
        udsink = load_udsink(args.file)
        with _private_dir(args.socket_dir) as tmp:
            # Absolute: the sinks run from the UDSink file's directory, not from ours.
            socket_dir = Path(tmp).resolve()
            plan = plan_run(
                udsink,
                file_dir=args.file.resolve().parent,
                invoked_from=Path.cwd(),
                socket_dir=socket_dir,
                overrides={
                    constants.CONTAINER_UDSINK: args.sink_cmd,
                    constants.CONTAINER_FALLBACK: args.fallback_cmd,
                    constants.CONTAINER_ON_SUCCESS: args.on_success_cmd,
                },
                input_file=args.input.resolve() if args.input else None,
                count=args.count,
                rate=args.rate,
                log_level=args.log_level,
                metrics_port=args.metrics_port,
                sink_image=args.sink_image,
            )
            if isinstance(plan.config.source, KafkaSourceConfig):
                check_kafka_reachable(plan.config.source, KAFKA_PROBE_TIMEOUT_S)
            for note in plan.notes:
                print(f"note: {note}", file=err)
            run = LocalRun(
                plan,
                socket_dir,
                live=not args.json and err.isatty(),
                out=err,
                startup_timeout_s=args.startup_timeout,
            )
            try:
                asyncio.run(run.run())
            except SidecarError as e:
                raise RunError(str(e)) from None
            except Exception as e:  # the data plane could not run; say why in one line
                if run.outcome.code == EXIT_OK:  # else the first reason (a crash, a signal) stands
                    run.outcome = Outcome(EXIT_FAILED, f"the data plane stopped: {e}")
            summary = run.summary()
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
