"""The fault-injection tier's harness: the real data plane as a process, sinks as processes.

Everything is observed from outside, as an operator would: the data plane's own HTTP endpoints
(/livez, /readyz, /metrics) over loopback, its log file, the sink's record of what it was
given, and the broker's committed offsets. Nothing here reaches into a data plane object.
Every process started here dies with the test process (parent-death signal) and is stopped
by PID when its context ends.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sink_runtime.config import KafkaSourceConfig, RuntimeConfig, UserSinkConfig
from tests.support.dataplane_process import DataPlaneProcess
from tests.support.kafka_broker import KafkaBroker
from tests.support.sink_process import SinkProcess
from tests.support.waiting import until_async

FAULT_SINK = Path(__file__).parent / "fault_sink.py"
# Seeded so a failing run can be replayed: UDSINK_FAULT_SEED=<seed printed in the failure>.
SEED = int(os.environ.get("UDSINK_FAULT_SEED", "20261125"))


def rng(test_name: str) -> random.Random:
    return random.Random(f"{SEED}:{test_name}")


@dataclass
class FaultSinkProcess:
    """tests/faults/fault_sink.py in its own socket directory."""

    directory: Path
    args: tuple[str, ...] = ()
    process: SinkProcess | None = None

    @property
    def record_path(self) -> Path:
        return self.directory / "delivered.txt"

    def config(self, **overrides: Any) -> UserSinkConfig:
        return UserSinkConfig.for_container("udsink", str(self.directory)).model_copy(
            update={"startup_timeout_ms": 30_000, **overrides}
        )

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = ("--dir", str(self.directory), "--record", str(self.record_path), *self.args)
        self.process = SinkProcess(FAULT_SINK, str(self.directory), args=args)
        await self.process.start()

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()

    def deliveries(self) -> list[tuple[float, str]]:
        """(time, id) of every SUCCESS answered, in order (with redeliveries)."""
        if not self.record_path.exists():
            return []
        out = []
        for line in self.record_path.read_text().splitlines():
            stamp, _, datum_id = line.partition(" ")
            if datum_id:
                out.append((float(stamp), datum_id))
        return out

    def ids(self) -> set[str]:
        return {i for _, i in self.deliveries()}


@asynccontextmanager
async def fault_sink(directory: Path, *args: str) -> AsyncIterator[FaultSinkProcess]:
    sink = FaultSinkProcess(directory, args)
    try:
        await sink.start()
        yield sink
    finally:
        await sink.stop()


@contextlib.contextmanager
def data_plane(workdir: Path, config: RuntimeConfig, name: str = "dp") -> Any:
    dp = DataPlaneProcess(workdir, config, name, context=f"seed {SEED}")
    dp.start()
    try:
        yield dp
    finally:
        dp.stop()


@dataclass
class Member:
    """A consumer-group member as a pod runs it: a data plane process with its own sink."""

    name: str
    sink: FaultSinkProcess
    dp: DataPlaneProcess

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Stop the data plane with `sig` (SIGKILL: a crash), then its sink; the exit code."""
        code = await self.dp.stopped(sig)
        await self.sink.stop()
        return code

    def rebalance_log(self, width: int = 160) -> list[str]:
        """The data plane's log lines about its partitions (assigned, revoked, lost, dropped,
        put out of the group), shortened: the time, the message, no id lists."""
        out = []
        for line in self.dp.log().splitlines():
            if _REBALANCE_LINE.search(line):
                short = _LOG_LINE.match(line)
                text = f"{short.group(1)} {short.group(2)}" if short else line
                out.append(_EXTRA_FIELDS.sub("", text)[:width])
        return out


_REBALANCE_LINE = re.compile(
    r"kafka source: (assigned|revoked|lost|not delivering|not committing)|MAX_POLL_EXCEEDED"
    r"|data plane stopped"
)
# `2026-12-07T17:41:06.560+00:00 WARNING logger: kafka source: text fields=...`
_LOG_LINE = re.compile(r"\S*T(\S+?)\+\S* \S+ \S+: (?:kafka source: )?(.*)")
_EXTRA_FIELDS = re.compile(r" (batch_size|settings|ids)=.*")


@asynccontextmanager
async def member(
    workdir: Path, name: str, runtime: Callable[[UserSinkConfig], RuntimeConfig], *sink_args: str
) -> AsyncIterator[Member]:
    """A member named `name`: its sink in `workdir/name`, its data plane's log `name.log`;
    `runtime` makes the data plane's config from the sink's."""
    async with fault_sink(workdir / name, *sink_args) as sink:
        with data_plane(workdir, runtime(sink.config()), name) as dp:
            yield Member(name, sink, dp)


