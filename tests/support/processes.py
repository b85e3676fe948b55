"""Stopping a process a test started: SIGTERM, then SIGKILL when it does not end in time."""

from __future__ import annotations

import subprocess
from typing import Any


def terminate(process: subprocess.Popen[Any], *, grace_s: float, kill_wait_s: float) -> None:
    """SIGTERM `process` (if it still runs) and wait `grace_s` for it to exit; then SIGKILL
    it and wait `kill_wait_s`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=kill_wait_s)
