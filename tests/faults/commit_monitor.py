"""An independent watch on a consumer group's commits, for the fault tier's rebalance tests.

A thread polls the group's committed offsets from the broker (its own consumer handle, never
subscribed, so never a member) every `interval_s`, and compares each answer with what the sink
processes recorded: every sink appends a datum's id to its record file, with the time, before
it answers it. A commit the broker shows at time t may only cover offsets some sink recorded at
or before t; any poll where a committed offset lies beyond the first offset of its partition no
sink had recorded by then is a violation (a crash at that moment would lose the records in
between). The files are read after the broker answered, so a record answered before the
commit was always written before it is read: the check has no race with the sinks.

Every `describe_every_s` it also asks the broker how the group stands (its members by
`client.id`, and their partitions), so a test sees each rebalance from outside too.

Nothing here touches a data plane: only the broker and the sinks' files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.support.kafka_broker import KafkaBroker


def utc_time(unix: float) -> str:
    """`17:41:07.613`: a time as the data planes' logs show it (UTC)."""
    return datetime.fromtimestamp(unix, UTC).strftime("%H:%M:%S.%f")[:-3]


@dataclass(frozen=True, slots=True)
class Violation:
    """One poll's committed offset beyond a record no sink had answered."""

    at: float  # unix time of the broker's answer
    partition: int
    committed: int
    first_unhandled: int
    unhandled: int  # offsets below `committed` no sink had answered by `at`

    def __str__(self) -> str:
        return (
            f"{utc_time(self.at)} partition {self.partition}: committed offset "
            f"{self.committed}, first unhandled offset {self.first_unhandled} "
            f"({self.unhandled} unhandled below it)"
        )


@dataclass
class _Tail:
    """The complete lines appended to one record file since the last read."""

    path: Path
    position: int = 0

    def read(self) -> list[tuple[float, str]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.position)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self.position += end
        out = []
        for line in data[:end].decode().splitlines():
            stamp, _, datum_id = line.partition(" ")
            if datum_id:
                out.append((float(stamp), datum_id))
        return out


