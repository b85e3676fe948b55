"""Run a sink program (`python <file>.py`) as its own process, as it runs in a pod.

The socket and server-info paths go through the environment (UDSINK_SOCKET_PATH,
UDSINK_SERVER_INFO_PATH), like any SDK sink run locally. `start()` returns once the
server-info file is complete; if the process dies first, or the file does not appear, the
error carries the process's output, so a test never waits blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from udsink_cli.lifeline import tied_to_parent

from sink_runtime.serverinfo import ServerInfo, read_server_info

ROOT = Path(__file__).resolve().parents[2]


class SinkProcess:
    def __init__(
        self,
        script: str | Path,
        directory: str,
        *,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        args: tuple[str, ...] = (),
    ) -> None:
        self.socket_path = f"{directory}/sink.sock"
        self.server_info_path = f"{directory}/sinker-server-info"
        self.log_path = f"{directory}/sink.log"
        self._cmd = [python, str(script), *args]
        self._env = {
            **os.environ,
            "UDSINK_SOCKET_PATH": self.socket_path,
            "UDSINK_SERVER_INFO_PATH": self.server_info_path,
            "UDSINK_LOG_FORMAT": "json",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def output(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "wb") as log:
            return subprocess.Popen(
                tied_to_parent(self._cmd, env=self._env),
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self, timeout_s: float = 30.0) -> ServerInfo:
        self.proc = self._spawn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            info = read_server_info(self.server_info_path)
            if info is not None:
                return info
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"sink {' '.join(self._cmd)} exited with {self.proc.returncode} before "
                    f"serving; its output:\n{self.output()}"
                )
            if loop.time() > deadline:
                raise RuntimeError(
                    f"sink {' '.join(self._cmd)} wrote no server-info within {timeout_s}s; "
                    f"its output:\n{self.output()}"
                )
            await asyncio.sleep(0.02)

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        proc = self.proc
        try:
            return await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout_s)
        except TimeoutError:
            proc.kill()
            raise RuntimeError(
                f"sink did not exit within {timeout_s}s; its output:\n{self.output()}"
            ) from None

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(RuntimeError):
                await self.wait(15)


@asynccontextmanager
async def sink_process(
    script: str | Path, directory: str | Path, **options: object
) -> AsyncIterator[SinkProcess]:
    sink = SinkProcess(script, directory, **options)  # type: ignore[arg-type]
    try:
        await sink.start()
        yield sink
    finally:
        await sink.stop()
