"""The Kafka source's commit timing and ack answers (sources/commit_coalescer.py), broker-free:
the clock is a number the test passes in, the acks are real one-shot replies."""

from __future__ import annotations

import asyncio

from sink_runtime.dataplane.sources.commit_coalescer import CommitCoalescer
from sink_runtime.dataplane.sources.owner_thread import Reply

P = ("t", 0)
INTERVAL, RETRY, WAIT, TICK = 0.1, 1.0, 10.0, 0.5


def coalescer() -> CommitCoalescer:
    return CommitCoalescer(interval_s=INTERVAL, retry_s=RETRY, wait_s=WAIT)


async def answers(*replies: Reply[int]) -> list[int | None]:
    """What each reply was answered with (None: not answered)."""
    await asyncio.sleep(0)  # replies are settled through the loop
    return [r.future.result() if r.future.done() else None for r in replies]


def test_a_commit_is_due_once_the_interval_passed_and_none_is_in_flight() -> None:
    c = coalescer()
    assert c.due(100.0)  # nothing sent yet
    c.sent(1, {P: 10}, 100.0, forced=False)
    assert not c.due(100.05)
    assert not c.due(200.0)  # one at a time: its answer lets the next one go
    assert c.due(100.0, force=True)  # a revocation or close does not wait
    assert c.answered(1, 0) is False
    assert not c.due(100.05)
    assert c.due(100.1)


def test_a_forced_commit_in_flight_does_not_hold_back_the_next() -> None:
    c = coalescer()
    c.sent(1, {P: 10}, 100.0, forced=True)
    assert c.due(100.2)


def test_after_a_failure_the_next_commit_waits_the_retry_delay() -> None:
    c = coalescer()
    c.sent(1, {P: 10}, 100.0, forced=False)
    c.answered(1, 0)
    c.failed(100.0)
    assert not c.due(100.5)
    assert c.due(101.0)


async def test_acks_wait_for_the_next_commit_and_the_first_carries_the_count() -> None:
    c = coalescer()
    early, late, after = Reply[int](), Reply[int](), Reply[int]()
    c.waiting(early, 100.0)
    c.waiting(late, 100.01)
    c.sent(7, {P: 10}, 100.02, forced=False)
    c.waiting(after, 100.03)  # joins the next commit, not this one
    assert c.find({P: 10}) == 7 and c.find({P: 11}) is None
    assert c.answered(7, 5) is True
    assert await answers(early, late, after) == [5, 0, None]
    assert c.acks_waiting == 1


async def test_an_answer_no_ack_waits_for_is_left_to_the_caller_to_count() -> None:
    c = coalescer()
    c.sent(3, {P: 10}, 100.0, forced=True)
    assert c.answered(3, 4) is False


async def test_acks_are_answered_with_zero_at_their_deadline_or_when_nothing_covers_them() -> None:
    c = coalescer()
    old, unsent, covered = Reply[int](), Reply[int](), Reply[int]()
    c.waiting(old, 100.0)
    c.sent(1, {P: 10}, 100.0, forced=False)
    c.waiting(unsent, 105.0)
    c.waiting(covered, 105.0)
    c.expire(100.0 + WAIT)
    assert await answers(old, unsent, covered) == [0, None, None]
    c.sent(2, {P: 12}, 110.0, forced=True)
    assert await answers(unsent) == [None]  # attached to commit 2 now
    late = Reply[int]()
    c.waiting(late, 110.0)
    c.settle_unsent()  # nothing left to commit for it
    assert await answers(late, unsent, covered) == [0, None, None]


async def test_giving_up_returns_the_commits_and_answers_every_ack() -> None:
    c = coalescer()
    waiting = Reply[int]()
    c.waiting(waiting, 100.0)
    c.sent(1, {P: 10}, 100.0, forced=False)
    c.sent(2, {P: 11}, 100.5, forced=True)
    assert c.oldest_sent() == 100.0
    gone = c.give_up()
    assert sorted(gone) == [1, 2] and dict(gone[1].offsets) == {P: 10}
    assert await answers(waiting) == [0]
    assert not c.in_flight and c.oldest_sent() is None


async def test_idle_wait_wakes_for_answers_and_for_due_commits() -> None:
    c = coalescer()
    assert c.idle_wait(100.0, TICK) == TICK  # nothing to do
    c.waiting(Reply[int](), 100.0)
    assert c.idle_wait(100.0, TICK) == 0.0  # never committed: due now
    c.sent(1, {P: 10}, 100.0, forced=False)
    assert c.idle_wait(100.0, TICK) == INTERVAL  # serve the answer soon
    c.answered(1, 0)
    c.waiting(Reply[int](), 100.02)
    assert abs(c.idle_wait(100.02, TICK) - 0.08) < 1e-9  # until the interval has passed
    c.failed(100.02)
    assert c.idle_wait(100.02, TICK) == TICK  # the retry delay is longer than a tick
