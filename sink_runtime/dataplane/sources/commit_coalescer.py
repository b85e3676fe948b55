"""When the Kafka source commits, and who waits for which commit's answer.

Pure and driven by the clock its caller passes in (`now`, monotonic seconds): no Kafka client,
no thread of its own. The source's owner thread is its only user; what the offsets are is the
offset ledger's business, this module decides only timing and answers:
- Acked batches are committed together at most every `interval_s`, one commit at a time (its
  answer lets the next go), and after a failed commit the next waits `retry_s`. A forced commit
  (a revocation, close) goes at once and does not hold back the next.
- Each ack waits for the first commit sent after it (`waiting`), at most `wait_s`; it is then
  answered with 0. The first ack of a commit is answered with the number of handled records
  the commit confirmed, the others with 0 (the forwarder sums the answers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sink_runtime.dataplane.sources.offset_ledger import Partition
from sink_runtime.dataplane.sources.owner_thread import Reply

# Acked batches wait at most this long for the commit that covers them.
COMMIT_INTERVAL_S = 0.1
# After a failed commit, the next one waits this long (a refusal repeats until the group
# settles, and so would the warning).
COMMIT_RETRY_S = 1.0
# An ack waits at most this long for the answer to its commit; the commit itself goes on
# (librdkafka answers every commit; a deferred one can take up to session.timeout.ms plus
# socket.timeout.ms) and later answers are counted by the acks after it.
COMMIT_WAIT_S = 10.0


@dataclass(slots=True, eq=False)
class _Waiter:
    """An ack waiting for the answer to the commit that covers its batch."""

    reply: Reply[int]
    deadline: float
    commit: int | None = None  # the commit it waits for; None until one is sent


@dataclass(frozen=True, slots=True)
class SentCommit:
    """A commit handed to the consumer, waiting for its answer."""

    offsets: Mapping[Partition, int]
    sent: float
    forced: bool  # made at a revocation or close: it does not hold back the next one


class CommitCoalescer:
    """See the module doc. Commits are named by the ledger's commit ids."""

    def __init__(
        self,
        interval_s: float = COMMIT_INTERVAL_S,
        retry_s: float = COMMIT_RETRY_S,
        wait_s: float = COMMIT_WAIT_S,
    ) -> None:
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._wait_s = wait_s
        self._waiters: list[_Waiter] = []
        self._commits: dict[int, SentCommit] = {}
        self._last_commit = 0.0
        self._not_before = 0.0  # after a failed commit

    # --- acks ---

    def waiting(self, reply: Reply[int], now: float) -> None:
        """An ack joins: `reply` is answered by the next commit sent (or at its deadline)."""
        self._waiters.append(_Waiter(reply, now + self._wait_s))

    @property
    def acks_waiting(self) -> int:
        return len(self._waiters)

    def expire(self, now: float) -> None:
        """Answer with 0 the acks that waited `wait_s`."""
        self._settle([w for w in self._waiters if w.deadline <= now])

    def settle_unsent(self) -> None:
        """Answer with 0 the acks no commit covers (nothing to commit, or none could be sent)."""
        self._settle([w for w in self._waiters if w.commit is None])

    def settle_all(self) -> None:
        """Answer every ack with 0 (the consumer is gone: what they handled is read again)."""
        self._settle(self._waiters)

    # --- commits ---

    def due(self, now: float, *, force: bool = False) -> bool:
        """Whether a commit may be sent now."""
        if force:
            return True
        if any(not c.forced for c in self._commits.values()):
            return False  # one at a time: its answer lets the next one go
        return now >= self._next_at()

    def sent(
        self, commit_id: int, offsets: Mapping[Partition, int], now: float, *, forced: bool
    ) -> None:
        """Commit `commit_id` of `offsets` was handed to the consumer: the acks waiting for a
        commit wait for this one."""
        self._commits[commit_id] = SentCommit(dict(offsets), now, forced)
        self._last_commit = now
        for w in self._waiters:
            if w.commit is None:
                w.commit = commit_id

    def find(self, offsets: Mapping[Partition, int]) -> int | None:
        """The id of the commit waiting here that carries exactly `offsets` (an answer)."""
        return next((i for i, c in self._commits.items() if c.offsets == offsets), None)

    def answered(self, commit_id: int, confirmed: int) -> bool:
        """Commit `commit_id` was answered, confirming `confirmed` handled records: its acks
        are answered. False when no ack waited for it (the caller counts `confirmed`)."""
        del self._commits[commit_id]
        waiters = [w for w in self._waiters if w.commit == commit_id]
        self._settle(waiters, confirmed)
        return bool(waiters)

    def failed(self, now: float) -> None:
        """A commit failed: the next waits `retry_s`."""
        self._not_before = now + self._retry_s

    def give_up(self) -> dict[int, SentCommit]:
        """The consumer goes away: its commits stay unanswered here (returned), every ack is
        answered with 0."""
        commits, self._commits = self._commits, {}
        self.settle_all()
        return commits

    @property
    def in_flight(self) -> bool:
        return bool(self._commits)

    def oldest_sent(self) -> float | None:
        """When the oldest commit waiting for its answer was sent (None: none waits)."""
        return min((c.sent for c in self._commits.values()), default=None)

    def idle_wait(self, now: float, idle_tick_s: float) -> float:
        """How long the owner thread may wait for a job: a commit's answer is served soon, and
        acks are committed once the interval has passed."""
        if self._commits:
            return self._interval_s
        if self._waiters:
            return min(idle_tick_s, max(0.0, self._next_at() - now))
        return idle_tick_s

    def _next_at(self) -> float:
        return max(self._last_commit + self._interval_s, self._not_before)

    def _settle(self, waiters: list[_Waiter], confirmed: int = 0) -> None:
        """Answer these acks; the first one with `confirmed`."""
        if not waiters:
            return
        gone = set(map(id, waiters))
        self._waiters = [w for w in self._waiters if id(w) not in gone]
        for w in waiters:
            w.reply.settle(confirmed)
            confirmed = 0


__all__ = ["COMMIT_INTERVAL_S", "COMMIT_RETRY_S", "COMMIT_WAIT_S", "CommitCoalescer", "SentCommit"]
