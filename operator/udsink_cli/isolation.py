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
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from udsink_operator.api import UDSink

from sink_runtime.config import constants
from udsink_cli import oci_runtime

# Where every Numaflow SDK expects its sockets and server-info files (docs/sdk.md, "Running").
SDK_SOCKET_DIR = constants.SOCKET_DIR

# A shell function: `rebuild_parent STASH PARENT SKIP` parks PARENT at STASH and lays a tmpfs
# over PARENT holding every entry of the original but SKIP (bound back one by one), so that
# SKIP can be made (or left absent) without writing the real PARENT. Tests use it too, to
# show a command a /var/run/numaflow that is absent or present whatever the machine has.
REBUILD_PARENT = r"""
rebuild_parent() {
  mount -n --rbind "$2" "$1"
  mount -n -t tmpfs -o mode=755 udsink-run "$2"
  for entry in "$1"/* "$1"/.[!.]*; do
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    name=${entry##*/}
    [ "$name" != "$3" ] || continue
    if [ -L "$entry" ]; then
      ln -s "$(readlink "$entry")" "$2/$name"
    elif [ -d "$entry" ]; then
      mkdir "$2/$name" && mount -n --rbind "$entry" "$2/$name"
    else
      touch "$2/$name" && mount -n --bind "$entry" "$2/$name"
    fi
  done
}
"""

# Runs inside the new mount namespace: $1 the socket dir to show at SDK_SOCKET_DIR, $2 an empty
# directory to park the original parent in, $3 SDK_SOCKET_DIR; then the command.
_MOUNT_SCRIPT = (
    "set -eu\n"
    + REBUILD_PARENT
    + r"""
src=$1 stash=$2 target=$3
shift 3
if [ ! -d "$target" ]; then
  rebuild_parent "$stash" "$(readlink -f "$(dirname "$target")")" "${target##*/}"
  mkdir "$target"
fi
mount -n --bind "$src" "$target"
exec "$@"
"""
)


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
# A full engine command (e.g. `podman --root DIR --runroot DIR`) instead of the first of ENGINES.
ENGINE_ENV = "UDSINK_CONTAINER_ENGINE"


# Kubernetes' imagePullPolicy as the engine's --pull.
_PULL = {"Always": "always", "IfNotPresent": "missing", "Never": "never"}


@dataclass(frozen=True)
class ImageSink:
    """A sink container from the UDSink (or --sink-image), run with the local engine."""

    image: str
    pull: str = "missing"  # the engine's --pull: always, missing or never
    command: list[str] = field(default_factory=list)
    args: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Variables set from Secrets/ConfigMaps/the pod in a cluster: not available locally.
    unresolved_env: list[str] = field(default_factory=list)


def image_sinks(
    udsink: UDSink, container_types: Iterable[constants.ContainerType], sink_image: str | None
) -> dict[constants.ContainerType, ImageSink]:
    """The image of each of `container_types` the UDSink names (`sink_image` for the primary)."""
    spec = udsink.spec.sink
    secondary = {
        constants.CONTAINER_FALLBACK: spec.fallback,
        constants.CONTAINER_ON_SUCCESS: spec.on_success,
    }
    out: dict[constants.ContainerType, ImageSink] = {}
    for ctype in container_types:
        holder = secondary.get(ctype, spec)
        ud = getattr(holder, "udsink", None) if holder is not None else None
        container = ud.container if ud is not None else None
        if ctype == constants.CONTAINER_UDSINK and sink_image:
            out[ctype] = ImageSink(image=sink_image)
        elif container is not None:
            env = {e.name: e.value for e in container.env or [] if e.value is not None}
            unresolved = [e.name for e in container.env or [] if e.value is None]
            if container.env_from:
                unresolved.append("envFrom")
            out[ctype] = ImageSink(
                image=container.image,
                pull=_PULL.get(container.image_pull_policy or "", "missing"),
                command=list(container.command or []),
                args=None if container.args is None else list(container.args),
                env=env,
                unresolved_env=unresolved,
            )
    return out


