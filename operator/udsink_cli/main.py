"""Dispatch `udsink <command> ...` to the module that owns the command.

Subcommand modules are imported only when used, so `udsink runtime` works in an image that
has only the runtime's dependencies, and `udsink crd` in one that has only the operator's. A
command whose extra is not installed says which extra to install; a closed output pipe
(`udsink crd | head -1`) ends the command quietly, as it ends any Unix tool.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeAlias

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool the pipe ended


Entry: TypeAlias = Callable[[list[str]], int]


# Each command's module is imported inside its loader, where mypy and import-linter see it, and
# only when that command runs.
def _run() -> Entry:
    from udsink_cli.run import command

    return command.main


def _replay() -> Entry:
    from udsink_cli import replay

    return replay.main


def _offsets() -> Entry:
    from udsink_cli import offsets

    return offsets.main


def _runtime() -> Entry:
    from sink_runtime.dataplane import app

    return app.main


def _operator() -> Entry:
    from udsink_cli import operator_cmd

    return operator_cmd.operator_main


def _crd() -> Entry:
    from udsink_cli import generate

    return generate.crd_main


def _render() -> Entry:
    from udsink_cli import render

    return render.render_main


def _convert() -> Entry:
    from udsink_cli import convert

    return convert.convert_main


def _docs_reference() -> Entry:
    from udsink_cli import generate

    return generate.docs_reference_main


class Command(NamedTuple):
    load: Callable[[], Entry]
    summary: str
    extra: str  # the optional dependency set (pip extra) the command needs


COMMANDS: dict[str, Command] = {
    "run": Command(
        _run, "run a UDSink locally: data plane in-process, sinks as subprocesses", "cli"
    ),
    "replay": Command(
        _replay,
        "write a dead-letter topic's records back to a topic (dry run unless --execute)",
        "kafka,cli",  # Kafka clients; YAML for -f
    ),
    "offsets": Command(
        _offsets,
        "show a UDSink's consumer group lag, or reset its offsets safely",
        "kafka,cli",  # Kafka clients; YAML for -f
    ),
    "runtime": Command(_runtime, "run the data plane from a RuntimeConfig JSON file", "kafka"),
    "operator": Command(_operator, "run the Kubernetes operator", "operator"),
    "crd": Command(_crd, "print the UDSink CustomResourceDefinition", "operator"),
    "render": Command(_render, "print the children a UDSink produces, as YAML", "operator"),
    "convert": Command(
        _convert, "print a Numaflow MonoVertex or Kafka-to-sink Pipeline as a UDSink", "operator"
    ),
    "docs-reference": Command(
        _docs_reference, "print the UDSink field reference (markdown)", "operator"
    ),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: udsink <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", "`udsink <command> --help` describes a command's options; `udsink --version`."]
    return "\n".join(lines)


def version() -> str:
    try:
        return importlib.metadata.version("udsink")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed as a distribution)"


def _missing_extra(name: str, cmd: Command, err: ModuleNotFoundError) -> int:
    print(
        f"udsink {name}: needs the '{cmd.extra}' extra (module {err.name} is not installed); "
        f"from a clone of the repository: pip install -e '.[{cmd.extra}]'",
        file=sys.stderr,
    )
    return EXIT_USAGE


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if args[0] in {"-V", "--version"}:
        print(f"udsink {version()}")
        return 0
    name, rest = args[0], args[1:]
    cmd = COMMANDS.get(name)
    if cmd is None:
        print(f"udsink: unknown command {name!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_USAGE
    # A module of ours that is missing means a broken install: let that traceback through.
    ours = ("udsink_cli", "udsink_operator", "sink_runtime")
    try:
        return cmd.load()(rest)  # a command may import its extra's modules as it starts
    except ModuleNotFoundError as err:
        if err.name is None or err.name.startswith(ours):
            raise
        return _missing_extra(name, cmd, err)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _dispatch(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`| head`): nothing more to say. Point stdout at /dev/null so the
        # interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
