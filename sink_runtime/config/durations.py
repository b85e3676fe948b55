"""Durations both sides bound: one `DurationSpec` per setting.

The UDSink writes a duration as a Go-style string (`100ms`, `2m30s`) and the RuntimeConfig as
integer milliseconds. Each spec states the bounds and the default once, as the UDSink shows
them; the RuntimeConfig's bounds and default are derived from the same strings, so what the
API server accepts and what the data plane accepts after conversion cannot drift apart.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field

# Go's time.ParseDuration syntax, always with a unit ("0s", not "0": CEL engines differ there),
# at most 6 digits before a decimal point and 20 characters: then no duration overflows Go's
# int64 nanoseconds, and the CRD's CEL `duration()` never fails on a value that passed this.
DURATION_PATTERN = r"^((([0-9]{1,6}(\.[0-9]*)?)|(\.[0-9]+))(ns|us|ms|s|m|h))+$"
DURATION_MAX_LENGTH = 20
_DURATION_PART = re.compile(r"((?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))(ns|us|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def is_duration(text: str) -> bool:
    return len(text) <= DURATION_MAX_LENGTH and re.fullmatch(DURATION_PATTERN, text) is not None


def parsed_ms(text: str) -> float:
    """Milliseconds of a Go-style duration (`100ms`, `1s`, `2m30s`), unrounded; `text` must
    satisfy `is_duration` (the caller words the error for its own readers)."""
    if not is_duration(text):
        raise ValueError(f"not a Go-style duration: {text!r}")
    return round(sum(float(n) * _UNIT_MS[u] for n, u in _DURATION_PART.findall(text)), 6)


def whole_ms(text: str) -> int:
    """Whole milliseconds of a Go-style duration, rounded up (the runtime counts in ms)."""
    return math.ceil(parsed_ms(text))


@dataclass(frozen=True)
class DurationSpec:
    """A duration setting's bounds and default, written as the UDSink shows them; the
    RuntimeConfig's (`*_ms`) are derived from these strings."""

    minimum: str
    maximum: str
    default: str

    def __post_init__(self) -> None:
        exact = [parsed_ms(t) for t in (self.minimum, self.default, self.maximum)]
        if any(ms != int(ms) for ms in exact) or not exact[0] <= exact[1] <= exact[2]:
            raise ValueError(f"{self}: bounds and default must be whole ms, min <= default <= max")

    @property
    def min_ms(self) -> int:
        return whole_ms(self.minimum)

    @property
    def max_ms(self) -> int:
        return whole_ms(self.maximum)

    @property
    def default_ms(self) -> int:
        return whole_ms(self.default)

    @property
    def default_s(self) -> float:
        return self.default_ms / 1000.0

    def millis_field(self) -> Any:
        """The RuntimeConfig field: integer ms within the bounds, the default in ms."""
        return Field(default=self.default_ms, ge=self.min_ms, le=self.max_ms)


# How long to wait for a user-defined sink's server-info file and IsReady at start-up.
STARTUP_TIMEOUT = DurationSpec("1s", "1h", "2m")
# How long a user-defined sink may take to answer one batch.
WRITE_TIMEOUT = DurationSpec("1s", "1h", "30s")
# The retry backoff's first delay and its largest.
BACKOFF_INTERVAL = DurationSpec("1ms", "1h", "100ms")
BACKOFF_CAP = DurationSpec("1ms", "24h", "30s")
# Longest wait to fill a batch.
BATCH_TIMEOUT = DurationSpec("1ms", "10m", "1s")
# Redelivery delay of a NACK result that names none.
NACK_DELAY = DurationSpec("0s", "1h", "1s")
# Time to finish the in-flight batch after SIGTERM.
SHUTDOWN_GRACE = DurationSpec("1s", "10m", "25s")

__all__ = [
    "BACKOFF_CAP",
    "BACKOFF_INTERVAL",
    "BATCH_TIMEOUT",
    "DURATION_MAX_LENGTH",
    "DURATION_PATTERN",
    "NACK_DELAY",
    "SHUTDOWN_GRACE",
    "STARTUP_TIMEOUT",
    "WRITE_TIMEOUT",
    "DurationSpec",
    "is_duration",
    "parsed_ms",
    "whole_ms",
]
