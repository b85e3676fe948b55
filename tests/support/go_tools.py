"""Tools the tests run that build from the Go module proxy (helm, actionlint, promtool).

Each `scripts/ensure_*.sh` builds its tool once per machine into the cache and prints its path
afterwards. When it cannot, the test fails with the build's output: a check never passes
because its tool was missing.
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[2] / "scripts"


def ensured(script: Path, *args: str) -> Path:
    """The path an ensure script prints last (building the tool on first use)."""
    result = subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, timeout=3600, check=False
    )
    lines = result.stdout.strip().splitlines()
    path = Path(lines[-1]) if lines else None
    if result.returncode != 0 or path is None or not path.is_file():
        pytest.fail(
            f"cannot provide {' '.join(args) or script.name} with {script} "
            f"(exit {result.returncode}):\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    return path


@cache
def go_tool(name: str) -> Path:
    """actionlint or promtool (scripts/ensure_go_tool.sh)."""
    return ensured(SCRIPTS / "ensure_go_tool.sh", name)
