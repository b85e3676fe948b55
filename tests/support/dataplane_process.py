"""The data plane as its container runs it: `python -m sink_runtime.dataplane --config FILE`.

A subprocess of the test (dying with it), its log in a file; `wait_committed` watches the
consumer group's offsets on the real broker, from outside, until they reach the end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from udsink_cli.lifeline import tied_to_parent

from sink_runtime.config import RuntimeConfig
from tests.support.kafka_broker import KafkaBroker

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 90.0


class DataPlaneProcess:
    """`python -m sink_runtime.dataplane --config FILE`, its log in a file."""

    def __init__(self, config: RuntimeConfig, workdir: Path) -> None:
        self.config_path = workdir / "config.json"
        self.config_path.write_text(config.to_json())
        self.log_path = workdir / f"dataplane-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-m", "sink_runtime.dataplane", "--config", str(self.config_path)]
        self.proc = subprocess.Popen(
            tied_to_parent(argv, env=env, cwd=REPO),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code


async def wait_committed(
    broker: KafkaBroker, group: str, topic: str, proc: DataPlaneProcess
) -> None:
    """Until the group's committed offsets reach the end of every partition."""
    end = await asyncio.to_thread(broker.end_offsets, topic)
    deadline = time.monotonic() + WAIT_S
    committed: dict[int, int] = {}
    while time.monotonic() < deadline:
        committed = await asyncio.to_thread(broker.committed, group, topic)
        if committed == end:
            return
        if proc.proc.poll() is not None:
            raise AssertionError(f"data plane exited ({proc.proc.returncode}):\n{proc.log()}")
        await asyncio.sleep(0.2)
    raise AssertionError(f"committed {committed}, end {end} after {WAIT_S}s:\n{proc.log()[-4000:]}")
