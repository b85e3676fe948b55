"""The Forwarder: read a batch, deliver it, route every result, and commit only what is done.

This is where the delivery guarantees live, written once for every source and sink:
- a batch is the unit of acknowledgement: the source's `ack` (the Kafka commit) is called only
  after every datum of the batch reached a terminal outcome (accepted, written to the fallback
  / on-success / serve sink, or dropped by the user's explicit `onFailure: drop`);
- batches are processed one at a time, so per-partition order is the source's order (the
  next batch is read while one is forwarded, and batches' commits overlap later batches'
  delivery, but delivery itself is strictly one batch after another; see `run()`);
- every sink answer goes through `contract.check_results`; a misbehaving sink's answer is logged
  with the offending ids, counted, and the affected datums are treated as FAILURE, so they are
  retried and never committed unhandled;
- after a contract violation the sink's stream is reset (`Sink.reset()`): answers that came
  out of step with the batches are never read as answers to a later batch;
- FAILURE retries only the failed datums with backoff; NACK holds a datum for its delay without
  spending the retry budget; writes to the secondary sinks (fallback, on-success, serve) are
  retried `retryStrategy.secondary.steps` times, then `onExhausted` decides: `stop` (hold the
  batch, report the stuck sink as not ready, keep trying at the capped delay) or `log` (log
  the record's coordinates, count it as dropped, go on);
- before each delivery round the source confirms the datums are still its to deliver (a
  partition revoked since the read is left to its new owner);
- exactly-once (a `transaction` given): each batch is forwarded inside a Kafka transaction and
  committed with its source offsets before the next batch starts; an aborted transaction
  (`BatchMustRestart`) voids every write of the batch, which starts again from its first
  write (sinks/kafka_transaction.py).
Stopping is cooperative: `stop()` ends reading; the in-flight batch finishes (the owner may
cancel `run()` at a hard deadline, in which case nothing of that batch is acknowledged).
Liveness: `progress_age()` is how long since the forwarder last completed a step (a read, a
write, a backoff sleep, an ack); the data plane's /livez compares it with the longest step
the configuration allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, Coroutine, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, cast

from sink_runtime.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_DELIVERIES,
    RuntimeConfig,
    SecondaryRetry,
    constants,
)
from sink_runtime.config.durations import BATCH_TIMEOUT, NACK_DELAY
from sink_runtime.config.errors import FALLBACK_NEEDED
from sink_runtime.contract import CheckedResults, check_results
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import (
    FALLBACK,
    FALLBACK_STATUS,
    MAX_DELIVERIES,
    ON_SUCCESS,
    PRIMARY,
    RETRIES_EXHAUSTED,
    SERVE,
    AllSucceeded,
    BatchMustRestart,
    RouteReason,
    Sink,
    SinkError,
    SinkRole,
    Source,
    SourceBatch,
    Transaction,
    TransactionalSource,
    exhausted,
)
from sink_runtime.dataplane.retry import RetryPolicy
from sink_runtime.logs import batch_fields, ids_text
from sink_runtime.types import Datum, Response, Status

logger = logging.getLogger(__name__)


# A secondary sink stores what it is given; it may not re-route (docs/concepts.md, "When a sink
# breaks the contract": a fallback sink answering FALLBACK/SERVE/ON_SUCCESS is a violation; the
# same rule holds for the others).
SECONDARY_ALLOWED: frozenset[Status] = frozenset({Status.SUCCESS, Status.FAILURE, Status.NACK})
# Acknowledgements still unanswered when the next batch is finished, at most: the source
# orders and coalesces commits itself (the Kafka source commits acked batches together at
# most every `COMMIT_INTERVAL_S`), so an ack may wait a while, and only this bound makes the
# forwarder wait for one.
MAX_ACKS_IN_FLIGHT = 64
# Backoff and NACK waits are slept in steps this long at most, each one counted as progress.
SLEEP_STEP_S = 5.0
_ONLY_SUCCESS = {Status.SUCCESS}
_status_of = attrgetter("status")


def _label(role: str, sink: Sink) -> str:
    """How log lines name a sink: its role, and its own name when that says more."""
    return f"{role} sink" if sink.name == role else f"{role} sink {sink.name}"


@dataclass(slots=True)
class Sinks:
    """The sinks of one data plane, by role. Only `primary` is required."""

    primary: Sink
    fallback: Sink | None = None
    on_success: Sink | None = None
    serve: Sink | None = None
    # Exactly-once: the transaction the Kafka sinks produce in (the forwarder drives it).
    transaction: Transaction | None = None

    def by_role(self) -> dict[SinkRole, Sink]:
        roles: dict[SinkRole, Sink | None] = {PRIMARY: self.primary, FALLBACK: self.fallback}
        roles |= {ON_SUCCESS: self.on_success, SERVE: self.serve}
        return {role: sink for role, sink in roles.items() if sink is not None}

    def primary_allowed(self) -> tuple[frozenset[Status], str]:
        """Statuses the primary may answer, and why the others are refused."""
        allowed = {Status.SUCCESS, Status.FAILURE, Status.NACK}
        missing: list[str] = []
        for status, sink, what in (
            (Status.FALLBACK, self.fallback, "fallback sink"),
            (Status.ON_SUCCESS, self.on_success, "on-success sink"),
            (Status.SERVE, self.serve, "serve sink"),
        ):
            if sink is not None:
                allowed.add(status)
            else:
                missing.append(f"no {what} is configured")
        return frozenset(allowed), "; ".join(missing)


class _Succeeded(dict[str, Response]):
    """The checked results of a write whose every datum succeeded (`AllSucceeded`).

    Built on first lookup: callers only look up ids of the datums that were written.
    """

    __slots__ = ()

    def __missing__(self, datum_id: str) -> Response:
        result = self[datum_id] = Response.ok(datum_id)
        return result


@dataclass(slots=True)
class _Pending:
    """One datum of the in-flight batch that has no terminal outcome yet."""

    datum: Datum
    index: int
    deliveries: int = 0  # times sent to the primary sink
    retries: int = 0  # retry budget spent (FAILURE, and onFailure=retry beyond it)
    due: float = 0.0  # loop time before which it is not sent again
    last_status: Status = Status.FAILURE
    last_error: str = ""
    warned: bool = False  # the "keeps retrying" warning was logged


@dataclass(slots=True)
class _Routes:
    """What one round of primary results sends to the secondary sinks."""

    fallback: list[tuple[Datum, RouteReason]] = field(default_factory=list)
    on_success: list[Datum] = field(default_factory=list)
    serve: list[Datum] = field(default_factory=list)


def fallback_datum(p: _Pending) -> Datum:
    """The datum as written to the fallback sink: its own headers plus the error headers."""
    return p.datum.with_headers(
        {
            constants.FALLBACK_STATUS_HEADER: p.last_status.name,
            constants.FALLBACK_ERROR_HEADER: p.last_error,
            constants.FALLBACK_ATTEMPTS_HEADER: str(p.deliveries),
            constants.FALLBACK_SOURCE_HEADER: p.datum.id,
        }
    )


def on_success_datum(datum: Datum, result: Response) -> Datum:
    """The attached message (with its headers, our extension) or else the original datum."""
    m = result.message
    if m is None:
        return datum
    return Datum(
        id=datum.id,
        value=m.value,
        keys=m.keys,
        event_time=datum.event_time,
        watermark=datum.watermark,
        headers=m.headers,
    )


def serve_datum(datum: Datum, result: Response) -> Datum:
    """A SERVE payload, keyed by the datum id, with the datum's headers for correlation."""
    return Datum(
        id=datum.id,
        value=result.serve_payload or b"",
        keys=(datum.id,),
        event_time=datum.event_time,
        watermark=datum.watermark,
        headers=datum.headers,
    )


