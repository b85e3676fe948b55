"""The data plane's Prometheus metrics, in one object handed to every component.

One registry per data plane instance (not the process-global default), so tests and
`udsink run` can host several data planes in one process and read each one's numbers.
Label `sink` names the sink role (primary, fallback, on_success, serve).

`Counts` is the one vocabulary every report uses (the `udsink run` progress line, its summary
table and JSON): each name is a metric's name without prefix and suffix, and each count is
either of messages (each message once) or of attempts (each answer or delivery).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from sink_runtime.config import installed_version
from sink_runtime.contract import ViolationKind
from sink_runtime.dataplane.protocols import (
    FAILURE_REASONS,
    FALLBACK,
    FALLBACK_STATUS,
    PRIMARY,
    SinkRole,
    exhausted,
)

_PREFIX = "udsink"
# How a source record may be delivered other than as the broker holds it (label `kind`): a
# timestamp after 9999-12-31T23:59:59.999Z clamped to it; a record that could not be converted
# delivered without its headers, with the reason instead.
TIMESTAMP_CLAMPED = "timestamp-clamped"
UNCONVERTIBLE = "unconvertible"
RECORD_ALTERATIONS = (TIMESTAMP_CLAMPED, UNCONVERTIBLE)
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Why a message left the primary for the fallback sink or was dropped (label `reason`).


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # What every Prometheus user expects of a process: CPU, memory, fds, GC, versions.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        build = Gauge(
            f"{_PREFIX}_build_info", "Always 1; the udsink version", ["version"], registry=r
        )
        build.labels(version=installed_version()).set(1)
        self.read = Counter(f"{_PREFIX}_read", "Messages read from the source", registry=r)
        self.written = Counter(
            f"{_PREFIX}_written", "Messages a sink accepted", ["sink"], registry=r
        )
        self.acked = Counter(
            f"{_PREFIX}_acked", "Messages whose offsets were committed", registry=r
        )
        self.retried = Counter(
            f"{_PREFIX}_retried", "Messages sent again after a FAILURE", ["sink"], registry=r
        )
        self.failed = Counter(
            f"{_PREFIX}_failed", "FAILURE results (each attempt)", ["sink"], registry=r
        )
        self.fallback = Counter(
            f"{_PREFIX}_fallback", "Messages routed to the fallback sink", ["reason"], registry=r
        )
        self.on_success = Counter(
            f"{_PREFIX}_on_success", "Messages routed to the on-success sink", registry=r
        )
        self.served = Counter(
            f"{_PREFIX}_served", "SERVE payloads written to the serve sink", registry=r
        )
        self.dropped = Counter(
            f"{_PREFIX}_dropped",
            "Messages dropped by explicit policy (onFailure: drop)",
            ["reason"],
            registry=r,
        )
        self.nacked = Counter(
            f"{_PREFIX}_nacked", "NACK results (each delivery held back)", registry=r
        )
        self.contract_violations = Counter(
            f"{_PREFIX}_contract_violations",
            "Sink answers that broke the contract, by kind",
            ["sink", "kind"],
            registry=r,
        )
        self.malformed_key_headers = Counter(
            f"{_PREFIX}_malformed_key_headers",
            "Source records whose key headers were malformed (record key used instead)",
            registry=r,
        )
        # Kinds: RECORD_ALTERATIONS (kafka source, docs/concepts.md).
        self.records_altered = Counter(
            f"{_PREFIX}_records_altered",
            "Source records delivered other than as the broker holds them, by kind",
            ["kind"],
            registry=r,
        )
        for kind in RECORD_ALTERATIONS:
            self.records_altered.labels(kind=kind)
        self.commit_failures = Counter(
            f"{_PREFIX}_commit_failures",
            "Offset commits that failed (the batch will be redelivered)",
            registry=r,
        )
        self.sink_reconnects = Counter(
            f"{_PREFIX}_sink_reconnects",
            "Times a user-defined sink stream was re-established",
            ["sink"],
            registry=r,
        )
        self.sink_stalls = Counter(
            f"{_PREFIX}_sink_stalls",
            "Batch writes a sink left unanswered past the stall warning",
            ["sink"],
            registry=r,
        )
        self.write_timeouts = Counter(
            f"{_PREFIX}_sink_write_timeouts",
            "Batch writes abandoned at the write timeout (stream reset, batch FAILURE)",
            ["sink"],
            registry=r,
        )
        self.batch_latency = Histogram(
            f"{_PREFIX}_batch_seconds",
            "Time from a batch being read to its offsets being committed",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.write_seconds = Histogram(
            f"{_PREFIX}_sink_write_seconds",
            "Time a sink took to answer one batch write (or fail it)",
            ["sink"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        # Read at scrape time from each user-defined sink client (set by the client).
        self.sink_unanswered = Gauge(
            f"{_PREFIX}_sink_unanswered_seconds",
            "Seconds a user-defined sink has kept the data plane waiting without an answer "
            "since its last answer (its liveness path answers 503 past the bound)",
            ["sink"],
            registry=r,
        )
        # Read at scrape time from the same check /readyz answers (set by the DataPlane).
        self.ready = Gauge(f"{_PREFIX}_ready", "1 when /readyz answers 200, else 0", registry=r)
        self.consumer_lag = Gauge(
            f"{_PREFIX}_consumer_lag_messages",
            "Messages between the committed position and the end of the partition",
            ["topic", "partition"],
            registry=r,
        )

    def known_labels(self, roles: Iterable[SinkRole]) -> None:
        """Create, at 0, every label set the forwarder may use with these sink roles, so the
        first event is an increase from 0 (`increase()` cannot see a series' first sample)."""
        roles = list(roles)
        for role in roles:
            counters = (self.written, self.retried, self.failed, self.sink_reconnects)
            for counter in (*counters, self.sink_stalls, self.write_timeouts):
                counter.labels(sink=role)
            self.write_seconds.labels(sink=role)
            for kind in get_args(ViolationKind):
                self.contract_violations.labels(sink=role, kind=kind)
            if role != PRIMARY:
                self.dropped.labels(reason=exhausted(role))
        for reason in FAILURE_REASONS:
            self.dropped.labels(reason=reason)
        if FALLBACK in roles:
            for reason in (*FAILURE_REASONS, FALLBACK_STATUS):
                self.fallback.labels(reason=reason)

    def exposition(self) -> bytes:
        """The text format served on /metrics."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0.0 when absent); for summaries and tests."""
        sample = self.registry.get_sample_value(name, labels or None)
        return 0.0 if sample is None else sample


# Names of `Counts` fields that count messages (each message at most once), in report order.
MESSAGE_COUNTS = ("read", "written", "served", "on_success", "fallback", "dropped", "acked")
# Names of `Counts` fields that count attempts (one per answer or per delivery sent again).
ATTEMPT_COUNTS = (
    "failed",
    "nacked",
    "retried",
    "contract_violations",
    "sink_stalls",
    "sink_write_timeouts",
)
COUNT_MEANINGS = {
    "read": "messages read from the source",
    "written": "messages the primary sink accepted (SUCCESS, SERVE, ON_SUCCESS)",
    "served": "SERVE payloads written to the serve sink",
    "on_success": "messages written to the on-success sink",
    "fallback": "messages written to the fallback sink",
    "dropped": "messages dropped by onFailure: drop (or onExhausted: log)",
    "acked": "messages whose offsets were committed",
    "failed": "FAILURE answers, every sink, every attempt",
    "nacked": "NACK answers, every attempt",
    "retried": "deliveries sent again after a FAILURE",
    "contract_violations": "sink answers that broke the contract",
    "sink_stalls": "batch writes left unanswered past the stall warning",
    "sink_write_timeouts": "batch writes abandoned at the write timeout",
}


@dataclass(frozen=True, slots=True)
class Counts:
    """The counters' current totals, read without parsing Prometheus sample names.

    `written` is the primary sink's; the attempt counts add up every sink role.
    """

    read: int = 0
    written: int = 0
    served: int = 0
    on_success: int = 0
    fallback: int = 0
    dropped: int = 0
    acked: int = 0
    failed: int = 0
    nacked: int = 0
    retried: int = 0
    contract_violations: int = 0
    sink_stalls: int = 0
    sink_write_timeouts: int = 0

    def messages(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in MESSAGE_COUNTS}

    def attempts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in ATTEMPT_COUNTS}


def _total(counter: Counter, **labels: str) -> int:
    """A counter's total over every label set matching `labels`."""
    return int(
        sum(
            s.value
            for metric in counter.collect()
            for s in metric.samples
            if s.name.endswith("_total") and labels.items() <= s.labels.items()
        )
    )


def counts(metrics: Metrics) -> Counts:
    """The current `Counts` of one data plane."""
    m = metrics
    return Counts(
        read=_total(m.read),
        written=_total(m.written, sink=PRIMARY),
        served=_total(m.served),
        on_success=_total(m.on_success),
        fallback=_total(m.fallback),
        dropped=_total(m.dropped),
        acked=_total(m.acked),
        failed=_total(m.failed),
        nacked=_total(m.nacked),
        retried=_total(m.retried),
        contract_violations=_total(m.contract_violations),
        sink_stalls=_total(m.sink_stalls),
        sink_write_timeouts=_total(m.write_timeouts),
    )
