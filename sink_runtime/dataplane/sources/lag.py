"""When the Kafka source refreshes its consumer lag, and what the lag of a partition is.

Pure, driven by the clock its caller passes in; the look-ups themselves are the owner thread's
(sources/kafka_worker.py). Lag is refreshed every `refresh_s` while partitions are owned and
the brokers reachable, also while no batch flows, and at the next chance after an assignment.
"""

from __future__ import annotations

# How often consumer lag is refreshed from the broker's offsets (while the brokers are
# reachable), and how long each look-up may take; the first one that fails ends the round.
LAG_REFRESH_S = 5.0
LAG_TIMEOUT_S = 5.0
# librdkafka signals "no such partition" with an offset below this in watermark answers.
_NO_OFFSET = 0


class LagSchedule:
    """Whether a lag refresh is due; a refresh taken pushes the next one `refresh_s` away."""

    __slots__ = ("_next", "_refresh_s")

    def __init__(self, refresh_s: float = LAG_REFRESH_S) -> None:
        self._refresh_s = refresh_s
        self._next = 0.0

    def take(self, now: float, *, owned: bool, connected: bool) -> bool:
        """True (and the next one scheduled) when a refresh is due now."""
        if now < self._next or not owned or not connected:
            return False
        self._next = now + self._refresh_s
        return True

    def soon(self) -> None:
        """Refresh at the next chance (new partitions were assigned)."""
        self._next = 0.0


def partition_lag(low: int, high: int | None, committed: int | None) -> int | None:
    """High watermark minus the group's committed offset (the low watermark when the group has
    none); None when the broker gave no watermark for the partition."""
    if high is None or high < _NO_OFFSET:
        return None
    return max(0, high - (low if committed is None else committed))


__all__ = ["LAG_REFRESH_S", "LAG_TIMEOUT_S", "LagSchedule", "partition_lag"]