@dataclass
class CommitMonitor:
    """Polls `group`'s committed offsets on `topic` and checks them against the sinks' records.

    `watch(path)` adds a sink's record file (any time, from any thread). Use as a context
    manager (the thread runs inside it), or `start()` / `stop()`.
    """

    broker: KafkaBroker
    group: str
    topic: str
    partitions: int
    interval_s: float = 0.05
    describe_every_s: float = 0.25
    polls: int = 0
    poll_errors: int = 0
    violations: list[Violation] = field(default_factory=list)
    # The highest committed offset each partition was seen at, and how often one went back.
    highest: dict[int, int] = field(default_factory=dict)
    went_back: int = 0
    error: BaseException | None = None  # what ended the thread early, if anything did
    _tails: list[_Tail] = field(default_factory=list)
    _later: list[tuple[float, int, int]] = field(default_factory=list)
    _handled: dict[int, set[int]] = field(default_factory=dict)
    _first_unhandled: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _last: dict[int, int] = field(default_factory=dict)
    # The group as the broker described it: each stable membership seen, and when.
    stable: list[tuple[float, dict[str, frozenset[int]]]] = field(default_factory=list)

    def watch(self, record_path: Path) -> None:
        with self._lock:
            self._tails.append(_Tail(record_path))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="commit-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the polls; then every record in the files counts as handled (for the end)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        with self._lock:
            self._absorb(float("inf"))

    @contextmanager
    def running(self) -> Iterator[CommitMonitor]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # --- what was seen ---

    def handled(self) -> dict[int, set[int]]:
        """Every offset some sink recorded, by partition, as of the last poll (all of them
        once stopped)."""
        with self._lock:
            return {p: set(offsets) for p, offsets in self._handled.items()}

    def handled_count(self) -> int:
        """How many distinct records the sinks recorded, as of the last poll."""
        with self._lock:
            return sum(map(len, self._handled.values()))

    def committed(self) -> dict[int, int]:
        """The highest committed offset seen on each partition so far."""
        with self._lock:
            return dict(self.highest)

    def owners(self) -> dict[str, frozenset[int]]:
        """The members of the group (by client.id) and their partitions, as last seen stable."""
        with self._lock:
            return dict(self.stable[-1][1]) if self.stable else {}

    def group_history(self) -> str:
        return "\n".join(
            f"  {utc_time(at)} " + ", ".join(f"{m}{sorted(ps)}" for m, ps in sorted(o.items()))
            for at, o in self.stable
        )

    def violating_polls(self) -> int:
        return len({v.at for v in self.violations})

    def summary(self) -> str:
        by_partition: dict[int, list[Violation]] = {}
        for v in self.violations:
            by_partition.setdefault(v.partition, []).append(v)
        lines = [
            f"{self.violating_polls()} of {self.polls} polls saw a committed offset beyond a "
            f"record no sink had answered ({self.poll_errors} polls unanswered; a committed "
            f"offset went back {self.went_back} times)"
        ]
        if self.error is not None:
            lines.append(f"  the monitor stopped early: {self.error!r}")
        for p, vs in sorted(by_partition.items()):
            worst = max(vs, key=lambda v: v.unhandled)
            also = "" if worst is vs[0] else f"; the worst: {worst}"
            lines.append(f"  {len(vs)} polls on partition {p}; the first: {vs[0]}{also}")
        return "\n".join(lines)

    # --- the thread ---

    def _run(self) -> None:
        try:
            self._poll()
        except BaseException as exc:  # the test fails on it: a monitor that died saw nothing
            self.error = exc

    def _poll(self) -> None:
        consumer = Consumer(
            self.broker.client_config(**{"group.id": self.group, "enable.auto.commit": False})
        )
        admin = self.broker.admin()
        wanted = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        described = 0.0
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                if began - described >= self.describe_every_s:
                    described = began
                    self._describe(admin)
                try:
                    answer = consumer.committed(wanted, timeout=5)
                except KafkaException:
                    self.poll_errors += 1
                else:
                    at = time.time()  # the answer shows commits made before this
                    committed = {tp.partition: tp.offset for tp in answer if tp.offset >= 0}
                    with self._lock:
                        self._check(at, committed)
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - began)))
        finally:
            consumer.close()

    def _describe(self, admin: AdminClient) -> None:
        try:
            group = admin.describe_consumer_groups([self.group])[self.group].result(5)
        except (KafkaException, TimeoutError):  # not known yet, or the broker was slow
            return
        if group.state != ConsumerGroupState.STABLE:
            return
        owners = {
            m.client_id: frozenset(
                tp.partition for tp in m.assignment.topic_partitions if tp.topic == self.topic
            )
            for m in group.members
        }
        with self._lock:
            if not self.stable or self.stable[-1][1] != owners:
                self.stable.append((time.time(), owners))

    def _absorb(self, upto: float) -> None:
        """Count the records stamped at or before `upto` as handled (files read now)."""
        for tail in self._tails:
            for stamp, datum_id in tail.read():
                topic, p, o = datum_id.rsplit(":", 2)
                if topic == self.topic:
                    self._later.append((stamp, int(p), int(o)))
        keep = []
        for stamp, partition, offset in self._later:
            if stamp > upto:
                keep.append((stamp, partition, offset))
                continue
            offsets = self._handled.setdefault(partition, set())
            offsets.add(offset)
            low = self._first_unhandled.get(partition, 0)
            while low in offsets:
                low += 1
            self._first_unhandled[partition] = low
        self._later = keep

    def _check(self, at: float, committed: dict[int, int]) -> None:
        self.polls += 1
        self._absorb(at)
        for partition, offset in committed.items():
            if offset < self._last.get(partition, 0):
                self.went_back += 1
            self._last[partition] = offset
            self.highest[partition] = max(offset, self.highest.get(partition, 0))
            low = self._first_unhandled.get(partition, 0)
            if offset > low:
                handled = self._handled.get(partition, set())
                missing = sum(1 for o in range(low, offset) if o not in handled)
                self.violations.append(Violation(at, partition, offset, low, missing))