def kafka_config(
    broker: KafkaBroker,
    topic: str,
    group: str,
    sink: UserSinkConfig,
    *,
    batch: int = 100,
    consumer: dict[str, str] | None = None,
    **extra: Any,
) -> RuntimeConfig:
    source = KafkaSourceConfig(
        brokers=[broker.bootstrap],
        topics=[topic],
        consumer_group=group,
        config={"reconnect.backoff.max.ms": "1000", **(consumer or {})},
    )
    return RuntimeConfig.model_validate(
        {
            "name": "faults",
            "source": source.model_dump(by_alias=True),
            "sink": sink.model_dump(by_alias=True),
            "batch": {"size": batch, "timeoutMs": 200},
            "shutdownGraceMs": 10_000,
            **extra,
        }
    )


async def eventually(
    check: Callable[[], bool], timeout_s: float, what: str, describe: Callable[[], str]
) -> None:
    """Wait until `check()` holds; fail naming `what` and the data plane's state otherwise."""
    await until_async(check, what, within=timeout_s, every=0.25, details=describe)


def produce_numbered(
    broker: KafkaBroker, topic: str, count: int, partitions: int = 1, start: int = 0
) -> None:
    """Records numbered `start` .. `start + count - 1`, round-robin over the partitions."""
    broker.produce(
        topic,
        [
            {"value": str(i).encode(), "key": f"k{i % 7}".encode(), "partition": i % partitions}
            for i in range(start, start + count)
        ],
    )


def all_ids(topic: str, count: int, partitions: int = 1) -> set[str]:
    per: dict[int, int] = {}
    out = set()
    for i in range(count):
        p = i % partitions
        out.add(f"{topic}:{p}:{per.get(p, 0)}")
        per[p] = per.get(p, 0) + 1
    return out


def committed_total(broker: KafkaBroker, group: str, topic: str) -> int:
    with contextlib.suppress(Exception):
        return sum(broker.committed(group, topic).values())
    return -1


def group_name(name: str) -> str:
    return f"faults-{name}-{os.getpid()}-{time.monotonic_ns()}"


def assert_commits_covered(
    broker: KafkaBroker, grp: str, topic: str, taken: set[str], dp: DataPlaneProcess
) -> None:
    """Safety: every offset below a committed one was taken by a sink."""
    for partition, upto in broker.committed(grp, topic).items():
        missing = [o for o in range(upto) if f"{topic}:{partition}:{o}" not in taken]
        assert not missing, (
            f"{topic}[{partition}] committed up to {upto} but offsets {missing[:10]} were "
            f"never taken by a sink\n{dp.describe()}"
        )


@dataclass
class Scenario:
    """One topic of numbered records, one fault sink, one data plane reading into it."""

    broker: KafkaBroker
    topic: str
    group: str
    sink: FaultSinkProcess
    dp: DataPlaneProcess

    def committed(self) -> int:
        return committed_total(self.broker, self.group, self.topic)

    def assert_commits_covered(self, taken: set[str] | None = None) -> None:
        taken = self.sink.ids() if taken is None else taken
        assert_commits_covered(self.broker, self.group, self.topic, taken, self.dp)

    async def run_to_completion(self, count: int, timeout_s: float = 120.0) -> None:
        """Liveness: everything is delivered and committed within the bound (one partition)."""
        await eventually(
            lambda: self.committed() == count,
            timeout_s,
            f"all {count} offsets committed",
            self.dp.describe,
        )
        assert all_ids(self.topic, count) <= self.sink.ids(), self.dp.describe()
        self.assert_commits_covered()


@asynccontextmanager
async def scenario(
    broker: KafkaBroker,
    workdir: Path,
    name: str,
    *,
    records: int,
    partitions: int = 1,
    sink_args: tuple[str, ...] = (),
    write_timeout_ms: int | None = None,
    **config: Any,
) -> AsyncIterator[Scenario]:
    topic = broker.create_topic(broker.unique_topic(name), partitions)
    grp = group_name(name)
    produce_numbered(broker, topic, records, partitions)
    async with fault_sink(workdir / "sink", *sink_args) as sink:
        overrides = {} if write_timeout_ms is None else {"write_timeout_ms": write_timeout_ms}
        runtime = kafka_config(broker, topic, grp, sink.config(**overrides), **config)
        with data_plane(workdir, runtime) as dp:
            yield Scenario(broker, topic, grp, sink, dp)
