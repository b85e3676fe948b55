"""The data plane as its container runs it: `python -m sink_runtime.dataplane --config FILE`.

A subprocess of the test (dying with it), its log in a file, its HTTP endpoints readable from
outside; `wait_committed` watches the consumer group's offsets on the real broker until they
reach the end of the topic.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from udsink_cli.lifeline import tied_to_parent

from sink_runtime.config import (
    Backoff,
    BatchConfig,
    KafkaSourceConfig,
    ObservabilityConfig,
    RetryStrategy,
    RuntimeConfig,
    UserSinkConfig,
    constants,
)
from tests.support.kafka_broker import KafkaBroker
from tests.support.ports import free_port
from tests.support.processes import terminate

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 90.0


def http_get(url: str) -> tuple[int, str]:
    """One GET of a data plane's HTTP endpoint: (status, body); (0, error) when unanswered."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, OSError) as err:
        return 0, str(err)


@dataclass
class DataPlaneProcess:
    """`python -m sink_runtime.dataplane --config <file>`, as the runtime container runs it.

    With `observed`, its logs are text and its HTTP endpoints (probes, /metrics) listen on
    `port` on loopback whatever the config says, for tests that watch it from outside.
    """

    workdir: Path
    config: RuntimeConfig
    name: str = "dp"
    observed: bool = True
    context: str = ""  # said in describe(), e.g. the seed that replays a failing run
    env: dict[str, str] = field(default_factory=dict)  # on top of this process's environment
    proc: subprocess.Popen[bytes] | None = None
    port: int = field(default_factory=free_port)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        config = self.config
        if self.observed:
            obs = config.observability.model_copy(
                update={
                    "metrics_host": "127.0.0.1",
                    "metrics_port": self.port,
                    "log_format": "text",
                }
            )
            config = config.model_copy(update={"observability": obs})
        path = self.workdir / f"{self.name}.json"
        path.write_text(config.to_json())
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **self.env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                tied_to_parent(
                    [sys.executable, "-m", "sink_runtime.dataplane", "--config", str(path)],
                    env=env,
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str) -> tuple[int, str]:
        """One GET on the data plane's HTTP port: (status, body); (0, error) when unanswered."""
        return http_get(f"http://127.0.0.1:{self.port}{path}")

    def metric(self, name: str, **labels: str) -> float:
        status, body = self.get(constants.METRICS_PATH)
        if status != 200:
            return float("nan")
        total = 0.0
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def send_signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> int | None:
        """The exit code, or None when still running after `timeout_s`."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    async def stopped(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Send `sig`, wait for the exit (SIGKILL after `timeout_s`); the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return await asyncio.to_thread(self.proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, grace_s=40, kill_wait_s=10)

    def describe(self) -> str:
        tail = "\n".join(self.log().splitlines()[-60:])
        context = f" ({self.context})" if self.context else ""
        return f"data plane {self.name}{context}; last log lines:\n{tail}"


def start_data_plane(
    workdir: Path, config: RuntimeConfig, name: str = "dp", *, observed: bool = False
) -> DataPlaneProcess:
    """A started data plane (not observed: the config's own logging and ports)."""
    dp = DataPlaneProcess(workdir, config, name, observed=observed)
    dp.start()
    return dp


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


def kafka_to_sink(
    broker: KafkaBroker, topic: str, group: str, sink: UserSinkConfig, **overrides: Any
) -> RuntimeConfig:
    """A data plane reading `topic` as `group` into `sink`: batches of 50 or 200 ms, three
    quick retries, metrics on a free loopback port; `overrides` replace any of it."""
    options: dict[str, Any] = {
        "source": KafkaSourceConfig(
            brokers=[broker.bootstrap], topics=[topic], consumer_group=group
        ),
        "sink": sink,
        "batch": BatchConfig(size=50, timeout_ms=200),
        "retry_strategy": RetryStrategy(
            backoff=Backoff(interval_ms=5, cap_ms=50, jitter=0.0, steps=3)
        ),
        "observability": ObservabilityConfig(metrics_port=0, metrics_host="127.0.0.1"),
        "shutdown_grace_ms": 10_000,
    }
    return RuntimeConfig(**(options | overrides))
