"""RetryPolicy: the numbers the forwarder sleeps, checked directly (no clock involved)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sink_runtime.config import Backoff, RetryStrategy
from sink_runtime.dataplane.retry import RetryPolicy

policies = st.builds(
    RetryPolicy,
    interval_s=st.floats(min_value=0.001, max_value=3600),
    factor=st.floats(min_value=1.0, max_value=10.0),
    cap_s=st.floats(min_value=0.001, max_value=86400),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    steps=st.integers(min_value=0, max_value=1_000_000),
)


def test_from_config_converts_milliseconds_and_keeps_on_failure() -> None:
    strategy = RetryStrategy(
        backoff=Backoff(interval_ms=250, factor=3, cap_ms=2000, steps=4, jitter=0.5),
        on_failure="drop",
    )
    p = RetryPolicy.from_config(strategy)
    assert (p.interval_s, p.factor, p.cap_s, p.jitter, p.steps, p.on_failure) == (
        0.25,
        3.0,
        2.0,
        0.5,
        4,
        "drop",
    )


def test_exponential_then_capped_without_jitter() -> None:
    p = RetryPolicy(interval_s=0.1, factor=2, cap_s=1.0, jitter=0.0)
    assert [round(p.delay_s(n), 6) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_steps_bound_the_budget() -> None:
    p = RetryPolicy(steps=2)
    assert [p.exhausted(n) for n in range(4)] == [False, False, True, True]
    assert RetryPolicy(steps=0).exhausted(0)


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    p = RetryPolicy(interval_s=1.0, factor=1.0, cap_s=10.0, jitter=0.5)
    a = [p.delay_s(1, random.Random(7)) for _ in range(3)]
    b = [p.delay_s(1, random.Random(7)) for _ in range(3)]
    assert a == b
    assert all(1.0 <= d <= 1.5 for d in a)


def test_huge_retry_numbers_do_not_overflow() -> None:
    # onFailure=retry keeps counting forever; factor**n must not blow up.
    p = RetryPolicy(interval_s=0.1, factor=10.0, cap_s=30.0, jitter=0.0)
    assert p.delay_s(10**9) == 30.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"factor": 0.5}, "retry factor must be >= 1, got 0.5"),
        ({"jitter": 2.0}, "retry jitter must be within [0, 1], got 2.0"),
        ({"steps": -1}, "retry steps must be >= 0, got -1"),
        ({"interval_s": 0.0}, "retry interval (0.0s) and cap (30.0s) must be > 0"),
    ],
)
def test_invalid_policies_are_refused_with_the_value(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError) as err:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert str(err.value) == message


def test_retry_number_must_be_positive() -> None:
    with pytest.raises(ValueError, match="retry number must be >= 1, got 0"):
        RetryPolicy().delay_s(0)


@given(policy=policies, retry=st.integers(min_value=1, max_value=10**7), seed=st.integers())
def test_delay_is_within_zero_and_jittered_cap(policy: RetryPolicy, retry: int, seed: int) -> None:
    d = policy.delay_s(retry, random.Random(seed))
    assert 0.0 <= d <= policy.cap_s * (1.0 + policy.jitter) * (1 + 1e-12)


@given(policy=policies, upto=st.integers(min_value=1, max_value=200))
def test_delays_never_decrease_without_jitter(policy: RetryPolicy, upto: int) -> None:
    p = RetryPolicy(
        interval_s=policy.interval_s, factor=policy.factor, cap_s=policy.cap_s, jitter=0.0
    )
    delays = [p.delay_s(n) for n in range(1, upto + 1)]
    assert delays == sorted(delays)
    assert all(d <= p.cap_s for d in delays)
