"""`udsink run`'s arguments, and the run from the file to the exit code."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, get_args

from udsink_operator.api import UDSink

from sink_runtime.config import KafkaSourceConfig, constants
from sink_runtime.dataplane.metrics import ATTEMPT_COUNTS, MESSAGE_COUNTS
from sink_runtime.dataplane.sinks import log as log_sink
from sink_runtime.dataplane.sources.file import FileSourceError, parse_file
from sink_runtime.logs import configure_logging
from udsink_cli.local_secrets import HELP as SECRETS_HELP
from udsink_cli.local_secrets import LocalSecretError, LocalSecrets, add_secret_args
from udsink_cli.manifests import STDIN, InputError, load_udsink
from udsink_cli.run import (
    DRAIN_S,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    SINK_EXIT_S,
    STOP_BOUND_S,
    RunError,
)
from udsink_cli.run.console import STALL_SHOWN_AFTER_S, LogSinkLines, Output, render_summary
from udsink_cli.run.kafka_group import group_header, join_warning
from udsink_cli.run.plan import (
    COMMAND_ANNOTATIONS,
    DEFAULT_START_FROM,
    RunRequest,
    check_kafka,
    plan_run,
)
from udsink_cli.run.session import (
    DEFAULT_STARTUP_TIMEOUT_S,
    STOP_SIGNALS,
    LocalRun,
    Outcome,
    run_summary,
)
from udsink_cli.sidecars import SidecarError

if TYPE_CHECKING:
    from rich.console import Console

# How long each Kafka connection may take to answer before the run starts; brokers that
# refuse the client (credentials, certificates, protocol) end it at once instead.
KAFKA_PROBE_TIMEOUT_S = 10.0

EPILOG = f"""\
local sink commands:
  Each user-defined sink (spec.sink.udsink, and the fallback's and onSuccess's) needs a local
  command: --sink-cmd / --fallback-cmd / --on-success-cmd, run from the current directory, or
  the UDSink's annotations {COMMAND_ANNOTATIONS[constants.CONTAINER_UDSINK]},
  {COMMAND_ANNOTATIONS[constants.CONTAINER_FALLBACK]},
  {COMMAND_ANNOTATIONS[constants.CONTAINER_ON_SUCCESS]}, run from the
  UDSink file's directory. The command runs as typed, split into words as a shell splits them
  (no pipes or variables: use sh -c '...' for those); its program is found on your PATH, as
  your shell finds it (`python` is your active venv's). The command sees the literal values
  of spec.*.udsink.container.env ({constants.CONTAINER_TYPE_ENV} and the socket paths are set
  by udsink); the container image is not run.

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
  or fallback decides otherwise for this run.
  Ctrl-C (or SIGTERM, SIGHUP) ends the run within {STOP_BOUND_S:g}s: the sink has up to \
{DRAIN_S:g}s to answer the
  in-flight batch, then every sink gets SIGTERM and the rest of the time ({SINK_EXIT_S:g}s \
after a whole {DRAIN_S:g}s)
  to exit before SIGKILL. A second Ctrl-C quits at once. Nothing unanswered is committed; no
  sink outlives the run.

a Kafka source:
  The run reads with a consumer group of its own, udsink-run.<namespace>.<name>.<random>
  (named in the first lines and the summary), starting at --from (default
  {DEFAULT_START_FROM}: only records written while it runs), and commits only to that group:
  the UDSink's own group, its deployed pods and their offsets are not touched. --join-group
  GROUP joins the UDSink's own group instead (GROUP must be its name): the deployed pods then
  share their partitions with this run, and what it acknowledges is committed for them (they
  never see those records). It is refused while that group has members (pause the UDSink
  first), unless --force.

exit codes (and the summary's outcome; --json prints the summary on every one of them):
  0 completed (dropped messages are named in the summary's first line), 1 the run failed
  (gave-up: a message never succeeded; sink-exited; failed: a sink never came up, the brokers
  did not answer, the data plane stopped), 2 invalid input (invalid: file, YAML, UDSink,
  --input line, options), 129 SIGHUP (hung-up), 130 Ctrl-C (interrupted), 143 SIGTERM
  (terminated). The summary's reason says why.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a RunError: the run's summary says it like any other."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise RunError(message, EXIT_USAGE)


class Stopped(BaseException):
    """A stop signal before the run handles signals itself (planning, probing the brokers)."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.sig = sig


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signal.Signals(signum))


def wants_json(argv: Sequence[str]) -> bool:
    """Whether --json was asked for, read before the arguments are known to be valid."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true")
    return bool(p.parse_known_args(list(argv))[0].json)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = _Parser(
        prog="udsink run",
        description="Run a UDSink locally: the data plane in-process, each user-defined sink as "
        "a local subprocess on a socket in a private temp directory.",
        epilog=EPILOG + "\n" + SECRETS_HELP,
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
    p.add_argument(
        "--from",
        dest="start_from",
        choices=get_args(constants.StartOffset),
        help="Kafka source: where the run's private group starts "
        f"(default {DEFAULT_START_FROM}; with --join-group: where the group has no offset)",
    )
    p.add_argument(
        "--join-group",
        metavar="GROUP",
        help="Kafka source: read as a member of the UDSink's own consumer group GROUP and "
        "commit to it (instead of a private group); refused while it has members",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="--join-group even while the group has members (the deployed pods)",
    )
    add_secret_args(p)
    p.add_argument("--count", type=int, help="generator: stop after this many messages")
    p.add_argument("--rate", type=int, help="generator: messages per second (0 = unlimited)")
    p.add_argument(
        "--on-failure",
        choices=get_args(constants.OnFailure),
        help="what happens to a message after its retries, for this run "
        "(overrides spec.sink.retryStrategy.onFailure)",
    )
    p.add_argument(
        "--hide-sink-output",
        action="store_true",
        help="do not show the sinks' stdout/stderr nor a built-in log sink's lines",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON, no progress")
    p.add_argument("--log-level", default="warning", choices=get_args(constants.LogLevel))
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
    if args.force and not args.join_group:
        p.error("--force goes with --join-group GROUP")
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
        sink_log.addHandler(LogSinkLines(output))
    return output


def main(argv: Sequence[str]) -> int:
    """With --json every exit path prints one summary object (`run_summary`) whose `outcome`
    and `reason` say how the run ended; without, a run that ran prints its table, and one
    that could not start says why on stderr only."""
    as_json = wants_json(argv)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stopped)
    err = sys.stderr
    started = time.monotonic()
    name: str | None = None
    try:
        args = parse_args(argv)
        output = _output(args, err)
        try:
            udsink = load_udsink(args.filename)
        except InputError as e:
            raise RunError(str(e), EXIT_USAGE) from None
        name = udsink.metadata.name
        summary = _run(args, udsink, output)
    except RunError as e:
        print(f"udsink run: {e}", file=err)
        summary = run_summary(name, Outcome(e.outcome, str(e)), elapsed_s=_since(started))
        _print_summary(summary, as_json, quiet=True)
        return e.code
    except Stopped as stop:
        outcome, reason = STOP_SIGNALS[stop.sig]
        why = f"{reason} before the sinks started"
        print(f"udsink run: {why}", file=err)
        summary = run_summary(name, Outcome(outcome, why), elapsed_s=_since(started))
        _print_summary(summary, as_json, quiet=True)
        return int(summary["exit_code"])
    except Exception as e:  # a bug of ours: its traceback for the report, the summary anyway
        traceback.print_exc(file=err)
        why = f"udsink run failed unexpectedly: {type(e).__name__}: {e}"
        summary = run_summary(name, Outcome("failed", why), elapsed_s=_since(started))
        _print_summary(summary, as_json, quiet=True)
        return EXIT_FAILED
    _print_summary(summary, as_json)
    if summary["exit_code"] == EXIT_FAILED:
        print(f"udsink run: {summary['reason']}", file=err)
    return int(summary["exit_code"])


def _since(started: float) -> float:
    return time.monotonic() - started


def _print_summary(summary: dict[str, Any], as_json: bool, *, quiet: bool = False) -> None:
    """--json: the summary as JSON; else the table, unless `quiet` (the run never started:
    the error on stderr says it all)."""
    for sig in STOP_SIGNALS:  # a late signal must not cut it short
        signal.signal(sig, signal.SIG_IGN)
    if as_json:
        print(json.dumps(summary, indent=2))
    elif not quiet:
        render_summary(summary, sys.stdout)


def _run(args: argparse.Namespace, udsink: UDSink, output: Output) -> dict[str, Any]:
    """The run from a valid UDSink to its summary; RunError for what stops it first."""
    input_file = args.input.resolve() if args.input else None
    if input_file is not None:
        try:  # every line checked before any sink starts
            parse_file(input_file)
        except FileSourceError as e:
            raise RunError(f"--input {e}", EXIT_USAGE) from None
    file_dir = Path.cwd() if args.filename == STDIN else Path(args.filename).resolve().parent
    try:
        local_secrets = LocalSecrets.from_args(args)
    except LocalSecretError as e:
        raise RunError(str(e), EXIT_USAGE) from None
    # Secret keys are laid out apart from the socket directory, which image sinks mount.
    with (
        _private_dir(args.socket_dir) as tmp,
        tempfile.TemporaryDirectory(prefix="udsink-secrets-") as secrets_root,
    ):
        # Absolute: the sinks run from the UDSink file's directory, not from ours.
        socket_dir = Path(tmp).resolve()
        plan = plan_run(
            udsink,
            RunRequest(
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
                local_secrets=local_secrets,
                secrets_root=Path(secrets_root),
                start_from=args.start_from,
                join_group=args.join_group,
            ),
        )
        check_kafka(plan.config, KAFKA_PROBE_TIMEOUT_S)
        if isinstance(plan.config.source, KafkaSourceConfig):
            if args.join_group:
                output.line(join_warning(plan.config.source, force=args.force))
            output.line(group_header(plan.config.source, joined=bool(args.join_group)))
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
        return run.report()
