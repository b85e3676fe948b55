"""RetryPolicy: how long to wait before sending a failed message again, and when to give up.

Pure arithmetic, no clock and no I/O: the forwarder asks for a delay and sleeps itself, and
tests check the numbers directly. Jitter comes from an injectable `random.Random`, so a test
can make it deterministic.

Meaning of the knobs (RuntimeConfig `retryStrategy.backoff`): retry number n (1-based) waits
`min(interval * factor**(n-1), cap)`, stretched by up to `jitter` of itself; after `steps`
retries `onFailure` decides: keep retrying at the capped delay, route to the fallback sink,
or drop.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from sink_runtime.config import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_BACKOFF_STEPS,
    DEFAULT_JITTER,
    RetryStrategy,
)
from sink_runtime.config.constants import OnFailure
from sink_runtime.config.durations import BACKOFF_CAP, BACKOFF_INTERVAL


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    interval_s: float = BACKOFF_INTERVAL.default_s
    factor: float = DEFAULT_BACKOFF_FACTOR
    cap_s: float = BACKOFF_CAP.default_s
    jitter: float = DEFAULT_JITTER
    steps: int = DEFAULT_BACKOFF_STEPS
    on_failure: OnFailure = "retry"

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.cap_s <= 0:
            raise ValueError(
                f"retry interval ({self.interval_s}s) and cap ({self.cap_s}s) must be > 0"
            )
        if self.factor < 1.0:
            raise ValueError(f"retry factor must be >= 1, got {self.factor}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"retry jitter must be within [0, 1], got {self.jitter}")
        if self.steps < 0:
            raise ValueError(f"retry steps must be >= 0, got {self.steps}")

    @classmethod
    def from_config(cls, strategy: RetryStrategy) -> RetryPolicy:
        b = strategy.backoff
        return cls(
            interval_s=b.interval_ms / 1000.0,
            factor=b.factor,
            cap_s=b.cap_ms / 1000.0,
            jitter=b.jitter,
            steps=b.steps,
            on_failure=strategy.on_failure,
        )

    def base_delay_s(self, retry: int) -> float:
        """The un-jittered wait before retry number `retry` (1-based), capped."""
        if retry < 1:
            raise ValueError(f"retry number must be >= 1, got {retry}")
        if self.interval_s >= self.cap_s:
            return self.cap_s
        # Compare in log space: factor**retry overflows a float long before retries run out
        # when onFailure is "retry".
        if self.factor > 1.0 and (retry - 1) * math.log(self.factor) >= math.log(
            self.cap_s / self.interval_s
        ):
            return self.cap_s
        return min(self.interval_s * self.factor ** (retry - 1), self.cap_s)

    def delay_s(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry number `retry`: the base delay stretched by up to `jitter`."""
        base = self.base_delay_s(retry)
        if self.jitter == 0.0:
            return base
        u = (rng or random).random()
        return base * (1.0 + self.jitter * u)

    def exhausted(self, retries_done: int) -> bool:
        """True once `steps` retries were spent: onFailure decides what happens next."""
        return retries_done >= self.steps
