"""The operator's own Prometheus metrics: reconciles, their errors and duration, UDSinks by
phase, plus the process and Python collectors and a build-info gauge.

Separate from the kopf wiring so the handlers only call `reconciling()` and `saw()`, and from
the data plane's metrics (`sink_runtime.dataplane.metrics`), which the operator never imports:
these describe the controller, those each UDSink's pods. One registry per instance, served by
`serve()` on the operator's metrics port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from sink_runtime.config import installed_version
from udsink_operator import constants

PHASES = constants.PHASES
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        info = Gauge(
            "udsink_operator_build_info", "Always 1; the udsink version", ["version"], registry=r
        )
        info.labels(version=installed_version()).set(1)
        self.reconciles = Counter(
            "udsink_operator_reconciles", "Reconciles of a UDSink (any trigger)", registry=r
        )
        self.errors = Counter(
            "udsink_operator_reconcile_errors",
            "Reconciles that raised (API errors; kopf retries them)",
            registry=r,
        )
        self.duration = Histogram(
            "udsink_operator_reconcile_seconds",
            "Time one reconcile took",
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.udsinks = Gauge(
            "udsink_operator_udsinks", "Watched UDSinks by status.phase", ["phase"], registry=r
        )
        self._phases: dict[tuple[str, str], str] = {}
        for phase in PHASES:
            self.udsinks.labels(phase=phase).set(0)

    @contextmanager
    def reconciling(self, not_errors: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
        """Count and time one reconcile; count it as an error if it raises (except for the
        `not_errors` kinds, such as waiting for a Secret to appear)."""
        started = time.monotonic()
        self.reconciles.inc()
        try:
            yield
        except not_errors:
            raise
        except BaseException:
            self.errors.inc()
            raise
        finally:
            self.duration.observe(time.monotonic() - started)

    def saw(self, namespace: str, name: str, phase: str | None) -> None:
        """A UDSink's current phase (None: it is gone); recomputes the by-phase gauge."""
        key = (namespace, name)
        if phase is None:
            self._phases.pop(key, None)
        else:
            self._phases[key] = phase
        counts = dict.fromkeys(PHASES, 0)
        for p in self._phases.values():
            counts[p] = counts.get(p, 0) + 1
        for p, n in counts.items():
            self.udsinks.labels(phase=p).set(n)

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Serve /metrics on `port` from a daemon thread (ends with the process)."""
        start_http_server(port, addr=host, registry=self.registry)
