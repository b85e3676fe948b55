"""Local stand-ins for the pod's sink sidecars: each user-defined sink as a subprocess.

In a pod, the sink containers share an emptyDir with the runtime and find their sockets
through NUMAFLOW_UD_CONTAINER_TYPE. Locally the same processes run as children of
`udsink run`, pointed at sockets in a private temporary directory. This module starts them,
waits for their server-info files, explains a sink that never comes up, passes every line it
prints to the run's output (prefixed by its role), and makes sure none outlives the run: the
run stops it, and the kernel kills it when the run itself dies (the parent-death signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from threading import Thread
from typing import IO

from sink_runtime.config import UserSinkConfig, constants
from sink_runtime.dataplane.protocols import FALLBACK, ON_SUCCESS, PRIMARY, SinkRole
from sink_runtime.serverinfo import ServerInfoError, read_server_info
from udsink_cli import isolation
from udsink_cli.lifeline import tied_to_parent

STDERR_TAIL_LINES = 20
# The role a sink plays, named as the data plane's logs and metrics name it.
ROLES: dict[constants.ContainerType, SinkRole] = {
    constants.CONTAINER_UDSINK: PRIMARY,
    constants.CONTAINER_FALLBACK: FALLBACK,
    constants.CONTAINER_ON_SUCCESS: ON_SUCCESS,
}
# A line the sink printed: (its role, the line without its newline).
LineSink = Callable[[str, str], None]


class SidecarError(RuntimeError):
    """A sink subprocess could not be started or did not come up; the message says why."""


@dataclass
class SidecarProcess:
    """One user-defined sink running as a local subprocess."""

    container_type: constants.ContainerType
    command: Sequence[str]
    socket_dir: Path
    cwd: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    image: isolation.ImageSink | None = None  # run this image instead of `command`
    # Where its output lines go (None: nowhere; the stderr tail is kept either way).
    on_line: LineSink | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _stderr_tail: deque[str] = field(
        default_factory=lambda: deque(maxlen=STDERR_TAIL_LINES), init=False, repr=False
    )
    _pumps: list[Thread] = field(default_factory=list, init=False, repr=False)
    _launch: isolation.Launch | None = field(default=None, init=False, repr=False)

    @property
    def role(self) -> str:
        return ROLES[self.container_type]

    @property
    def config(self) -> UserSinkConfig:
        return UserSinkConfig.for_container(self.container_type, socket_dir=str(self.socket_dir))

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def describe(self) -> str:
        if self.image is not None:
            return f"{self.role} sink image {self.image.image}"
        return f"{self.role} sink `{shlex.join(self.command)}`"

    def stderr_tail(self) -> list[str]:
        return list(self._stderr_tail)

    def start(self) -> None:
        cfg = self.config
        env = {
            # Its stderr lines are shown to a person when it fails: text unless the user
            # chose a log format.
            constants.LOG_FORMAT_ENV: "text",
            **os.environ,
            **self.extra_env,
            constants.CONTAINER_TYPE_ENV: self.container_type,
            constants.SOCKET_PATH_ENV: cfg.socket_path,
            constants.SERVER_INFO_PATH_ENV: cfg.server_info_path,
            "PYTHONUNBUFFERED": "1",
        }
        # --- launch hook (udsink_cli.isolation): the image in a container, or the
        # command with a private /var/run/numaflow, so unmodified SDK sinks find their socket.
        try:
            self._launch = isolation.launch(
                self.container_type, self.command, self.socket_dir, self.image, self.cwd
            )
        except isolation.IsolationError as err:
            raise SidecarError(f"cannot start {self.describe()}: {err}") from None
        for note in self._launch.notes:
            print(f"note: {note}", file=sys.stderr)
        # --- end of the launch hook
        try:
            self._proc = subprocess.Popen(
                tied_to_parent(self._launch.argv, env=env, cwd=self.cwd),
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Own session: Ctrl-C in the terminal reaches only us, and we stop the sink
                # ourselves after the data plane has drained. The kernel kills it if we die.
                start_new_session=True,
            )
        except OSError as err:
            what = err.filename or self.command[0]
            raise SidecarError(f"cannot start {self.describe()}: {err.strerror} ({what})") from None
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for stream, keep in ((self._proc.stdout, False), (self._proc.stderr, True)):
            pump = Thread(target=self._pump, args=(stream, keep), daemon=True)
            pump.start()
            self._pumps.append(pump)

    def _pump(self, stream: IO[bytes], keep_tail: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if keep_tail:
                self._stderr_tail.append(line)
            if self.on_line is not None:
                self.on_line(self.role, line)

    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until the sink wrote its server-info file (complete, with the end marker)."""
        info = Path(self.config.server_info_path)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.exit_code()
            if code is not None:
                raise SidecarError(self._explain(f"exited with code {code} before it was ready"))
            try:
                if read_server_info(info) is not None:
                    return
            except ServerInfoError as err:
                raise SidecarError(
                    self._explain(f"wrote a server-info file we cannot use: {err}")
                ) from None
            await asyncio.sleep(0.05)
        raise SidecarError(
            self._explain(f"did not write its server-info file {info} within {timeout_s:g}s")
        )

    def _explain(self, what: str) -> str:
        tail = self.stderr_tail()
        lines = [f"{self.describe()} {what}"]
        if tail:
            lines.append(f"last {len(tail)} stderr lines:")
            lines += [f"  | {line}" for line in tail]
        else:
            lines.append("it wrote nothing to stderr")
        return "\n".join(lines)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self) -> None:
        """Block until the sink's process has exited."""
        if self._proc is not None:
            self._proc.wait()

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` to the sink's process group (its children too), if it still runs."""
        if self.running():
            assert self._proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)

    def finish(self) -> None:
        """After it exited (or was killed): reap it, collect its last output, undo its launch
        (the container, the namespace's stash) and remove its sockets."""
        if self._proc is not None:
            self.send(signal.SIGKILL)  # never reap a sink that still runs: it would block
            self._proc.wait()
        for pump in self._pumps:
            pump.join(timeout=1.0)
        if self._launch is not None:
            self._launch.undo()
        cfg = self.config
        for path in (cfg.socket_path, cfg.server_info_path):
            Path(path).unlink(missing_ok=True)
