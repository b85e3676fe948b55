"""Virtualenvs of pinned packages, built once and shared under `$UDSINK_CACHE`.

A venv is built (python -m venv + pip install) under a file lock, so concurrent sessions
share it, and is marked complete only when its check imports; a broken or half-built venv is
rebuilt. When pip cannot install it, the error carries pip's output: what needs it fails,
never skips. Used for pynumaflow (tests/support/pynumaflow_env.py) and for the pinned stub
generator (scripts/gen_proto.py).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

_COMPLETE = ".udsink-complete"


def cache_dir() -> Path:
    return Path(os.environ.get("UDSINK_CACHE") or "~/.cache/udsink").expanduser()


def run_checked(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )


def _usable(python: Path, check: str) -> bool:
    if not python.exists():
        return False
    return subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0


def ensure_venv(name: str, requirements: list[str], check: str) -> Path:
    """The python executable of the venv `$UDSINK_CACHE/<name>` holding `requirements`, built
    if missing; `check` is Python code that must run without error in it."""
    venv = cache_dir() / name
    python = venv / "bin" / "python"
    if (venv / _COMPLETE).exists() and _usable(python, check):
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / _COMPLETE).exists() and _usable(python, check):
            return python  # another session built it while we waited
        shutil.rmtree(venv, ignore_errors=True)
        run_checked([sys.executable, "-m", "venv", str(venv)], f"creating the venv {venv}")
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        run_checked([*pip, *requirements], f"installing {' '.join(requirements)} into {venv}")
        if not _usable(python, check):
            raise RuntimeError(f"{' '.join(requirements)} installed into {venv} but do not import")
        (venv / _COMPLETE).write_text(" ".join(requirements))
    return python
