"""Reading a UDSink file: one home for the rules every command that takes `-f` follows.

A file (or standard input for `-`) of YAML documents; errors name the file and say what was
found instead. `udsink run`, `udsink replay` and `udsink offsets` take exactly one UDSink.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import yaml
from udsink_operator.api import SpecError, UDSink, parse_udsink

from udsink_cli.run import EXIT_USAGE, STDIN, RunError


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
