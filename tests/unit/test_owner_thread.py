"""The owner thread (sources/owner_thread.py), broker-free: typed jobs run one at a time, in
order, on one thread; replies cross back to the loop once; what the worker holds is settled
by the worker on its own thread, never from the loop.

The worker here is a small commit-making worker built on the real CommitCoalescer: its
"consumer" is a gate the test opens, standing for a call into librdkafka that takes long.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import pytest

from sink_runtime.dataplane.sources.commit_coalescer import CommitCoalescer
from sink_runtime.dataplane.sources.owner_thread import Job, OwnerThread, Shared
from tests.support.waiting import until_async


class Stopped(RuntimeError):
    pass


@dataclass(eq=False)
class Echo(Job[str]):
    text: str


@dataclass(eq=False)
class Boom(Job[None]):
    pass


@dataclass(eq=False)
class Acked(Job[int]):
    """Handled records: the reply is what the commit covering them confirmed."""

    records: int


@dataclass(eq=False)
class CommitSlowly(Job[None]):
    """Send a commit of what is acked, wait inside the "consumer" until `gate` opens, then
    take the broker's answer."""

    gate: threading.Event = field(default_factory=threading.Event)


Jobs = Echo | Boom | Acked | CommitSlowly


class Worker:
    def __init__(self) -> None:
        self.threads: list[str] = []
        self.order: list[str] = []
        self.commits = CommitCoalescer(interval_s=3600.0)  # commits only when told here
        self.handled = 0
        self.stopped_on: str | None = None

    def perform(self, job: Jobs) -> None:
        self.threads.append(threading.current_thread().name)
        match job:
            case Echo():
                self.order.append(job.text)
                job.reply.settle(job.text.upper())
            case Boom():
                raise ValueError("the handle said no")
            case Acked():
                self.handled += job.records
                self.commits.waiting(job.reply, now=0.0)
            case CommitSlowly():
                self.commits.sent(1, {("t", 0): self.handled}, now=0.0, forced=True)
                job.gate.wait()
                self.commits.answered(1, self.handled)
                job.reply.settle(None)

    def idle(self) -> None:
        pass

    def idle_wait(self) -> float:
        return 0.05

    def stopped(self) -> None:
        self.stopped_on = threading.current_thread().name
        self.commits.settle_all()


def started(worker: Worker) -> OwnerThread[Jobs]:
    owner: OwnerThread[Jobs] = OwnerThread("owner", lambda: Stopped("stopped"))
    owner.start(worker)
    return owner


async def test_jobs_run_in_order_on_the_owner_thread_and_reply_once() -> None:
    worker = Worker()
    owner = started(worker)
    jobs = [Echo(t) for t in "abc"]
    for job in jobs:
        owner.submit(job)
    assert [await j.reply.future for j in jobs] == ["A", "B", "C"]
    assert worker.order == ["a", "b", "c"]
    assert set(worker.threads) == {"owner"}
    owner.stop()
    assert await owner.join(5.0)
    assert worker.stopped_on == "owner"


async def test_a_failing_job_fails_its_reply_and_the_thread_goes_on() -> None:
    owner = started(Worker())
    boom, after = Boom(), Echo("x")
    owner.submit(boom)
    owner.submit(after)
    with pytest.raises(ValueError, match="said no"):
        await boom.reply.future
    assert await after.reply.future == "X"
    owner.stop()
    assert await owner.join(5.0)


async def test_an_abandoned_job_is_not_run_and_submit_after_stop_refuses() -> None:
    worker = Worker()
    owner = started(worker)
    held = CommitSlowly()
    owner.submit(held)  # keeps the thread busy
    skipped = Echo("skipped")
    owner.submit(skipped)
    skipped.reply.future.cancel()
    held.gate.set()
    await held.reply.future
    owner.stop()
    assert await owner.join(5.0)
    assert worker.order == []
    with pytest.raises(Stopped):
        owner.submit(Echo("late"))


async def test_stalled_for_counts_inside_a_job_only() -> None:
    owner = started(Worker())
    assert owner.stalled_for() == 0.0
    held = CommitSlowly()
    owner.submit(held)
    await until_async(lambda: owner.stalled_for() > 0.0, "the thread is inside the job", within=5)
    owner.inside.beat()  # a beat from outside a job keeps the clock, it does not start it
    held.gate.set()
    await held.reply.future
    await until_async(lambda: owner.stalled_for() == 0.0, "the thread is idle", within=5)
    owner.stop()
    assert await owner.join(5.0)


async def test_stopping_while_a_commit_is_in_flight_leaves_its_acks_to_the_owner_thread() -> None:
    # What close() does: stop the thread and wait a little for it. The thread is still inside
    # a call (the commit); the acks waiting for that commit must not be answered from the
    # loop with 0: the commit may yet be accepted, and its answer says how many it confirmed.
    worker = Worker()
    owner = started(worker)
    first, second = Acked(3), Acked(2)
    owner.submit(first)
    owner.submit(second)
    commit = CommitSlowly()
    owner.submit(commit)
    await until_async(lambda: worker.commits.acks_waiting == 2, "both acks wait", within=5)
    owner.stop()
    assert not await owner.join(0.05)  # close() gave up waiting; the thread is still busy
    await asyncio.sleep(0)  # anything already handed to the loop would run now
    assert not first.reply.future.done() and not second.reply.future.done()
    commit.gate.set()  # the broker answers
    assert await first.reply.future == 5  # the first ack of a commit carries its count
    assert await second.reply.future == 0
    assert await owner.join(5.0)


async def test_acks_no_commit_answered_are_answered_when_the_thread_stops() -> None:
    worker = Worker()
    owner = started(worker)
    acked = Acked(4)
    owner.submit(acked)
    owner.stop()
    assert await acked.reply.future == 0  # settled by stopped(), on the owner thread
    assert await owner.join(5.0)
    assert worker.stopped_on == "owner"


def test_shared_hands_out_whole_values() -> None:
    shared: Shared[tuple[int, int]] = Shared((0, 0))
    done = threading.Event()

    def writer() -> None:
        for i in range(20_000):
            shared.set((i, i))
        shared.update(lambda pair: (pair[0] + 1, pair[1] + 1))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        a, b = shared.get()
        assert a == b
    thread.join()
    assert shared.get() == (20_000, 20_000)
