"""What a Prometheus user reads on /metrics, beyond the counts: the process and Python
collectors, the build-info gauge, the per-sink write latency histogram, and every counter's
known label sets present at 0 from the start (so `increase()` sees the first event).
Real SDK sink servers over Unix sockets, as in the routing tests.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from sink_runtime.dataplane.forwarder import Forwarder, Sinks
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.retry import RetryPolicy
from sink_runtime.types import Datum, Response
from tests.dataplane.harness import SourceFactory, run_forwarder, udsink
from tests.support.recording_sink import SdkFactory

VERSION = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"][
    "version"
]
X, Y = "file:0:2", "file:0:3"


def series(metrics: Metrics) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every udsink counter sample present: (name, labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for family in metrics.registry.collect()
        if family.type == "counter" and family.name.startswith("udsink_")
        for s in family.samples
        if s.name.endswith("_total")
    }


def test_process_python_and_build_info_are_exported() -> None:
    text = Metrics().exposition().decode()
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
        assert f"\n{name}" in text, name
    assert "python_gc_collections_total" in text
    assert f'udsink_build_info{{version="{VERSION}"}} 1.0' in text


async def test_every_label_set_the_forwarder_uses_exists_from_the_start(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    def answer(d: Datum, n: int) -> Response:
        if d.id == X:
            return Response.failure(d.id, "always")
        return Response.fallback(d.id, "wrong shape") if d.id == Y else Response.ok(d.id)

    primary, fallback = await sdk_sink(answer), await sdk_sink(name="fb")
    retry = RetryPolicy(interval_s=0.001, cap_s=0.005, jitter=0.0, steps=1, on_failure="fallback")

    def sinks(metrics: Metrics) -> Sinks:
        return Sinks(udsink(primary, metrics), fallback=udsink(fallback, metrics, "fallback"))

    at_start = Metrics()
    Forwarder(file_source(1), sinks(at_start), metrics=at_start, retry=retry)
    started = series(at_start)
    assert ("udsink_fallback_total", (("reason", "retries-exhausted"),)) in started
    assert ("udsink_fallback_total", (("reason", "fallback-status"),)) in started
    assert ("udsink_dropped_total", (("reason", "fallback-exhausted"),)) in started
    assert (
        "udsink_contract_violations_total",
        (("kind", "unknown-id"), ("sink", "fallback")),
    ) in started
    assert all(at_start.value(name, **dict(labels)) == 0 for name, labels in started)

    metrics = Metrics()
    await run_forwarder(file_source(5), sinks(metrics), metrics=metrics, retry=retry)
    assert metrics.value("udsink_fallback_total", reason="retries-exhausted") == 1
    assert metrics.value("udsink_fallback_total", reason="fallback-status") == 1
    assert metrics.value("udsink_failed_total", sink="primary") == 2
    # Nothing the run counted was a series born during the run.
    assert series(metrics) == started


async def test_write_latency_is_observed_per_sink_write(
    sdk_sink: SdkFactory, file_source: SourceFactory
) -> None:
    def answer(d: Datum, n: int) -> Response:
        return Response.fallback(d.id, "no") if d.id == X else Response.ok(d.id)

    primary, fallback = await sdk_sink(answer), await sdk_sink(name="fb")
    metrics = Metrics()
    sinks = Sinks(udsink(primary, metrics), fallback=udsink(fallback, metrics, "fallback"))
    await run_forwarder(file_source(6), sinks, metrics=metrics, batch_size=3)

    writes = metrics.value("udsink_sink_write_seconds_count", sink="primary")
    assert writes == len(primary.recorder.batches) == 2
    assert metrics.value("udsink_sink_write_seconds_count", sink="fallback") == 1
    assert metrics.value("udsink_sink_write_seconds_sum", sink="primary") > 0
