"""When a user-defined sink counts as hung, and how the kubelet is told: the one home of it.

The data plane serves one liveness path per user-defined sink container on its own HTTP port
(`sink_livez_path`); the operator points that container's `livenessProbe.httpGet` there, with
the timing of `sink_probe_timing`. The pod shares one network namespace, so this works for any
sink image, including one that serves nothing but the Unix socket.

What is measured: the seconds the data plane has spent waiting on the sink without an answer
since the sink last answered a batch (its write attempts that timed out, plus the attempt in
flight; the pauses between retries do not count, so the retry backoff cannot trip it). A batch
answered (whatever the statuses), or a stream the sink itself ended, resets it.

The bound (`unanswered_bound_s`):
- a sink that answered since it (re)started: `2 * writeTimeout + UNANSWERED_SLACK_S`. A sink
  that answers every batch within writeTimeout stays far below; one that times out once and
  answers the retry reaches at most two write timeouts; the slack covers the time the data
  plane itself takes around an attempt (reset, reconnect);
- a sink process that has not answered yet (the data plane starting, or a new sink process,
  recognised by its socket being created anew): `startupTimeout` more, the time the sink may
  take to come up (server-info, IsReady, handshake) before it answers within those bounds.

Probe timing (`sink_probe_timing`): the first probe waits `startupTimeout` after the container
starts (a new sink process must have created its socket by then, which is what the data plane
recognises it by; until then the path still judges the process that was replaced), then probes
every `writeTimeout / 2` (1..10 s) and restarts after `failureThreshold` failures in a row. The
failures span at least `RUNTIME_ABSENCE_S`: the path is served by the runtime container, so
while that container restarts every sink probe fails too, and a short restart of the runtime
must not restart the sinks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from sink_runtime.config import constants

# The liveness path of a sink container: this prefix and its container name (udsink, ...).
SINK_LIVEZ_PREFIX: Final = f"{constants.LIVEZ_PATH}/"
# Added to the bound for the data plane's own time around a write attempt.
UNANSWERED_SLACK_S: Final = 5.0
# How long the runtime container may be away (restarting) before the sinks' probes give up.
RUNTIME_ABSENCE_S: Final = 20
MIN_FAILURE_THRESHOLD: Final = 3
MAX_PERIOD_S: Final = 10


def sink_livez_path(container_type: constants.ContainerType) -> str:
    """The data plane's liveness path for one user-defined sink container."""
    return f"{SINK_LIVEZ_PREFIX}{container_type}"


def unanswered_bound_s(
    write_timeout_ms: int, startup_timeout_ms: int, *, starting: bool = False
) -> float:
    """Seconds of waiting on a sink without an answer after which it counts as hung
    (module doc); `starting`: the sink process has not answered anything yet."""
    bound = 2 * write_timeout_ms / 1000.0 + UNANSWERED_SLACK_S
    return bound + startup_timeout_ms / 1000.0 if starting else bound


@dataclass(frozen=True, slots=True)
class SinkProbeTiming:
    """The kubelet's side of a sink container's liveness probe, in whole seconds."""

    initial_delay_s: int
    period_s: int
    timeout_s: int
    failure_threshold: int


def sink_probe_timing(write_timeout_ms: int, startup_timeout_ms: int) -> SinkProbeTiming:
    """The probe timing for a sink with these timeouts (module doc)."""
    period = min(MAX_PERIOD_S, max(1, math.ceil(write_timeout_ms / 2000)))
    threshold = max(MIN_FAILURE_THRESHOLD, math.ceil(RUNTIME_ABSENCE_S / period))
    return SinkProbeTiming(
        initial_delay_s=math.ceil(startup_timeout_ms / 1000),
        period_s=period,
        timeout_s=period,
        failure_threshold=threshold,
    )
