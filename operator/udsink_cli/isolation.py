"""How an unmodified Numaflow SDK sink is launched so that it finds its sockets.

Every Numaflow SDK listens on `/var/run/numaflow/<file>.sock` and writes its server-info file
beside it; in a pod that directory is a volume shared with the data plane. Here the same view is
made for one process, without touching the machine's real `/var/run/numaflow`:

- a local command runs in a private mount namespace (made with `unshare`: as root a plain mount
  namespace, otherwise a user + mount namespace where the kernel allows unprivileged ones) in
  which the run's socket directory is bound at `/var/run/numaflow`. When that directory does not
  exist, a tmpfs is laid over its parent (`/run`) inside the namespace, the parent's entries are
  bound back one by one, and an empty `numaflow` mount point is made in the tmpfs, so the real
  parent is never written;
- an image runs in the local container engine (docker or podman) with the socket directory
  mounted at `/var/run/numaflow`, no network, its env from the spec.

Kept apart from sidecars.py (which supervises the processes) so that what is launched and how it
is supervised change independently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sink_runtime.config import constants

# Where every Numaflow SDK expects its sockets and server-info files (CONTRACT.md).
SDK_SOCKET_DIR = constants.SOCKET_DIR

# Runs inside the new mount namespace: $1 the socket dir to show at SDK_SOCKET_DIR, $2 an empty
# directory to park the original parent in, $3 SDK_SOCKET_DIR; then the command.
_MOUNT_SCRIPT = r"""
set -eu
src=$1 stash=$2 target=$3
shift 3
if [ ! -d "$target" ]; then
  parent=$(readlink -f "$(dirname "$target")")
  mount -n --rbind "$parent" "$stash"
  mount -n -t tmpfs -o mode=755 udsink-run "$parent"
  for entry in "$stash"/* "$stash"/.[!.]*; do
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    name=${entry##*/}
    if [ -L "$entry" ]; then
      ln -s "$(readlink "$entry")" "$parent/$name"
    elif [ -d "$entry" ]; then
      mkdir "$parent/$name" && mount -n --rbind "$entry" "$parent/$name"
    else
      touch "$parent/$name" && mount -n --bind "$entry" "$parent/$name"
    fi
  done
  mkdir "$target"
fi
mount -n --bind "$src" "$target"
exec "$@"
"""


class IsolationError(RuntimeError):
    """An unmodified sink cannot be given its socket directory here; the message says what to do."""


@dataclass(frozen=True)
class PrivateRunDir:
    """A command wrapped so that it sees `socket_dir` at /var/run/numaflow."""

    argv: list[str]
    stash: Path

    def cleanup(self) -> None:
        """Remove the stash directory (call after the process has exited)."""
        shutil.rmtree(self.stash, ignore_errors=True)


def _unshare_flags() -> list[str]:
    if os.geteuid() == 0:
        return ["--mount", "--propagation", "private"]
    return ["--user", "--map-root-user", "--mount", "--propagation", "private"]


@cache
def namespace_problem() -> str | None:
    """Why a private mount namespace cannot be made here, or None when it can."""
    if not Path("/proc/self/ns/mnt").exists():
        return "this system has no Linux mount namespaces"
    unshare = shutil.which("unshare")
    if unshare is None:
        return "`unshare` (util-linux) is not installed"
    probe = subprocess.run(
        [unshare, *_unshare_flags(), "--", "true"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        why = probe.stderr.strip().splitlines()[-1:] or [f"exit {probe.returncode}"]
        kind = "mount" if os.geteuid() == 0 else "user + mount"
        return f"cannot make a {kind} namespace ({why[0]})"
    return None


def private_run_dir(command: Sequence[str], socket_dir: Path) -> PrivateRunDir:
    """`command` wrapped to run with `socket_dir` bound at /var/run/numaflow.

    Raises IsolationError (one line with what to do instead) where that is impossible.
    """
    problem = namespace_problem()
    if problem is not None:
        raise IsolationError(
            f"cannot give the sink a private {SDK_SOCKET_DIR}: {problem}; point the sink at "
            f"{socket_dir} with its SDK's socket-path option, or run it as an image "
            "(--sink-image)"
        )
    unshare = shutil.which("unshare")
    assert unshare is not None  # namespace_problem checked it
    stash = Path(tempfile.mkdtemp(prefix="udsink-run-stash-"))
    argv = [
        unshare,
        *_unshare_flags(),
        "--",
        "/bin/sh",
        "-c",
        _MOUNT_SCRIPT,
        "udsink-isolate",
        str(socket_dir),
        str(stash),
        SDK_SOCKET_DIR,
        *command,
    ]
    return PrivateRunDir(argv=argv, stash=stash)


# --- container images ---

ENGINES = ("podman", "docker")


@cache
def container_engine() -> str:
    """The first of podman/docker that is installed and answers; IsolationError otherwise."""
    tried: list[str] = []
    for name in ENGINES:
        path = shutil.which(name)
        if path is None:
            tried.append(f"{name}: not installed")
            continue
        probe = subprocess.run(
            [path, "info", "--format", "{{.Host.Arch}}" if name == "podman" else "{{.ID}}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if probe.returncode == 0:
            return path
        last = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
        tried.append(f"{name}: {last}")
    raise IsolationError(
        "no container engine to run the sink image: "
        + "; ".join(tried)
        + ". Install podman or start docker, or give a local command with --sink-cmd"
    )


def image_command(
    engine: str,
    image: str,
    *,
    name: str,
    socket_dir: Path,
    container_type: str,
    env: Mapping[str, str],
    args: Sequence[str] = (),
) -> list[str]:
    """The `<engine> run` argv for one sink image; the container is named `name`."""
    argv = [
        engine,
        "run",
        "--rm",
        "--name",
        name,
        "--network",
        "none",
        "--pull",
        "never",
        "-v",
        f"{socket_dir}:{SDK_SOCKET_DIR}",
        "-e",
        f"{constants.CONTAINER_TYPE_ENV}={container_type}",
    ]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    return [*argv, image, *args]


def remove_container(engine: str, name: str) -> None:
    """Stop and remove the container `name` (no error when it is already gone)."""
    subprocess.run(
        [engine, "rm", "--force", "--time", "5", name],
        capture_output=True,
        check=False,
        timeout=60,
    )
