"""The data plane as a program: build it from a RuntimeConfig, run it, stop it cleanly.

`DataPlane` is the in-process form (what `udsink run` and tests host): it builds the source and
sinks by their config `type`, the forwarder and the HTTP server, and owns their lifecycle.
`main()` is the container's entry point (`python -m sink_runtime.dataplane --config FILE`,
`udsink runtime`): it reads and validates the config (exit 2 with the field named when it is
invalid), runs until the source is exhausted, SIGTERM/SIGINT or a changed Secret file
(`secret_files`: the kubelet starts it again with the new value), and exits 0 after a clean
drain. Kafka brokers refusing a connection for `KAFKA_REFUSED_LIMIT_S` end it the same way,
with the reason in the termination message and exit code 3 (`refusal`).

Health: /readyz is 200 when the source is connected (for Kafka: brokers reachable, no commit
stuck on the broker), every sink is reachable and no secondary sink holds the batch past its
retry budget; the body names what is not. /livez turns 503 when the data plane stopped making
progress it should have made: the Kafka consumer thread stuck inside one call for
`STUCK_CONSUMER_S`, the forwarder without a completed step (read, write, backoff, ack) for
longer than its longest allowed step plus `LIVENESS_SLACK_S` (`liveness_limit_s`), or start-up
unfinished past the longest udsink `startupTimeout` plus that slack (`startup_limit_s`; each
sink client fails its own start-up at its timeout, so this only catches what else hangs). A
blocked event loop answers no probe at all, which the kubelet counts as failed too. A hung
user-defined sink does not fail /livez (restarting the data plane would not help it): each one
has its own path, `/livez/<container>`, which its container's liveness probe asks
(`sink_runtime.config.sink_liveness`), and /readyz names it meanwhile.

Shutdown: stop reading, let the in-flight batch finish and be acknowledged within the grace
period (`shutdownGraceMs`), then close sinks and source. Past the grace period the batch is
abandoned unacknowledged: it is redelivered after the restart, so nothing unhandled is
committed. The Kafka types are imported only when configured, so the other sources and sinks
run without librdkafka.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sink_runtime.config import (
    DEFAULT_BATCH_MAX_BYTES,
    BlackholeSinkConfig,
    ConfigError,
    FileSourceConfig,
    GeneratorSourceConfig,
    KafkaSinkConfig,
    KafkaSourceConfig,
    LogSinkConfig,
    RuntimeConfig,
    SinkConfig,
    SourceConfig,
    UserSinkConfig,
    constants,
    load_config,
)
from sink_runtime.config.sink_liveness import sink_livez_path
from sink_runtime.dataplane.forwarder import SLEEP_STEP_S, Forwarder, Sinks
from sink_runtime.dataplane.http import HealthServer
from sink_runtime.dataplane.kafka_settings import DEFAULT_DELIVERY_TIMEOUT_MS
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import (
    FALLBACK,
    ON_SUCCESS,
    PRIMARY,
    SERVE,
    Sink,
    SinkError,
    SinkRole,
    Source,
)
from sink_runtime.dataplane.refusal import stop_on_refusal, write_termination_message
from sink_runtime.dataplane.secret_files import SecretFileWatch
from sink_runtime.dataplane.sinks.blackhole import BlackholeSink
from sink_runtime.dataplane.sinks.log import LogSink
from sink_runtime.dataplane.sinks.udsink import UserSinkClient
from sink_runtime.dataplane.sources.file import FileSource, FileSourceError
from sink_runtime.dataplane.sources.generator import GeneratorSource
from sink_runtime.logs import configure_logging

if TYPE_CHECKING:
    from sink_runtime.dataplane.sinks.kafka_transaction import KafkaTransaction

logger = logging.getLogger(__name__)

# The Kafka consumer thread converts records while the event loop waits on sinks; with
# CPython's default 5 ms, the loop, woken by a sink's answer, could wait that long for the
# interpreter lock. 1 ms: +12 to +16 % messages/s end to end (docs/benchmarks.md).
GIL_SWITCH_INTERVAL_S = 0.001
# The cyclic garbage collector: what start-up created (modules, classes, gRPC and Kafka clients)
# is frozen out of every collection, and the youngest generation is collected every 10,000
# allocations instead of 700. Each batch allocates thousands of short-lived containers
# (records, Datums, header dicts) that die by reference count; with the defaults a collection
# ran every ~100 records and walked every batch still in flight, about a sixth of the data
# plane's CPU (perf; the A/B figures are in docs/benchmarks.md).
GC_YOUNG_THRESHOLD = 10_000

# /livez: how long the Kafka consumer thread may stay inside one call, and the slack added to
# the forwarder's longest allowed step.
STUCK_CONSUMER_S = 60.0
LIVENESS_SLACK_S = 60.0

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_KAFKA_REFUSED = 3


def _reason(part: object, words: str = "not_ready_reason") -> str:
    """A source's or sink's own words for why it is not ready, or with `words` another of
    its reasons ("" when it has none)."""
    why = getattr(part, words, None)
    return str(why()) if callable(why) else ""


def build_source(
    config: SourceConfig, *, metrics: Metrics, batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES
) -> Source:
    """The source; `batch_max_bytes` bounds a Kafka batch's values (the other sources' values
    are bounded by their own config)."""
    match config:
        case GeneratorSourceConfig():
            return GeneratorSource(config)
        case FileSourceConfig():
            return FileSource(config)
        case KafkaSourceConfig():
            from sink_runtime.dataplane.sources.kafka import KafkaSource

            return KafkaSource(config, metrics=metrics, batch_max_bytes=batch_max_bytes)
    raise AssertionError(f"unknown source config {config!r}")  # pragma: no cover


def build_sink(
    config: SinkConfig,
    *,
    role: SinkRole,
    metrics: Metrics,
    transaction: KafkaTransaction | None = None,
) -> Sink:
    """The sink for one role (primary, fallback, on_success, serve); `role` becomes its name.
    A Kafka sink given `transaction` produces through it (exactly-once; the primary owns it)."""
    match config:
        case UserSinkConfig():
            return UserSinkClient(config, metrics=metrics, name=role)
        case LogSinkConfig():
            return LogSink(config, name=role)
        case BlackholeSinkConfig():
            return BlackholeSink(name=role)
        case KafkaSinkConfig():
            from sink_runtime.dataplane.sinks.kafka import KafkaSink

            return KafkaSink(config, name=role, transaction=transaction)
    raise AssertionError(f"unknown sink config {config!r}")  # pragma: no cover


def build_sinks(config: RuntimeConfig, *, metrics: Metrics) -> Sinks:
    transaction: KafkaTransaction | None = None
    if isinstance(config.sink, KafkaSinkConfig) and config.sink.exactly_once:
        from sink_runtime.dataplane.sinks.kafka_transaction import (
            KafkaTransaction,
            transactional_id,
        )

        transaction = KafkaTransaction(transactional_id(config.namespace, config.name))

    def optional(c: SinkConfig | None, role: SinkRole) -> Sink | None:
        if c is None:
            return None
        return build_sink(c, role=role, metrics=metrics, transaction=transaction)

    return Sinks(
        primary=build_sink(config.sink, role=PRIMARY, metrics=metrics, transaction=transaction),
        fallback=optional(config.fallback, FALLBACK),
        on_success=optional(config.on_success, ON_SUCCESS),
        serve=optional(config.serve, SERVE),
        transaction=transaction,
    )


class DataPlane:
    """One data plane: source, sinks, forwarder and (optionally) the HTTP server.

    Use: `dp = DataPlane(config)`; `await dp.run()` starts everything, forwards until the
    source is exhausted or `dp.stop()` is called, drains and closes. Parts can be handed in
    (`source=`, `sinks=`) to host a data plane around objects the caller keeps (tests, the
    local runner); they are built from the config otherwise.
    """

    def __init__(
        self,
        config: RuntimeConfig,
        *,
        metrics: Metrics | None = None,
        source: Source | None = None,
        sinks: Sinks | None = None,
        serve_http: bool = True,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.source = source or build_source(
            config.source, metrics=self.metrics, batch_max_bytes=config.batch.max_bytes
        )
        self.sinks = sinks or build_sinks(config, metrics=self.metrics)
        self.forwarder = Forwarder.from_config(
            config, self.source, self.sinks, metrics=self.metrics
        )
        self.metrics.ready.set_function(lambda: float(self.readiness()[0]))
        obs = config.observability
        self.http: HealthServer | None = (
            HealthServer(
                self.metrics,
                self.readiness,
                liveness=self.liveness,
                sink_liveness={
                    sink_livez_path(sink.config.container_type): sink.liveness
                    for sink in self.sinks.by_role().values()
                    if isinstance(sink, UserSinkClient)
                },
                host=obs.metrics_host,
                port=obs.metrics_port,
            )
            if serve_http
            else None
        )
        self.grace_s = config.shutdown_grace_ms / 1000.0
        self.liveness_limit_s = liveness_limit_s(config)
        self.startup_limit_s = startup_limit_s(config)
        self._starting_since: float | None = None  # time.monotonic() while start() runs
        self._stop = asyncio.Event()
        self._abandon = asyncio.Event()
        self._started = False
        self._forwarding = False
        self.abandoned = 0  # datums of a batch given up at the hard deadline (unacknowledged)

    def readiness(self) -> tuple[bool, str]:
        """Ready when the source is connected and every sink is reachable."""
        if not self._started:
            return False, "starting"
        not_ready = [
            _reason(s) or f"{role} sink"
            for role, s in self.sinks.by_role().items()
            if not s.is_ready()
        ]
        if not self.source.is_ready():
            not_ready.insert(0, _reason(self.source) or "source")
        if not_ready:
            return False, ", ".join(not_ready) + " not ready"
        if self.forwarder.stuck:
            return False, self.forwarder.stuck
        return True, ""

    def refused(self) -> str:
        """What the Kafka brokers refuse now (credentials, certificates), in the parts' own
        words; "" when nothing is refused."""
        parts = [self.source, *self.sinks.by_role().values()]
        return "; ".join(why for why in (_reason(p, "refused_reason") for p in parts) if why)

    def liveness(self) -> tuple[bool, str]:
        """Live unless a part stopped making the progress it should (module doc)."""
        stalled_for = getattr(self.source, "stalled_for", None)
        stuck_s = stalled_for() if callable(stalled_for) else 0.0
        if stuck_s > STUCK_CONSUMER_S:
            return False, f"the kafka consumer thread is stuck in one call for {stuck_s:.0f}s"
        starting_since = self._starting_since
        if starting_since is not None:
            age = time.monotonic() - starting_since
            if age > self.startup_limit_s:
                return False, (
                    f"start-up has not finished after {age:.0f}s (limit "
                    f"{self.startup_limit_s:.0f}s)"
                )
        if self._forwarding and not self.forwarder.stopping:
            age = self.forwarder.progress_age()
            if age > self.liveness_limit_s:
                return False, (
                    f"the forwarder completed no step for {age:.0f}s (limit "
                    f"{self.liveness_limit_s:.0f}s)"
                )
        return True, ""

    def stop(self, *, abandon_in_flight: bool = False) -> None:
        """Stop: no new batches (safe to call from a signal handler, more than once).

        The in-flight batch gets the grace period to finish; with `abandon_in_flight` it is
        given up at once instead (left unacknowledged, so it is redelivered: nothing unhandled
        is committed), for callers that know nothing more can come of it. `abandoned` then says
        how many messages it held.
        """
        if not self._stop.is_set() and not abandon_in_flight:
            logger.info("stopping: no new batches; finishing the in-flight one")
        self._stop.set()
        if abandon_in_flight:
            self._abandon.set()
        self.forwarder.stop()

    @property
    def in_flight(self) -> int:
        """Messages read and not yet acknowledged."""
        return self.forwarder.in_flight

    async def start(self) -> None:
        """Start the HTTP server, then the sinks (waiting for them), then the source."""
        if self.http is not None:
            await self.http.start()
        self._starting_since = time.monotonic()
        try:
            await asyncio.gather(*(s.start() for s in self.sinks.by_role().values()))
            await self.source.start()
        finally:
            self._starting_since = None
        self._started = True
        logger.info(
            "data plane %s/%s started: source %s, sinks %s",
            self.config.namespace,
            self.config.name,
            self.config.source.type,
            ", ".join(f"{role}={s.name}" for role, s in self.sinks.by_role().items()),
        )

    async def run(self) -> None:
        """Start, forward until exhausted or stopped, drain within the grace period, close."""
        try:
            if not self._started:
                await self.start()
            await self._forward_until_done()
        finally:
            await self.close()

    async def _forward_until_done(self) -> None:
        forwarding = asyncio.ensure_future(self.forwarder.run())
        forwarding.add_done_callback(self._forwarder_ended)
        self._forwarding = True
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({forwarding, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not forwarding.done():
                abandoning = asyncio.ensure_future(self._abandon.wait())
                await asyncio.wait(
                    {forwarding, abandoning},
                    timeout=self.grace_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                abandoning.cancel()
                if not forwarding.done():
                    self.abandoned = self.forwarder.in_flight
                    if not self._abandon.is_set():
                        logger.error(
                            "the in-flight batch (%d messages) did not finish within the %.1fs "
                            "grace period; abandoning it unacknowledged (it will be "
                            "redelivered)",
                            self.abandoned,
                            self.grace_s,
                        )
                    forwarding.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await forwarding
        finally:
            stopping.cancel()
            if not forwarding.done():
                forwarding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await forwarding
        if not forwarding.cancelled():
            forwarding.result()  # re-raise a failure of the forwarder (e.g. the source broke)

    def _forwarder_ended(self, _task: asyncio.Future[None]) -> None:
        self._forwarding = False

    async def close(self) -> None:
        """Close sinks and source, then the HTTP server; errors are logged, not raised."""
        for role, sink in self.sinks.by_role().items():
            try:
                await sink.close()
            except Exception:
                logger.exception("closing the %s sink failed", role)
        try:
            await self.source.close()
        except Exception:
            logger.exception("closing the source failed")
        if self.http is not None:
            await self.http.close()
        self._started = False


def liveness_limit_s(config: RuntimeConfig) -> float:
    """The longest one forwarder step may take, plus slack: a read fills a batch within the
    batch timeout, a user-defined sink answers within its write timeout, a Kafka sink delivers
    within its message timeout; backoff and NACK waits are taken in short steps."""
    steps = [config.batch.timeout_ms / 1000.0, SLEEP_STEP_S]
    for sink in (config.sink, config.fallback, config.on_success, config.serve):
        match sink:
            case UserSinkConfig():
                steps.append(sink.write_timeout_ms / 1000.0)
            case KafkaSinkConfig():
                timeout_ms = sink.config.get("message.timeout.ms", DEFAULT_DELIVERY_TIMEOUT_MS)
                with contextlib.suppress(ValueError):
                    steps.append(int(timeout_ms) / 1000.0)
    return max(steps) + LIVENESS_SLACK_S


def startup_limit_s(config: RuntimeConfig) -> float:
    """How long start-up may take: the sinks start together, each user-defined one ready within
    its startupTimeout (the other sinks and the sources do not wait on anything unbounded),
    plus slack."""
    sinks = (config.sink, config.fallback, config.on_success, config.serve)
    timeouts = [s.startup_timeout_ms / 1000.0 for s in sinks if isinstance(s, UserSinkConfig)]
    return max(timeouts, default=0.0) + LIVENESS_SLACK_S


async def run_dataplane(
    config: RuntimeConfig,
    *,
    handle_signals: bool = True,
    termination_message_path: str = constants.TERMINATION_MESSAGE_PATH,
    refused_limit_s: float = constants.KAFKA_REFUSED_LIMIT_S,
) -> int:
    """Run one data plane to completion; SIGTERM/SIGINT stop it gracefully, and so does a
    change of a Secret file a Kafka connection reads (`secret_files`) and a Kafka refusal
    lasting `refused_limit_s` (`refusal`: its reason goes to `termination_message_path`).
    An exit code."""
    # Before the clients are made, so a change while they start is not missed.
    watch = SecretFileWatch.of(config)
    dp = DataPlane(config)
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, dp.stop)
    watching = asyncio.ensure_future(watch.stop_on_change(dp.stop)) if watch else None
    refusal = asyncio.ensure_future(stop_on_refusal(dp.refused, dp.stop, limit_s=refused_limit_s))
    refused = False
    try:
        await dp.run()
    except (SinkError, FileSourceError) as err:
        logger.error("data plane cannot run: %s", err)
        return EXIT_FAILED
    except Exception:
        logger.exception("data plane failed")
        return EXIT_FAILED
    finally:
        if watching is not None:
            watching.cancel()
        refused = refusal.done()
        if refused:
            write_termination_message(termination_message_path, refusal.result())
        else:
            refusal.cancel()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    logger.info(
        "data plane stopped: %d messages acknowledged", int(dp.metrics.value("udsink_acked_total"))
    )
    return EXIT_KAFKA_REFUSED if refused else EXIT_OK


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="udsink runtime",
        description="Run the udsink data plane from a RuntimeConfig JSON file.",
    )
    parser.add_argument(
        "--config",
        default=constants.CONFIG_PATH,
        help=f"the RuntimeConfig JSON file (default {constants.CONFIG_PATH})",
    )
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return EXIT_BAD_CONFIG
    configure_logging(config.observability.log_level, config.observability.log_format)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    return asyncio.run(run_dataplane(config))
