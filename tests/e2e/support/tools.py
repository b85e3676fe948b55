"""Running the real command-line tools of this tier (kubectl, helm, ctr): their output is
captured, and a failure shows the command, its exit code and the end of both streams."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


def run_tool(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` in `env`; with `check`, a non-zero exit fails with its stdout and stderr."""
    result = subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`{' '.join(argv)}` exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
    return result
