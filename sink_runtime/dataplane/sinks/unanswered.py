"""How long a user-defined sink has kept the data plane waiting without an answer.

Pure bookkeeping, fed by the sink client (`UserSinkClient`) and read by the sink's liveness
path and /readyz. Times are the caller's `time.monotonic()` readings, so tests drive it with
plain numbers. The bounds come from `sink_runtime.config.sink_liveness` (its module doc says
what is measured and why those bounds).
"""

from __future__ import annotations

from dataclasses import dataclass

from sink_runtime.config.sink_liveness import unanswered_bound_s


@dataclass(slots=True)
class UnansweredClock:
    """Seconds spent waiting on one sink since it last answered (or since its process
    started), and the verdict against the bound."""

    write_timeout_ms: int
    startup_timeout_ms: int
    # True until the current sink process answers its first batch (the data plane starting,
    # or a new sink process seen): the bound then includes startupTimeout.
    starting: bool = True
    waited_s: float = 0.0  # attempts that ended without an answer, summed
    attempt_since: float | None = None  # the attempt in flight, if any

    def begin(self, now: float) -> None:
        """A request went to the sink (a write attempt, or start-up's wait for it)."""
        if self.attempt_since is None:
            self.attempt_since = now

    def answered(self) -> None:
        """The sink answered: a batch's answers, a completed start-up, or a stream it ended
        itself (it is responsive, whatever it said)."""
        self.waited_s = 0.0
        self.attempt_since = None
        self.starting = False

    def unanswered(self, now: float) -> None:
        """The attempt in flight ended without an answer (the write timed out)."""
        if self.attempt_since is not None:
            self.waited_s += max(0.0, now - self.attempt_since)
            self.attempt_since = None

    def ended(self) -> None:
        """The attempt in flight ended without saying whether the sink answers batches: the
        start-up wait completed (the process is up, not yet proven on a batch), or the data
        plane gave the attempt up itself (shutting down)."""
        self.attempt_since = None

    def restarted(self, now: float) -> None:
        """A new sink process: what the old one left unanswered no longer counts."""
        self.waited_s = 0.0
        self.starting = True
        if self.attempt_since is not None:
            self.attempt_since = now

    def waiting_s(self, now: float) -> float:
        """Seconds waited without an answer, the attempt in flight included."""
        in_flight = 0.0 if self.attempt_since is None else max(0.0, now - self.attempt_since)
        return self.waited_s + in_flight

    def bound_s(self) -> float:
        return unanswered_bound_s(
            self.write_timeout_ms, self.startup_timeout_ms, starting=self.starting
        )

    def hung(self, now: float) -> str:
        """Why the sink counts as hung, or "" while it is within its bound."""
        waited, bound = self.waiting_s(now), self.bound_s()
        if waited <= bound:
            return ""
        since = "since it started" if self.starting else "since its last answer"
        return (
            f"has kept the data plane waiting {waited:.1f}s without an answer {since} "
            f"(bound {bound:g}s: 2 x writeTimeout + slack"
            f"{' + startupTimeout' if self.starting else ''})"
        )
