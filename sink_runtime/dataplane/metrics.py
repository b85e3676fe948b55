"""The data plane's Prometheus metrics, in one object handed to every component.

One registry per data plane instance (not the process-global default), so tests and
`udsink run` can host several data planes in one process and read each one's numbers.
Label `sink` names the sink role (primary, fallback, on_success, serve).

`Counts` is the one vocabulary every report uses (the `udsink run` progress line, its summary
table and JSON): each name is a metric's name without prefix and suffix, and each count is
either of messages (each message once) or of attempts (each answer or delivery). Each counter
is declared once, in `Metrics`' class body: attribute, metric name, help, labels, and how
reports count it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Literal, TypeAlias, get_args, overload

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


Tally: TypeAlias = Literal["messages", "attempts"]


class _CounterField:
    """One counter of `Metrics`, declared once: the attribute it is read through, its metric
    name (without prefix and `_total`), help text and labels, and whether `Counts` reports it
    (as messages or attempts, with what it counts in words). `Metrics` creates the counter;
    reading the attribute returns it."""

    def __init__(
        self,
        name: str,
        help_text: str,
        *labels: str,
        tally: Tally | None = None,
        meaning: str = "",
        only: tuple[str, str] | None = None,
    ) -> None:
        self.name = name
        self.help_text = help_text
        self.labels = labels
        self.tally = tally
        self.meaning = meaning
        # The one label value `Counts` adds up (`written`: the primary's); None: every one.
        self.only = only
        self.attribute = name

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    @overload
    def __get__(self, obj: None, owner: type) -> _CounterField: ...
    @overload
    def __get__(self, obj: Metrics, owner: type) -> Counter: ...
    def __get__(self, obj: Metrics | None, owner: type) -> _CounterField | Counter:
        return self if obj is None else obj._counters[self.attribute]


class Metrics:
    # The counters, in the order reports list them (`MESSAGE_COUNTS`, `ATTEMPT_COUNTS`).
    read = _CounterField(
        "read",
        "Messages read from the source",
        tally="messages",
        meaning="messages read from the source",
    )
    written = _CounterField(
        "written",
        "Messages a sink accepted",
        "sink",
        tally="messages",
        only=("sink", PRIMARY),
        meaning="messages the primary sink accepted (SUCCESS, SERVE, ON_SUCCESS)",
    )
    served = _CounterField(
        "served",
        "SERVE payloads written to the serve sink",
        tally="messages",
        meaning="SERVE payloads written to the serve sink",
    )
    on_success = _CounterField(
        "on_success",
        "Messages routed to the on-success sink",
        tally="messages",
        meaning="messages written to the on-success sink",
    )
    fallback = _CounterField(
        "fallback",
        "Messages routed to the fallback sink",
        "reason",
        tally="messages",
        meaning="messages written to the fallback sink",
    )
    dropped = _CounterField(
        "dropped",
        "Messages dropped by explicit policy (onFailure: drop)",
        "reason",
        tally="messages",
        meaning="messages dropped by onFailure: drop (or onExhausted: log)",
    )
    acked = _CounterField(
        "acked",
        "Messages whose offsets were committed",
        tally="messages",
        meaning="messages whose offsets were committed",
    )
    failed = _CounterField(
        "failed",
        "FAILURE results (each attempt)",
        "sink",
        tally="attempts",
        meaning="FAILURE answers, every sink, every attempt",
    )
    nacked = _CounterField(
        "nacked",
        "NACK results (each delivery held back)",
        tally="attempts",
        meaning="NACK answers, every attempt",
    )
    retried = _CounterField(
        "retried",
        "Messages sent again after a FAILURE",
        "sink",
        tally="attempts",
        meaning="deliveries sent again after a FAILURE",
    )
    contract_violations = _CounterField(
        "contract_violations",
        "Sink answers that broke the contract, by kind",
        "sink",
        "kind",
        tally="attempts",
        meaning="sink answers that broke the contract",
    )
    sink_stalls = _CounterField(
        "sink_stalls",
        "Batch writes a sink left unanswered past the stall warning",
        "sink",
        tally="attempts",
        meaning="batch writes left unanswered past the stall warning",
    )
    write_timeouts = _CounterField(
        "sink_write_timeouts",
        "Batch writes abandoned at the write timeout (stream reset, batch FAILURE)",
        "sink",
        tally="attempts",
        meaning="batch writes abandoned at the write timeout",
    )
    malformed_key_headers = _CounterField(
        "malformed_key_headers",
        "Source records whose key headers were malformed (record key used instead)",
    )
    # Kinds: RECORD_ALTERATIONS (kafka source, docs/concepts.md).
    records_altered = _CounterField(
        "records_altered",
        "Source records delivered other than as the broker holds them, by kind",
        "kind",
    )
    commit_failures = _CounterField(
        "commit_failures", "Offset commits that failed (the batch will be redelivered)"
    )
    sink_reconnects = _CounterField(
        "sink_reconnects", "Times a user-defined sink stream was re-established", "sink"
    )

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
        self._counters = {
            c.attribute: Counter(f"{_PREFIX}_{c.name}", c.help_text, c.labels, registry=r)
            for c in COUNTERS
        }
        for kind in RECORD_ALTERATIONS:
            self.records_altered.labels(kind=kind)
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
            for field in COUNTERS:
                if field.labels == ("sink",):
                    self._counters[field.attribute].labels(sink=role)
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


COUNTERS = tuple(f for f in vars(Metrics).values() if isinstance(f, _CounterField))
_COUNTED = tuple(f for f in COUNTERS if f.tally is not None)
# Names of `Counts` entries that count messages (each message at most once), in report order.
MESSAGE_COUNTS = tuple(f.name for f in _COUNTED if f.tally == "messages")
# Names of `Counts` entries that count attempts (one per answer or per delivery sent again).
ATTEMPT_COUNTS = tuple(f.name for f in _COUNTED if f.tally == "attempts")
COUNT_MEANINGS = {f.name: f.meaning for f in _COUNTED}


class Counts(Mapping[str, int]):
    """The counters' current totals by name (`MESSAGE_COUNTS`, then `ATTEMPT_COUNTS`), read
    without parsing Prometheus sample names; absent names count 0.

    `written` is the primary sink's; the attempt counts add up every sink role.
    """

    __slots__ = ("_totals",)

    def __init__(self, totals: Mapping[str, int] | None = None) -> None:
        given = totals or {}
        unknown = set(given) - set(COUNT_MEANINGS)
        if unknown:
            raise ValueError(f"not counts: {', '.join(sorted(unknown))}")
        self._totals = {name: given.get(name, 0) for name in COUNT_MEANINGS}

    def __getitem__(self, name: str) -> int:
        return self._totals[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._totals)

    def __len__(self) -> int:
        return len(self._totals)

    def __repr__(self) -> str:
        return f"Counts({self._totals!r})"

    @property
    def read(self) -> int:
        return self._totals["read"]

    def messages(self) -> dict[str, int]:
        return {name: self._totals[name] for name in MESSAGE_COUNTS}

    def attempts(self) -> dict[str, int]:
        return {name: self._totals[name] for name in ATTEMPT_COUNTS}


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
    found: dict[str, int] = {}
    for f in _COUNTED:
        labels = dict([f.only]) if f.only is not None else {}
        found[f.name] = _total(metrics._counters[f.attribute], **labels)
    return Counts(found)