class Forwarder:
    """Moves batches from one source through the sinks, at least once, in order.

    `run()` loops until the source is exhausted or `stop()` is called; `forward(batch)`
    delivers one batch to terminal outcomes without acknowledging it (for callers that drive
    batches themselves).
    """

    def __init__(
        self,
        source: Source,
        sinks: Sinks,
        *,
        metrics: Metrics,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_timeout_s: float = BATCH_TIMEOUT.default_s,
        retry: RetryPolicy | None = None,
        nack_delay_s: float = NACK_DELAY.default_s,
        nack_max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        secondary: SecondaryRetry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.transaction = sinks.transaction
        if self.transaction is not None and not hasattr(source, "commit_with"):
            raise ValueError("exactly-once needs a source that commits inside a transaction")
        self.sinks = sinks
        self.metrics = metrics
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s
        self.retry = retry or RetryPolicy()
        self.nack_delay_s = nack_delay_s
        self.nack_max_deliveries = nack_max_deliveries
        self.secondary = secondary or SecondaryRetry()
        self._rng = rng or random.Random()
        if self.retry.on_failure == "fallback" and sinks.fallback is None:
            raise ValueError(FALLBACK_NEEDED)
        self._allowed, self._why_not_allowed = sinks.primary_allowed()
        self._written_primary = metrics.written.labels(sink=PRIMARY)
        metrics.known_labels(sinks.by_role())
        self._stop = asyncio.Event()
        self.in_flight = 0  # datums of the batch being forwarded (0 between batches)
        # For observers (the local runner's progress line): the write each sink role is busy
        # with (monotonic start, datums), and the in-flight batch's datums with no outcome yet.
        self.writing: dict[str, tuple[float, int]] = {}
        self._waiting: list[_Pending] = []
        # Why the forwarder cannot finish its batch (a secondary sink refusing past its
        # budget with onExhausted=stop); "" while it can.
        self.stuck = ""
        self._last_step = time.monotonic()

    @classmethod
    def from_config(
        cls,
        config: RuntimeConfig,
        source: Source,
        sinks: Sinks,
        *,
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> Forwarder:
        return cls(
            source,
            sinks,
            metrics=metrics,
            batch_size=config.batch.size,
            batch_timeout_s=config.batch.timeout_ms / 1000.0,
            retry=RetryPolicy.from_config(config.retry_strategy),
            nack_delay_s=config.nack.delay_ms / 1000.0,
            nack_max_deliveries=config.nack.max_deliveries,
            secondary=config.retry_strategy.secondary,
            rng=rng,
        )

    def exhausted_in_flight(self) -> dict[str, str]:
        """Id -> last error of each pending datum, when every one spent its retry budget.

        Empty while any pending datum still has budget (or none is pending). Under
        onFailure=retry such datums are retried forever; an owner that replays a finite
        input uses this to end the run instead.
        """
        waiting = self._waiting
        if not waiting or not all(p.warned for p in waiting):
            return {}
        return {p.datum.id: f"{p.last_status.name}: {p.last_error}" for p in waiting}

    # --- the loop ---

    def stop(self) -> None:
        """Stop reading; the in-flight batch is finished and acknowledged by `run()`."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def progress_age(self) -> float:
        """Seconds since the forwarder last completed a step."""
        return time.monotonic() - self._last_step

    def _stepped(self) -> None:
        self._last_step = time.monotonic()

    async def _sleep(self, delay_s: float) -> None:
        """A deliberate wait (backoff, NACK delay), in steps that count as progress."""
        end = time.monotonic() + delay_s
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, SLEEP_STEP_S))
            self._stepped()

    async def run(self) -> None:
        """Read, forward and acknowledge batches until stopped or the source is exhausted.

        One read ahead and acknowledgements behind: the next batch is read while the current
        one is forwarded (the Kafka source reads on its own thread, a user-defined sink works
        in its own process), and finished batches' commits run while later ones are forwarded.
        Batches are still forwarded strictly one after another in the source's order; a batch
        is acknowledged only once all of it reached a terminal outcome, acknowledgements are
        asked for in batch order (the source commits in that order; at most
        `MAX_ACKS_IN_FLIGHT` wait at once), and run() returns only after the last one
        finished. A batch read ahead when stop() comes is dropped unacknowledged, so it is
        redelivered.
        """
        if self.transaction is not None:
            await self._run_in_transactions(self.transaction)
            return
        acks: list[asyncio.Future[None]] = []
        try:
            async with contextlib.aclosing(self._batches()) as batches:
                async for batch, started in batches:
                    await self.forward(batch)
                    acks = [a for a in acks if not a.done()]
                    if len(acks) >= MAX_ACKS_IN_FLIGHT:
                        await acks.pop(0)
                    acks.append(asyncio.ensure_future(self._ack(batch, started)))
            while acks:
                await acks.pop(0)
        finally:
            if acks:
                # Left early: a failure finishes the pending commits of finished batches; a
                # cancellation (the hard deadline) abandons them (the batches are redelivered).
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    for a in acks:
                        a.cancel()
                for a in acks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await a

    async def _batches(self) -> AsyncGenerator[tuple[SourceBatch, float], None]:
        """The batches to forward, in source order, each with when it was taken; the next
        one is read while the caller forwards this one. A read ahead when the loop ends is
        abandoned (nothing after it was acknowledged, so nothing is lost)."""
        ahead: asyncio.Future[SourceBatch] | None = None
        try:
            while not self._stop.is_set():
                if ahead is None:
                    if self.source.exhausted:
                        break
                    ahead = self._start_read()
                batch = await self._take(ahead)
                ahead = None
                self._stepped()
                if batch is None or not batch.datums:
                    continue
                started = time.monotonic()
                if not self._stop.is_set() and not self.source.exhausted:
                    ahead = self._start_read()
                self.metrics.read.inc(len(batch.datums))
                self.in_flight = len(batch.datums)
                yield batch, started
                self.in_flight = 0
        finally:
            if ahead is not None:
                await self._abandon(ahead)

    async def _run_in_transactions(self, transaction: Transaction) -> None:
        """run() for exactly-once: each batch forwarded and committed in a transaction of its
        own before the next one starts (the next batch's writes must not join this one's
        transaction)."""
        async with contextlib.aclosing(self._batches()) as batches:
            async for batch, started in batches:
                await self._forward_in_transaction(transaction, batch, started)

    async def _forward_in_transaction(
        self, transaction: Transaction, batch: SourceBatch, started: float
    ) -> None:
        """Forward `batch` and commit it with its offsets; an aborted transaction starts the
        batch again (after the retry policy's backoff), until it commits or stop() comes (then
        nothing of it is committed, and it is redelivered)."""
        source = cast(TransactionalSource, self.source)
        restarts = 0
        while True:
            try:
                await transaction.begin()
                delivered = await self.forward(batch)
                durable = await source.commit_with(batch, delivered, transaction.commit)
            except BatchMustRestart as err:
                await transaction.abort()
                self.metrics.commit_failures.inc()
                restarts += 1
                first, last = batch.datums[0].id, batch.datums[-1].id
                if self._stop.is_set():
                    logger.warning(
                        "batch %s .. %s not committed (stopping): %s; it is redelivered",
                        first,
                        last,
                        err,
                    )
                    return
                delay = self.retry.delay_s(restarts, self._rng)
                logger.warning(
                    "batch %s .. %s starts again in %.1fs (attempt %d): %s",
                    first,
                    last,
                    delay,
                    restarts + 1,
                    err,
                )
                await self._sleep(delay)
                continue
            except BaseException:
                await asyncio.shield(transaction.abort())
                raise
            self._stepped()
            self.metrics.acked.inc(durable)
            self.metrics.batch_latency.observe(time.monotonic() - started)
            return

    def _start_read(self) -> asyncio.Future[SourceBatch]:
        return asyncio.ensure_future(self.source.read(self.batch_size, self.batch_timeout_s))

    async def _take(self, read: asyncio.Future[SourceBatch]) -> SourceBatch | None:
        """The batch `read` gives, or None when stop() came first (the read is abandoned)."""
        if not read.done():
            stopped = asyncio.ensure_future(self._stop.wait())
            either: set[asyncio.Future[Any]] = {read, stopped}
            try:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                if not read.done():
                    await self._abandon(read)
        return read.result() if not read.cancelled() else None

    @staticmethod
    async def _abandon(read: asyncio.Future[SourceBatch]) -> None:
        """Drop a read: nothing after it is acknowledged, so abandoning it loses nothing."""
        read.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await read

    async def _ack(self, batch: SourceBatch, started: float) -> None:
        """Make a finished batch durable; `started` is when it was taken (batch latency)."""
        n = len(batch.datums)
        first, last = batch.datums[0].id, batch.datums[-1].id
        acking = self.source.ack(batch)
        # The commit may wait (the source coalesces them): the datums, and their values, are
        # not kept alive for it here.
        del batch
        try:
            durable = await acking
        except Exception as err:
            # The batch is redelivered after a restart or rebalance: at-least-once holds.
            self.metrics.commit_failures.inc()
            logger.error(
                "acknowledging a batch of %d messages (%s .. %s) failed: %s", n, first, last, err
            )
            return
        self._stepped()
        self.metrics.acked.inc(durable)
        self.metrics.batch_latency.observe(time.monotonic() - started)

    # --- one batch ---

    async def forward(self, batch: SourceBatch) -> list[Datum]:
        """Deliver `batch` until every datum reached a terminal outcome (no acknowledgement);
        the datums it delivered (those the source still owned when it began)."""
        datums = await self.source.still_owned(batch.datums, batch)
        if not datums:
            return datums
        # The first delivery sends the whole batch as read; when every answer is SUCCESS (the
        # usual case) the batch is done with no per-datum bookkeeping at all.
        results = await self._write_checked(
            PRIMARY, self.sinks.primary, datums, self._allowed, self._why_not_allowed
        )
        if type(results) is _Succeeded or set(map(_status_of, results.values())) == _ONLY_SUCCESS:
            self._written_primary.inc(len(datums))
            return datums
        loop = asyncio.get_running_loop()
        first = [_Pending(d, i, deliveries=1) for i, d in enumerate(datums)]
        waiting = await self._apply(first, [], results, loop.time())
        while waiting:
            self._waiting = waiting
            now = loop.time()
            first_due = min(p.due for p in waiting)
            if first_due > now:
                await self._sleep(first_due - now)
                now = loop.time()
            this_round = [p for p in waiting if p.due <= now]
            if not this_round:
                continue  # woken a clock tick early
            later = [p for p in waiting if p.due > now]
            this_round, later = await self._still_owned(batch, this_round, later)
            if not this_round:
                waiting = later
                continue
            results = await self._deliver(this_round)
            waiting = await self._apply(this_round, later, results, loop.time())
        self._waiting = []
        return datums

    async def _still_owned(
        self, batch: SourceBatch, this_round: list[_Pending], later: list[_Pending]
    ) -> tuple[list[_Pending], list[_Pending]]:
        """The pending datums the source may still deliver (a retry outlasting a rebalance)."""
        kept = await self.source.still_owned([p.datum for p in this_round + later], batch)
        if len(kept) == len(this_round) + len(later):
            return this_round, later
        ids = {d.id for d in kept}
        return (
            [p for p in this_round if p.datum.id in ids],
            [p for p in later if p.datum.id in ids],
        )

    async def _apply(
        self,
        this_round: list[_Pending],
        later: list[_Pending],
        results: dict[str, Response],
        now: float,
    ) -> list[_Pending]:
        """Route one round's results; the datums still pending afterwards, in batch order."""
        routes = _Routes()
        held: list[_Pending] = []
        accepted = 0
        success = Status.SUCCESS
        for p in this_round:
            result = results[p.datum.id]
            # The common case first, without a per-datum metric update.
            if result.status is success:
                accepted += 1
            elif self._route(p, result, routes, now):
                held.append(p)
        self._written_primary.inc(accepted)
        self._log_failures(this_round, results)
        await self._write_routes(routes)
        return sorted(later + held, key=lambda p: p.index) if held else later

    def _log_failures(self, sent: list[_Pending], results: dict[str, Response]) -> None:
        failed = [p for p in sent if results[p.datum.id].status is Status.FAILURE]
        if not failed:
            return
        first = failed[0]
        logger.warning(
            "primary sink: %d of %d messages FAILED (%s); first: %s after %d deliveries: %s",
            len(failed),
            len(sent),
            ids_text([p.datum.id for p in failed]),
            first.datum.id,
            first.deliveries,
            first.last_error,
            extra=batch_fields([p.datum.id for p in failed]),
        )

    async def _deliver(self, pending: list[_Pending]) -> dict[str, Response]:
        """Send to the primary; a usable result per datum (FAILURE where the sink misbehaved)."""
        datums = [p.datum for p in pending]
        for p in pending:
            p.deliveries += 1
        return await self._write_checked(
            PRIMARY, self.sinks.primary, datums, self._allowed, self._why_not_allowed
        )

    async def _write_checked(
        self,
        role: str,
        sink: Sink,
        datums: Sequence[Datum],
        allowed: frozenset[Status],
        why_not_allowed: str,
    ) -> dict[str, Response]:
        ids = [d.id for d in datums]
        self.writing[role] = (started := time.monotonic(), len(ids))
        try:
            results = await sink.write(datums)
        except BatchMustRestart:
            raise
        except SinkError as err:
            logger.warning(
                "%s could not take %d messages (%s): %s",
                _label(role, sink),
                len(ids),
                ids_text(ids),
                err,
            )
            return {i: Response.failure(i, str(err)) for i in ids}
        except Exception as err:
            # A bug or an unexpected failure inside a sink must not lose the batch.
            logger.exception("%s failed unexpectedly on %d messages", _label(role, sink), len(ids))
            return {i: Response.failure(i, f"{type(err).__name__}: {err}") for i in ids}
        finally:
            self.writing.pop(role, None)
            self._stepped()
            self.metrics.write_seconds.labels(sink=role).observe(time.monotonic() - started)
        if type(results) is AllSucceeded and results.ids == ids:
            return _Succeeded()  # one SUCCESS per datum, in order: the contract holds
        checked = check_results(ids, results, allowed, why_not_allowed=why_not_allowed)
        if not checked.ok:
            self._report_violations(role, sink, checked)
            # Answers may now be out of step with batches: start the next write afresh.
            await sink.reset()
        valid = checked.valid
        for i in checked.affected:
            valid[i] = Response.failure(i, f"sink broke the contract: {checked.describe()}")
        return valid

    def _report_violations(self, role: str, sink: Sink, checked: CheckedResults) -> None:
        for v in checked.violations:
            self.metrics.contract_violations.labels(sink=role, kind=v.kind).inc()
        if not checked.affected:
            logger.error(
                "%s broke the contract: %s; every message of the batch has its answer, the "
                "extra answers are ignored; resetting the stream",
                _label(role, sink),
                checked.describe(),
            )
            return
        logger.error(
            "%s broke the contract: %s; %d messages treated as FAILURE "
            "(retried, never committed unhandled): %s; resetting the stream",
            _label(role, sink),
            checked.describe(),
            len(checked.affected),
            ids_text(list(checked.affected)),
            extra=batch_fields(list(checked.affected)),
        )

    def _route(self, p: _Pending, result: Response, routes: _Routes, now: float) -> bool:
        """Apply one primary result; True when the datum stays pending (held for later)."""
        m = self.metrics
        match result.status:
            case Status.SUCCESS:
                self._written_primary.inc()
                return False
            case Status.ON_SUCCESS:
                self._written_primary.inc()
                routes.on_success.append(on_success_datum(p.datum, result))
                return False
            case Status.SERVE:
                self._written_primary.inc()
                routes.serve.append(serve_datum(p.datum, result))
                return False
            case Status.FALLBACK:
                p.last_status, p.last_error = Status.FALLBACK, result.err
                routes.fallback.append((fallback_datum(p), FALLBACK_STATUS))
                return False
            case Status.FAILURE:
                m.failed.labels(sink=PRIMARY).inc()
                p.last_status = Status.FAILURE
                p.last_error = result.err or "FAILURE without an error message"
                if not self.retry.exhausted(p.retries):
                    self._schedule_retry(p, now)
                    return True
                return self._on_failure(p, RETRIES_EXHAUSTED, routes, now)
            case Status.NACK:
                m.nacked.inc()
                p.last_status = Status.NACK
                p.last_error = result.nack_reason or "NACK"
                limit = result.nack_max_deliveries
                limit = self.nack_max_deliveries if limit is None else limit
                if limit and p.deliveries >= limit:
                    return self._on_failure(p, MAX_DELIVERIES, routes, now)
                delay_ms = result.nack_delay_ms
                p.due = now + (self.nack_delay_s if delay_ms is None else delay_ms / 1000.0)
                return True
        raise AssertionError(f"unhandled status {result.status!r}")  # pragma: no cover

    def _schedule_retry(self, p: _Pending, now: float) -> None:
        p.retries += 1
        p.due = now + self.retry.delay_s(p.retries, self._rng)
        self.metrics.retried.labels(sink=PRIMARY).inc()

    def _on_failure(self, p: _Pending, reason: RouteReason, routes: _Routes, now: float) -> bool:
        """The retry budget (or the NACK delivery bound) ran out: apply onFailure."""
        policy = self.retry.on_failure
        if policy == "retry":
            if not p.warned:
                p.warned = True
                logger.warning(
                    "message %s: %s after %d deliveries (last %s: %s); onFailure=retry "
                    "keeps retrying it",
                    p.datum.id,
                    reason,
                    p.deliveries,
                    p.last_status.name,
                    p.last_error,
                )
            self._schedule_retry(p, now)
            return True
        if policy == "fallback":
            routes.fallback.append((fallback_datum(p), reason))
            return False
        self.metrics.dropped.labels(reason=reason).inc()
        logger.warning(
            "message %s dropped (onFailure=drop): %s after %d deliveries; last %s: %s",
            p.datum.id,
            reason,
            p.deliveries,
            p.last_status.name,
            p.last_error,
        )
        return False

    # --- secondary sinks ---

    async def _write_routes(self, routes: _Routes) -> None:
        jobs: list[Coroutine[Any, Any, object]] = []
        if routes.fallback:
            assert self.sinks.fallback is not None
            jobs.append(self._write_fallback(self.sinks.fallback, routes.fallback))
        if routes.on_success:
            assert self.sinks.on_success is not None
            jobs.append(
                self._write_until_accepted(ON_SUCCESS, self.sinks.on_success, routes.on_success)
            )
        if routes.serve:
            assert self.sinks.serve is not None
            jobs.append(self._write_until_accepted(SERVE, self.sinks.serve, routes.serve))
        if jobs:
            # Every write finishes before a failure goes up: an aborted transaction must not
            # have a write of this batch still running.
            outcomes = await asyncio.gather(*jobs, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome

    async def _write_fallback(self, sink: Sink, items: list[tuple[Datum, RouteReason]]) -> None:
        reasons = {d.id: reason for d, reason in items}
        accepted = await self._write_until_accepted(FALLBACK, sink, [d for d, _ in items])
        for i in accepted:
            self.metrics.fallback.labels(reason=reasons[i]).inc()

    async def _write_until_accepted(
        self, role: SinkRole, sink: Sink, datums: list[Datum]
    ) -> list[str]:
        """Write to a secondary sink, retrying what it does not accept.

        These datums have left the primary, so the secondary write is their only way to a
        terminal outcome: after `secondary.steps` retries, `onExhausted` decides (module doc).
        Returns the ids in the order they were accepted.
        """
        accepted: list[str] = []
        pending = datums
        retries = 0
        while pending:
            results = await self._write_checked(role, sink, pending, SECONDARY_ALLOWED, "")
            still: list[Datum] = []
            nack_delay = 0.0
            for d in pending:
                r = results[d.id]
                if r.status == Status.SUCCESS:
                    accepted.append(d.id)
                    continue
                still.append(d)
                if r.status == Status.NACK:
                    self.metrics.nacked.inc()
                    delay_ms = r.nack_delay_ms
                    nack_delay = max(
                        nack_delay, self.nack_delay_s if delay_ms is None else delay_ms / 1000.0
                    )
                else:
                    self.metrics.failed.labels(sink=role).inc()
            self.metrics.written.labels(sink=role).inc(len(pending) - len(still))
            if role == ON_SUCCESS:
                self.metrics.on_success.inc(len(pending) - len(still))
            elif role == SERVE:
                self.metrics.served.inc(len(pending) - len(still))
            if still and retries >= self.secondary.steps:
                if self.secondary.on_exhausted == "log":
                    self._give_up(role, sink, still, results)
                    return accepted
                self._stuck(role, sink, still, results)
            if still:
                retries += 1
                self.metrics.retried.labels(sink=role).inc(len(still))
                delay = max(nack_delay, self.retry.delay_s(retries, self._rng))
                first = results[still[0].id]
                logger.warning(
                    "%s did not accept %d messages (%s; first: %s %s); retry %d in %.3fs",
                    _label(role, sink),
                    len(still),
                    ids_text([d.id for d in still]),
                    first.status.name,
                    first.err or first.nack_reason or "",
                    retries,
                    delay,
                )
                await self._sleep(delay)
            pending = still
        if self.stuck:
            logger.warning("%s took the held messages; going on", _label(role, sink))
            self.stuck = ""
        return accepted

    def _stuck(
        self, role: SinkRole, sink: Sink, still: list[Datum], results: dict[str, Response]
    ) -> None:
        """onExhausted=stop: hold the batch and say why, once; retries go on at the cap."""
        if self.stuck:
            return
        first = results[still[0].id]
        self.stuck = (
            f"{_label(role, sink)} refuses {len(still)} message(s) after "
            f"{self.secondary.steps} retries (first {still[0].id}: {first.status.name} "
            f"{first.err or first.nack_reason or ''})"
        ).strip()
        logger.error(
            "%s; onExhausted=stop: nothing more is read or committed until it takes them "
            "(retrying every %.1fs at most)",
            self.stuck,
            self.retry.cap_s,
            extra=batch_fields([d.id for d in still]),
        )

    def _give_up(
        self, role: SinkRole, sink: Sink, still: list[Datum], results: dict[str, Response]
    ) -> None:
        """onExhausted=log: each record's coordinates go to the log, counted as dropped."""
        self.metrics.dropped.labels(reason=exhausted(role)).inc(len(still))
        for d in still:
            r = results[d.id]
            logger.error(
                "message %s dropped (onExhausted=log): %s did not take it after %d retries; "
                "last %s: %s; keys %s, %d value bytes, event time %s",
                d.id,
                _label(role, sink),
                self.secondary.steps,
                r.status.name,
                r.err or r.nack_reason or "",
                list(d.keys),
                len(d.value),
                d.event_time.isoformat(),
                extra=batch_fields([d.id]),
            )
