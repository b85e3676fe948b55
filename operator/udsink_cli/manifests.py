"""Reading a UDSink file: one home for the rules every command that takes `-f` follows.

A file (or standard input for `-`) of YAML documents. Every error names the file and says what
was found instead: a missing or unreadable file, YAML that does not parse (the error points
into the file by name), no UDSink in it. `udsink render` takes every UDSink of a file; `udsink
run`, `udsink replay` and `udsink offsets` take exactly one.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from udsink_operator import constants
from udsink_operator.api import SpecError, UDSink, parse_udsink

STDIN = "-"  # the file name that means standard input


class InputError(Exception):
    """The file cannot be used; the message names it and says why."""


def display_name(source: str) -> str:
    """How messages name the file (`<stdin>` for `-`)."""
    return "<stdin>" if source == STDIN else source


def _read_text(source: str) -> io.StringIO:
    """The file's text as a named stream, so YAML errors name the file."""
    if source == STDIN:
        stream = io.StringIO(sys.stdin.read())
        stream.name = display_name(source)
        return stream
    try:
        stream = io.StringIO(Path(source).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{source} is not UTF-8 text: {err.reason}") from None
    except OSError as err:
        raise InputError(f"cannot read {source}: {err.strerror}") from None
    stream.name = source
    return stream


def read_documents(source: str) -> list[Any]:
    """Every non-empty YAML document of the file."""
    stream = _read_text(source)
    try:
        return [d for d in yaml.safe_load_all(stream) if d is not None]
    except yaml.YAMLError as err:
        raise InputError(f"{stream.name} is not valid YAML: {err}") from None


def is_udsink(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == constants.KIND


def kinds_found(docs: Sequence[Any]) -> str:
    """What a file holds instead of the expected UDSink, for an error message."""
    kinds = [str(d.get("kind", "no kind")) if isinstance(d, dict) else "not a map" for d in docs]
    return f"found {', '.join(kinds)}" if kinds else "it is empty"


def load_udsink(source: str) -> UDSink:
    """The one UDSink of the file, parsed; InputError otherwise (an invalid UDSink's message
    lists every issue, one per line)."""
    name = display_name(source)
    docs = read_documents(source)
    found = [d for d in docs if is_udsink(d)]
    if len(found) != 1:
        what = kinds_found(docs)
        if len(found) > 1:
            what = f"found {len(found)} UDSinks; give one file per run"
        raise InputError(f"{name} must hold exactly one document of kind UDSink ({what})")
    try:
        return parse_udsink(found[0])
    except SpecError as err:
        issues = "\n".join(f"  {issue}" for issue in err.issues)
        raise InputError(f"{name} is not a valid UDSink:\n{issues}") from None
