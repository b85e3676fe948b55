"""The hung-sink bound and the sink probe timing (sink_runtime.config.sink_liveness), and the
clock the data plane keeps per sink (sinks/unanswered.py), driven with plain times."""

from __future__ import annotations

from typing import get_args

import pytest

from sink_runtime.config import constants
from sink_runtime.config.sink_liveness import (
    RUNTIME_ABSENCE_S,
    sink_livez_path,
    sink_probe_timing,
    unanswered_bound_s,
)
from sink_runtime.dataplane.sinks.unanswered import UnansweredClock

WRITE_MS = 2_000
STARTUP_MS = 10_000


def running_clock() -> UnansweredClock:
    clock = UnansweredClock(WRITE_MS, STARTUP_MS)
    clock.begin(0.0)
    clock.answered()  # the first batch was answered: past start-up
    return clock


def test_paths_are_per_container_under_livez() -> None:
    paths = {sink_livez_path(c) for c in get_args(constants.ContainerType)}
    assert paths == {"/livez/udsink", "/livez/fb-udsink", "/livez/ons-udsink"}


@pytest.mark.parametrize("write_ms", [1_000, 2_000, 30_000, 3_600_000])
def test_bound_exceeds_one_timeout_plus_an_answered_retry(write_ms: int) -> None:
    worst_answered = 2 * write_ms / 1000.0
    assert unanswered_bound_s(write_ms, STARTUP_MS) > worst_answered
    starting = unanswered_bound_s(write_ms, STARTUP_MS, starting=True)
    assert starting > worst_answered + STARTUP_MS / 1000.0


def test_a_slow_sink_answering_within_the_write_timeout_never_trips() -> None:
    clock = running_clock()
    now = 0.0
    for _ in range(1000):
        clock.begin(now)
        now += WRITE_MS / 1000.0 * 0.99
        assert clock.hung(now) == ""
        clock.answered()
        now += 30.0  # idle between batches counts for nothing
        assert clock.hung(now) == ""


def test_one_timeout_then_an_answered_retry_never_trips() -> None:
    clock = running_clock()
    clock.begin(100.0)
    clock.unanswered(100.0 + 2.01)  # timed out (a little late)
    assert clock.hung(160.0) == ""  # the retry backoff does not count
    clock.begin(160.0)
    assert clock.hung(160.0 + 1.99) == ""
    clock.answered()
    assert clock.waiting_s(200.0) == 0.0


def test_a_hung_sink_trips_after_the_bound_of_waiting_not_of_wall_time() -> None:
    clock = running_clock()
    bound = unanswered_bound_s(WRITE_MS, STARTUP_MS)
    now = 0.0
    attempts = 0
    while not clock.hung(now):
        clock.begin(now)
        now += WRITE_MS / 1000.0
        if clock.hung(now):
            break
        clock.unanswered(now)
        now += 30.0  # backoff
        attempts += 1
    assert attempts == int(bound // (WRITE_MS / 1000.0))
    why = clock.hung(now)
    assert "without an answer since its last answer" in why
    assert f"bound {bound:g}s" in why
    clock.begin(now)
    clock.answered()
    assert clock.hung(now + 1000.0) == ""


def test_a_sink_that_ends_streams_itself_is_answered() -> None:
    clock = running_clock()
    clock.begin(0.0)
    clock.answered()  # SinkError after resends: the sink reset the streams
    assert clock.waiting_s(100.0) == 0.0


def test_starting_bound_applies_until_the_first_batch_is_answered() -> None:
    clock = UnansweredClock(WRITE_MS, STARTUP_MS)
    start_bound = unanswered_bound_s(WRITE_MS, STARTUP_MS, starting=True)
    clock.begin(0.0)  # start-up waits for server-info, IsReady, the handshake
    assert clock.hung(start_bound - 0.1) == ""
    assert "since it started" in clock.hung(start_bound + 0.1)
    clock.ended()  # start-up completed: not yet proven on a batch
    assert clock.starting
    clock.answered()
    assert not clock.starting
    assert clock.bound_s() == unanswered_bound_s(WRITE_MS, STARTUP_MS)


def test_a_new_sink_process_discards_what_the_old_one_left_unanswered() -> None:
    clock = running_clock()
    for i in range(10):
        clock.begin(i * 10.0)
        clock.unanswered(i * 10.0 + 2.0)
    assert clock.hung(100.0)
    clock.begin(100.0)
    clock.restarted(101.0)  # the kubelet restarted the container: a new socket
    assert clock.starting
    assert clock.waiting_s(101.0) == 0.0
    start_bound = unanswered_bound_s(WRITE_MS, STARTUP_MS, starting=True)
    assert clock.hung(101.0 + start_bound - 0.1) == ""
    assert clock.hung(101.0 + start_bound + 0.1)


def test_a_dropped_attempt_says_nothing() -> None:
    clock = running_clock()
    clock.begin(0.0)
    clock.ended()
    assert clock.waiting_s(1000.0) == 0.0


@pytest.mark.parametrize(
    ("write_ms", "startup_ms"),
    [(1_000, 1_000), (2_000, 10_000), (30_000, 120_000), (3_600_000, 3_600_000)],
)
def test_probe_timing(write_ms: int, startup_ms: int) -> None:
    t = sink_probe_timing(write_ms, startup_ms)
    assert 1 <= t.period_s <= 10
    assert t.timeout_s <= t.period_s
    assert t.failure_threshold >= 3
    # A runtime container restarting briefly does not restart the sinks.
    assert t.failure_threshold * t.period_s >= RUNTIME_ABSENCE_S
    # A fresh sink container is not probed before its startupTimeout has passed.
    assert t.initial_delay_s >= startup_ms / 1000.0
    # Detection follows the bound by at most a few periods, not minutes per writeTimeout.
    assert t.period_s <= max(1, write_ms / 1000.0)
