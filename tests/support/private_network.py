"""A command run in a private network namespace in which only the loopback exists (and is up).

For a process that binds fixed ports on every address (the Numaflow peer's metrics and
runtime-errors servers): inside its own namespace two runs never clash, and nothing it opens
is reachable from the machine. Whatever it talks to must live in the same namespace, since
the machine's loopback is another interface from in there.

As root a plain network namespace; otherwise a user + network namespace where the kernel
allows unprivileged ones (the caller then runs as the namespace's root, its files still owned
by the caller outside).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache

# Set in the wrapped command's environment: lets a program know it already runs inside.
INSIDE_ENV = "UDSINK_PRIVATE_NETWORK"

# $0 names the wrapper in `ps`; the rest is the command, exec'd once `lo` is up.
_SCRIPT = 'set -eu\nip link set lo up\nexec "$@"\n'


def _unshare_flags() -> list[str]:
    if os.geteuid() == 0:
        return ["--net"]
    return ["--user", "--map-root-user", "--net"]


def inside() -> bool:
    """True in a process started by `in_private_network` (or one of its children)."""
    return os.environ.get(INSIDE_ENV) == "1"


@cache
def network_problem() -> str | None:
    """Why a private network namespace with `lo` up cannot be made here, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "`unshare` (util-linux) is not installed"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed: it brings the namespace's loopback up"
    probe = subprocess.run(
        [unshare, *_unshare_flags(), "--", "/bin/sh", "-c", _SCRIPT, "probe", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        why = probe.stderr.strip().splitlines()[-1:] or [f"exit {probe.returncode}"]
        kind = "network" if os.geteuid() == 0 else "user + network"
        return f"cannot make a {kind} namespace with its loopback up ({why[0]})"
    return None


def in_private_network(argv: list[str]) -> list[str]:
    """`argv` wrapped to run (same PID: nothing forks) in a new network namespace with `lo` up.

    Raises RuntimeError with the reason where that namespace cannot be made.
    """
    problem = network_problem()
    if problem is not None:
        raise RuntimeError(f"no private network namespace: {problem}")
    unshare = shutil.which("unshare")
    assert unshare is not None  # network_problem checked it
    return [unshare, *_unshare_flags(), "--", "/bin/sh", "-c", _SCRIPT, "udsink-private-net", *argv]


def private_network_env() -> dict[str, str]:
    """The environment to give the wrapped command (marks it as inside)."""
    return {**os.environ, INSIDE_ENV: "1"}
