"""Dispatch `udsink <command> ...` to the module that owns the command.

Subcommand modules are imported only when used, so `udsink runtime` works in an image that
has only the runtime's dependencies, and `udsink crd` in one that has only the operator's.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple, cast


class Command(NamedTuple):
    module: str
    function: str
    summary: str


COMMANDS: dict[str, Command] = {
    "run": Command(
        "udsink_cli.local",
        "main",
        "run a UDSink locally: data plane in-process, sinks as subprocesses",
    ),
    "runtime": Command(
        "sink_runtime.dataplane.app", "main", "run the data plane from a RuntimeConfig JSON file"
    ),
    "operator": Command("udsink_operator.cli", "operator_main", "run the Kubernetes operator"),
    "crd": Command("udsink_operator.cli", "crd_main", "print the UDSink CustomResourceDefinition"),
    "render": Command(
        "udsink_operator.cli", "render_main", "print the children a UDSink produces, as YAML"
    ),
    "docs-reference": Command(
        "udsink_operator.reference", "main", "print the UDSink field reference (markdown)"
    ),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: udsink <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", "`udsink <command> --help` describes a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    cmd = COMMANDS.get(name)
    if cmd is None:
        print(f"udsink: unknown command {name!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(cmd.module)
    except ImportError as err:
        print(
            f"udsink {name}: cannot load {cmd.module} ({err}); "
            "is the matching extra installed (pip install 'udsink[kafka,operator,cli]')?",
            file=sys.stderr,
        )
        return 2
    func = cast(Callable[[list[str]], int], getattr(module, cmd.function))
    return func(rest)


if __name__ == "__main__":
    raise SystemExit(main())
