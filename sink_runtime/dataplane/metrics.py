"""The data plane's Prometheus metrics, in one object handed to every component.

One registry per data plane instance (not the process-global default), so tests and
`udsink run` can host several data planes in one process and read each one's numbers.
Label `sink` names the sink role (primary, fallback, on_success, serve).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_PREFIX = "udsink"
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
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
        self.consumer_lag = Gauge(
            f"{_PREFIX}_consumer_lag",
            "Messages between the committed position and the end of the partition",
            ["topic", "partition"],
            registry=r,
        )

    def exposition(self) -> bytes:
        """The text format served on /metrics."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0.0 when absent); for summaries and tests."""
        sample = self.registry.get_sample_value(name, labels or None)
        return 0.0 if sample is None else sample
