"""Run a Numaflow SDK sink unmodified, as its container would run in a pod.

The sink is told nothing but NUMAFLOW_UD_CONTAINER_TYPE: it listens on its SDK's default
`/var/run/numaflow/...` paths, which a private mount namespace (udsink_cli.isolation, the same
code `udsink run` uses) binds to a test-owned socket directory; the data plane reaches it there.
`start()` returns once the server-info file is complete, or fails with the sink's output.

The interop sinks print one `INTEROP {json}` line per datum they receive (see
tests/interop/README.md); `received()` parses them, so tests count from the sink's own output.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from udsink_cli.isolation import PrivateRunDir, private_run_dir
from udsink_cli.lifeline import tied_to_parent

from sink_runtime.config import UserSinkConfig, constants
from sink_runtime.serverinfo import ServerInfo, ServerInfoError, read_server_info

LINE_PREFIX = "INTEROP "


@dataclass(frozen=True)
class Received:
    """One datum as an interop sink printed it."""

    sdk: str
    role: str
    id: str
    keys: list[str]
    value: str
    headers: dict[str, str]
    answer: str


class UnmodifiedSink:
    """One SDK sink process with a private /var/run/numaflow bound to `socket_dir`."""

    def __init__(
        self,
        command: Sequence[str],
        socket_dir: Path,
        log_path: Path,
        container_type: constants.ContainerType = "udsink",
    ) -> None:
        self.command = list(command)
        self.socket_dir = socket_dir
        self.log_path = log_path
        self.container_type = container_type
        self.config = UserSinkConfig.for_container(container_type, socket_dir=str(socket_dir))
        self.proc: subprocess.Popen[bytes] | None = None
        self._wrapped: PrivateRunDir | None = None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def received(self) -> list[Received]:
        out = []
        for line in self.output().splitlines():
            if line.startswith(LINE_PREFIX):
                out.append(Received(**json.loads(line[len(LINE_PREFIX) :])))
        return out

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        env = {**os.environ, constants.CONTAINER_TYPE_ENV: self.container_type}
        with self.log_path.open("wb") as log:
            return subprocess.Popen(
                tied_to_parent(argv, env=env),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def start(self, timeout_s: float = 60.0) -> ServerInfo:
        self._wrapped = private_run_dir(self.command, self.socket_dir)
        self.proc = self._spawn(self._wrapped.argv)
        deadline = time.monotonic() + timeout_s
        last = "no server-info file yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.describe()} exited ({self.proc.returncode}) before serving:\n"
                    f"{self.output()[-4000:]}"
                )
            try:
                info = read_server_info(self.config.server_info_path)
            except ServerInfoError as err:
                info, last = None, str(err)
            if info is not None:
                return info
            await asyncio.sleep(0.1)
        raise RuntimeError(
            f"{self.describe()}: no complete {self.config.server_info_path} after {timeout_s}s "
            f"({last}):\n{self.output()[-4000:]}"
        )

    def describe(self) -> str:
        return f"{self.container_type} sink `{' '.join(self.command)}`"

    async def stop(self) -> int | None:
        proc, self.proc = self.proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        if self._wrapped is not None:
            self._wrapped.cleanup()
        return code
