"""Rebalances, outside in: no commit ever covers a record no sink answered.

Several real data planes (processes) share one consumer group on the real broker, each with
its own sink process (tests/faults/fault_sink.py), slow or fast. One topic of 6 partitions
holds keyed records, read in batches of 100. The group goes through every kind of rebalance,
each one cued by how much the sinks have recorded (never a fixed sleep), with the eager
protocol and librdkafka's default assignment, so partitions are revoked from every member and
most come straight back to the member that had them:
- scale-up: a member joins while the others have batches read ahead;
- scale-down: a member gets SIGTERM;
- a crash: a member gets SIGKILL and its replacement joins at once;
- a stall: a member's sink holds one batch longer than `max.poll.interval.ms`, so the member
  is put out of the group and joins again.
The slow sinks take longer per batch than the source's FRESH_S, so members serve rebalance
events between reads with records read ahead (the timing at which the old rules lost records).

An independent monitor (tests/faults/commit_monitor.py) polls the group's committed offsets
every 50 ms for the whole run and fails the test on any poll that shows a committed offset
beyond a record no sink had answered by then, and at the end on any record never handled.
Once every partition is committed to its end with records unhandled (they are lost: nothing
will read them again), the schedule stops there and the test reports what it saw.
Thresholds and the members picked are seeded (harness.SEED, printed in every failure).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from sink_runtime.config import RuntimeConfig, UserSinkConfig
from tests.faults import harness
from tests.faults.commit_monitor import CommitMonitor, utc_time
from tests.faults.harness import (
    Member,
    all_ids,
    eventually,
    group_name,
    kafka_config,
    member,
    produce_numbered,
)
from tests.support.kafka_broker import KafkaBroker

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(420)]

PARTITIONS = 6
RECORDS = 9000
BATCH = 100
# Per datum: a slow batch of 100 takes 1.2 s (longer than the source's FRESH_S, so the member
# serves rebalance events between reads with batches read ahead), a fast one 0.15 s.
SLOW = ("--per-datum", "0.012")
FAST = ("--per-datum", "0.0015")
# The smallest session the broker allows (group.min.session.timeout.ms), and a poll interval
# as small (librdkafka wants it no smaller): a crashed member is noticed in 6 s, and a stall
# of STALL_S puts its member out of the group.
CONSUMER = {"session.timeout.ms": "6000", "max.poll.interval.ms": "6000"}
STALL_S = 10.0
STEP_S = 90.0  # the bound on each awaited step
# The run: C joins at 30 % handled, B leaves at 65 %; here every kind follows at a
# seeded point, scale-ups and scale-downs alternating.
SCHEDULE = ("scale-up", "scale-down", "scale-up", "kill-and-replace", "stall")


async def test_no_commit_covers_an_unanswered_record_across_rebalances(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    broker = kafka_broker
    r = harness.rng("rebalance")
    seed = f"seed {harness.SEED} (replay: UDSINK_FAULT_SEED={harness.SEED})"
    topic = broker.create_topic(broker.unique_topic("rebalance"), PARTITIONS)
    grp = group_name("rebalance")
    produce_numbered(broker, topic, RECORDS, PARTITIONS)
    end = broker.end_offsets(topic)
    monitor = CommitMonitor(broker, grp, topic, PARTITIONS)
    members: dict[str, Member] = {}
    live: list[str] = []
    cued: list[str] = []  # "<kind> <member> at <time>"
    exercised: set[str] = set()

    def describe() -> str:
        lines = [
            seed,
            monitor.summary(),
            f"{monitor.handled_count()} of {RECORDS} records handled; rebalances cued: {cued}",
            "the group as the broker showed it (each stable membership, from when; UTC):",
            monitor.group_history(),
        ]
        for m in members.values():
            lines.append(f"--- {m.name} {' '.join(m.sink.args)}: its partitions, last 12 lines")
            lines += m.rebalance_log()[-12:]
        return "\n".join(lines)

    def all_committed() -> bool:
        return monitor.committed() == end

    async def handled(fraction: float) -> bool:
        """Whether `fraction` of the records were handled; False when it cannot happen any
        more (every partition is committed to its end: records were lost)."""
        want = int(fraction * RECORDS)
        await eventually(
            lambda: monitor.handled_count() >= want or all_committed(),
            STEP_S,
            f"{want} records handled",
            describe,
        )
        return monitor.handled_count() >= want

    def owns(name: str) -> bool:
        return bool(monitor.owners().get(name))

    async with AsyncExitStack() as stack:
        stack.enter_context(monitor.running())

        async def join(speed: tuple[str, ...]) -> str:
            name = f"m{len(members)}"

            def runtime(sink: UserSinkConfig) -> RuntimeConfig:
                consumer = {**CONSUMER, "client.id": name}  # its name in the group's view
                return kafka_config(broker, topic, grp, sink, batch=BATCH, consumer=consumer)

            args = (*speed, "--stall", str(STALL_S))
            m = await stack.enter_async_context(member(tmp_path, name, runtime, *args))
            monitor.watch(m.sink.record_path)
            members[name] = m
            live.append(name)
            return name

        async def owning(name: str, what: str) -> None:
            await eventually(lambda: owns(name), STEP_S, what, describe)

        async def leave(sig: signal.Signals) -> str:
            name = r.choice(live)
            live.remove(name)
            await members[name].stop(sig)
            return name

        async def scale_up() -> str:
            fast = any(m.sink.args[:2] == FAST for m in members.values())
            name = await join(SLOW if fast else FAST)  # at least one fast member
            await owning(name, f"the new member {name} owns partitions")
            return name

        async def scale_down() -> str:
            return await leave(signal.SIGTERM)

        async def kill_and_replace() -> str:
            killed = await leave(signal.SIGKILL)
            name = await join(SLOW)
            await owning(name, f"{killed}'s replacement {name} owns partitions")
            return killed

        async def stall() -> str:
            # A member with records left to read (its sink stalls at its next batch).
            committed = monitor.committed()
            left = {p for p, offset in end.items() if committed.get(p, 0) < offset}
            busy = [n for n in live if monitor.owners().get(n, frozenset()) & left]
            if not busy:
                return "not reached: no member has records left"
            name = r.choice(busy)
            process = members[name].sink.process
            assert process is not None
            process.signal(signal.SIGUSR1)
            await eventually(
                lambda: name not in monitor.owners() or all_committed(),
                STEP_S,
                f"{name} put out of the group once its sink stalled {STALL_S:.0f}s",
                describe,
            )
            if not all_committed():
                await owning(name, f"{name} back in the group after its stall")
            return name

        steps: dict[str, Callable[[], Awaitable[str]]] = {
            "scale-up": scale_up,
            "scale-down": scale_down,
            "kill-and-replace": kill_and_replace,
            "stall": stall,
        }
        for _ in range(2):
            await join(SLOW)
        at = r.uniform(0.08, 0.12)
        for kind in SCHEDULE:
            if not await handled(at):
                cued.append(f"{kind} not reached: all committed with records unhandled")
                break
            when = utc_time(time.time())
            who = await steps[kind]()
            cued.append(f"{kind} {who} at {when}")
            if who in members:  # else "not reached: ..."
                exercised.add(kind)
            at = min(0.9, max(at, monitor.handled_count() / RECORDS) + r.uniform(0.07, 0.1))

        # Liveness: every partition is committed to its end within the bound.
        await eventually(all_committed, STEP_S, f"every partition committed to {end}", describe)
        for name in list(live):
            live.remove(name)
            await members[name].stop()
    monitor.stop()

    taken = {f"{topic}:{p}:{o}" for p, offsets in monitor.handled().items() for o in offsets}
    lost = sorted(all_ids(topic, RECORDS, PARTITIONS) - taken, key=_coordinates)
    problems = []
    if monitor.error is not None or monitor.polls < 100:
        problems.append(f"the monitor did not watch the run: {monitor.summary()}")
    if monitor.violations:
        problems.append("premature commits: " + monitor.summary().splitlines()[0])
    if lost:
        problems.append(f"{len(lost)} records never handled by any sink: {_ranges(lost)}")
    missed = sorted(set(SCHEDULE) - exercised)
    if missed and not problems:
        problems.append(f"the run did not exercise {missed}: it proves less than it says")
    assert not problems, "\n".join([*problems, "", describe()])
    print(describe())  # what the run went through, for `pytest -rP`


def _coordinates(datum_id: str) -> tuple[int, int]:
    _, partition, offset = datum_id.rsplit(":", 2)
    return int(partition), int(offset)


def _ranges(ids: list[str]) -> str:
    """`p5[100..1499] p4[7]`: sorted ids as runs per partition."""
    runs: list[list[int]] = []
    for partition, offset in map(_coordinates, ids):
        if runs and runs[-1][0] == partition and runs[-1][2] == offset - 1:
            runs[-1][2] = offset
        else:
            runs.append([partition, offset, offset])
    return " ".join(f"p{p}[{a}..{b}]" if a != b else f"p{p}[{a}]" for p, a, b in runs)