@cache
def container_engine() -> tuple[str, ...]:
    """The engine command: $UDSINK_CONTAINER_ENGINE, else the first of podman/docker that answers.

    Raises IsolationError naming what was tried and what to do.
    """
    configured = os.environ.get(ENGINE_ENV, "").strip()
    candidates = [shlex.split(configured)] if configured else [[name] for name in ENGINES]
    tried: list[str] = []
    for argv in candidates:
        path = shutil.which(argv[0])
        if path is None:
            tried.append(f"{argv[0]}: not installed")
            continue
        try:
            engine = with_runtime((path, *argv[1:]))
        except oci_runtime.OciRuntimeError as err:
            raise IsolationError(f"{argv[0]}: {err}") from None
        probe = subprocess.run(
            [*engine, "version"], capture_output=True, text=True, check=False, timeout=60
        )
        if probe.returncode == 0:
            return engine
        last = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
        tried.append(f"{argv[0]}: {last}")
    raise IsolationError(
        "no container engine to run the sink image ("
        + "; ".join(tried)
        + f"): install podman or start docker, set {ENGINE_ENV}, or give a local command "
        "(--sink-cmd or the annotation local.udsink.dev/sink-command)"
    )


def with_runtime(engine: tuple[str, ...]) -> tuple[str, ...]:
    """podman told which OCI runtime to use (udsink_cli.oci_runtime), unless the engine
    command already names one; docker's daemon has its own configuration."""
    if Path(engine[0]).name != "podman" or any(
        arg == "--runtime" or arg.startswith("--runtime=") for arg in engine
    ):
        return engine
    return (engine[0], "--runtime", oci_runtime.oci_runtime(), *engine[1:])


def image_command(
    engine: Sequence[str], sink: ImageSink, *, name: str, socket_dir: Path, container_type: str
) -> list[str]:
    """The `<engine> run` argv for one sink image, in a container named `name`."""
    argv = [
        *engine,
        "run",
        "--rm",
        "--name",
        name,
        "--network",
        "none",
        "--pull",
        sink.pull,
        "-v",
        f"{socket_dir}:{SDK_SOCKET_DIR}",
    ]
    for key, value in {**sink.env, constants.CONTAINER_TYPE_ENV: container_type}.items():
        argv += ["-e", f"{key}={value}"]
    rest = list(sink.args or [])
    if sink.command:
        # Kubernetes' command replaces the entrypoint (and with it the image's arguments).
        argv += ["--entrypoint", sink.command[0]]
        rest = sink.command[1:] + rest
    return [*argv, sink.image, *rest]


# --- the hook sidecars.py calls ---


@dataclass
class Launch:
    """How one sink process is started, what to tell the user, and what to undo after it."""

    argv: list[str]
    notes: list[str] = field(default_factory=list)
    undo: Callable[[], None] = lambda: None


def launch(
    container_type: constants.ContainerType,
    command: Sequence[str],
    socket_dir: Path,
    image: ImageSink | None,
    cwd: Path | None = None,
) -> Launch:
    """The launch of one sink: its image in a container, or its command with a private
    /var/run/numaflow; where that cannot be made the command runs as it is (a sink of ours
    finds its socket through UDSINK_* variables) and a note says what an SDK sink needs."""
    if image is not None:
        engine = container_engine()
        name = f"udsink-run-{container_type}-{uuid.uuid4().hex[:8]}"
        runs_with = Path(engine[0]).name
        if "--runtime" in engine:
            runs_with += f" (OCI runtime {engine[engine.index('--runtime') + 1]})"
        notes = [f"{container_type} sink: image {image.image} runs with {runs_with}"]
        if image.unresolved_env:
            notes.append(
                f"{container_type} sink: not set locally (from Secrets/ConfigMaps/the pod in a "
                f"cluster): {', '.join(image.unresolved_env)}"
            )
        argv = image_command(
            engine, image, name=name, socket_dir=socket_dir, container_type=container_type
        )
        return Launch(argv, notes, undo=lambda: remove_container(engine, name))
    if command and not _runnable(command[0], cwd):
        raise IsolationError(f"{command[0]}: no such file or command")
    try:
        wrapped = private_run_dir(command, socket_dir)
    except IsolationError as err:
        return Launch(list(command), [f"{container_type} sink: {err}"])
    return Launch(wrapped.argv, undo=wrapped.cleanup)


def _runnable(program: str, cwd: Path | None) -> bool:
    """`program` names a file (relative to `cwd`) or a command on PATH: checked here because
    inside the namespace wrapper a missing program is only an exit code from the shell."""
    if "/" in program:
        return ((cwd or Path.cwd()) / program).exists()
    return shutil.which(program) is not None


def remove_container(engine: Sequence[str], name: str) -> None:
    """Remove the container `name` at once (nothing happens when it is already gone): called
    once the sink had its time to stop (the engine's client passes SIGTERM on to it)."""
    subprocess.run(
        [*engine, "rm", "--force", "--time", "0", name],
        capture_output=True,
        check=False,
        timeout=60,
    )
