"""A separate virtualenv with pynumaflow, the independent sink.v1 implementation we test against.

Separate process, separate venv: pynumaflow's generated `sink.v1` types would collide with
ours in one process's protobuf descriptor pool, and it pins its own protobuf major version.
The venv lives at `$UDSINK_CACHE/pynumaflow-<version>` (default `~/.cache/udsink`), is built
once (python -m venv + pip install) under a file lock so concurrent sessions share it, and is
marked complete only when pynumaflow imports; a broken or half-built venv is rebuilt. When pip
cannot install it, the error carries pip's output: the interop tests fail, never skip.

Used by the `pynumaflow_python` fixture (tests/conftest.py) and by bench/sdk_server.py.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

PYNUMAFLOW_VERSION = "0.14.0"
_COMPLETE = ".udsink-complete"


def cache_dir() -> Path:
    return Path(os.environ.get("UDSINK_CACHE") or "~/.cache/udsink").expanduser()


def venv_dir() -> Path:
    return cache_dir() / f"pynumaflow-{PYNUMAFLOW_VERSION}"


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )


def _usable(python: Path) -> bool:
    if not python.exists():
        return False
    check = (
        "import importlib.metadata as m, pynumaflow.sinker, pynumaflow.proto.sinker.sink_pb2; "
        f"assert m.version('pynumaflow') == {PYNUMAFLOW_VERSION!r}"
    )
    return subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0


def ensure_pynumaflow_python() -> Path:
    """The python executable of a venv with pynumaflow==PYNUMAFLOW_VERSION, built if missing."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    if (venv / _COMPLETE).exists() and _usable(python):
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / _COMPLETE).exists() and _usable(python):
            return python  # another session built it while we waited
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)], f"creating the venv {venv}")
        _run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                f"pynumaflow=={PYNUMAFLOW_VERSION}",
            ],
            f"installing pynumaflow=={PYNUMAFLOW_VERSION} into {venv}",
        )
        if not _usable(python):
            raise RuntimeError(
                f"pynumaflow=={PYNUMAFLOW_VERSION} installed into {venv} but does not import"
            )
        (venv / _COMPLETE).write_text(PYNUMAFLOW_VERSION)
    return python


def pynumaflow_sink_stubs(python: Path) -> Path:
    """The directory of pynumaflow's generated sink.v1 stubs inside that venv."""
    out = subprocess.run(
        [str(python), "-c", "import pynumaflow.proto.sinker as p; print(p.__path__[0])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())
