"""A separate virtualenv with pynumaflow, the independent sink.v1 implementation we test against.

Separate process, separate venv: pynumaflow's generated `sink.v1` types would collide with
ours in one process's protobuf descriptor pool, and it pins its own protobuf major version.
The venv lives at `$UDSINK_CACHE/pynumaflow-<version>` (default `~/.cache/udsink`), built once
by tests/support/cached_venv.py; when pip cannot install it the interop tests fail, never skip.

Used by the `pynumaflow_python` fixture (tests/conftest.py) and by bench/sdk_server.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.cached_venv import cache_dir, ensure_venv

__all__ = ["PYNUMAFLOW_VERSION", "cache_dir", "ensure_pynumaflow_python", "venv_dir"]

PYNUMAFLOW_VERSION = "0.14.0"
_NAME = f"pynumaflow-{PYNUMAFLOW_VERSION}"


def venv_dir() -> Path:
    return cache_dir() / _NAME


def ensure_pynumaflow_python() -> Path:
    """The python executable of a venv with pynumaflow==PYNUMAFLOW_VERSION, built if missing."""
    check = (
        "import importlib.metadata as m, pynumaflow.sinker, pynumaflow.proto.sinker.sink_pb2; "
        f"assert m.version('pynumaflow') == {PYNUMAFLOW_VERSION!r}"
    )
    return ensure_venv(_NAME, [f"pynumaflow=={PYNUMAFLOW_VERSION}"], check)


def pynumaflow_sink_stubs(python: Path) -> Path:
    """The directory of pynumaflow's generated sink.v1 stubs inside that venv."""
    out = subprocess.run(
        [str(python), "-c", "import pynumaflow.proto.sinker as p; print(p.__path__[0])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())
