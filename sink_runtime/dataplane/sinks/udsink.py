"""The client of a user-defined sink on a Unix socket (the `udsink` sink type).

It speaks both paths of the contract (docs/design/contract.md) through one interface,
`transport.SinkTransport`, and picks the path at start:
- the batch extension `udsink.v1.BatchSink/WriteBatch` (grpcio_transport.py) when the
  server-info file advertises it (and the config allows it);
- `sink.v1.Sink/SinkFn` (sink_v1_transport.py, over our own HTTP/2 stream) otherwise, the path
  every Numaflow SDK serves.
What the contract asks of a client is kept here, the same for both: the timeouts, the oversized
check, resending on a broken stream, liveness, and decoding the answers. The transports report
every failure as one of transport.py's errors.

A broken stream (the server's INTERNAL abort for a handler exception, a restarting sidecar) or
one the sink broke the wire contract on is re-established (IsReady, handshake) and the same
batch is sent again, a bounded number of times; then SinkError names the sink and the last
error, and the forwarder retries the batch with its backoff. Answers are returned as they came:
the forwarder checks them against the contract, so a misbehaving sink is reported once, in one
place. A wire violation the transport reports as it happens (between batches, say) is logged
and counted here (kind `protocol`).

Every wait on a sink is bounded. `start()` (server-info file, IsReady, the sink.v1 handshake)
ends within `startupTimeout`, or raises SinkError naming what was not answered. One `write()`
(sending, the answers, and any reconnect and resend on the way) ends within `writeTimeout`: at
the deadline the stream is reset and the batch fails (SinkError naming what was awaited; the
forwarder retries it with backoff); a warning names the sink and the batch once it has waited
`STALL_WARNING_FRACTION` of that.

How long the sink has kept the data plane waiting without an answer is kept per sink
(`unanswered.UnansweredClock`, bounds in `sink_runtime.config.sink_liveness`): `liveness()`
turns false past the bound, which the data plane serves on the sink container's liveness path
and in /readyz. A new sink process is recognised by its socket file being created anew (every
server binds a fresh one), checked at each (re)connect and each liveness check.

Messages are serialized here rather than by gRPC, so the encoded size is known before sending:
a datum that alone exceeds the limit is answered FAILURE locally (it can never be sent) instead
of breaking the stream for the whole batch; the batch extension splits the rest into messages
that fit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence

from sink_runtime import codec, serverinfo
from sink_runtime.config import UserSinkConfig
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import PRIMARY, AllSucceeded, SinkError
from sink_runtime.dataplane.sinks.grpcio_transport import BatchTransport
from sink_runtime.dataplane.sinks.sink_v1_transport import SinkV1Transport
from sink_runtime.dataplane.sinks.transport import (
    ContractViolation,
    DeadlineExceeded,
    Replies,
    Results,
    SinkTransport,
    TransportError,
    encode_entries,
)
from sink_runtime.dataplane.sinks.unanswered import UnansweredClock
from sink_runtime.types import Datum, Response

logger = logging.getLogger(__name__)

# A batch unanswered for this fraction of the write timeout is logged and counted as a stall.
STALL_WARNING_FRACTION = 1 / 3


def _socket_identity(path: str) -> tuple[int, int, int] | None:
    """What tells one bound socket file from the next at the same path (None: none there)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_ctime_ns


class UserSinkClient:
    """A user-defined sink reached over gRPC on a Unix socket."""

    def __init__(
        self,
        config: UserSinkConfig,
        *,
        metrics: Metrics,
        name: str = PRIMARY,
        max_resends: int = 3,
        server_info_poll_s: float = 0.1,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.name = name
        self.max_resends = max_resends
        self.server_info_poll_s = server_info_poll_s
        self.max_message_bytes = config.max_message_bytes
        self.info: serverinfo.ServerInfo | None = None
        self.use_batch = False
        self._transport: SinkTransport | None = None
        self._lock = asyncio.Lock()
        self._ready = False
        self._closed = False
        self._clock = UnansweredClock(config.write_timeout_ms, config.startup_timeout_ms)
        self._socket: tuple[int, int, int] | None = None  # of the process last connected to
        self._socket_known = False
        self._hung = ""  # the last liveness verdict's reason, to log changes once
        metrics.sink_unanswered.labels(sink=name).set_function(
            lambda: self._clock.waiting_s(time.monotonic())
        )

    @property
    def where(self) -> str:
        return f"{self.name} sink at {self.config.socket_path}"

    # --- lifecycle ---

    async def start(self) -> None:
        """Wait for the server-info file and IsReady, choose the path, open the stream (with
        its handshake); all of it within startupTimeout."""
        self._clock.begin(time.monotonic())
        try:
            await self._start()
        finally:
            self._clock.ended()

    async def _start(self) -> None:
        timeout_s = self.config.startup_timeout_ms / 1000.0
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            self.info = await serverinfo.wait_for_server_info(
                self.config.server_info_path, timeout_s, self.server_info_poll_s
            )
        except serverinfo.ServerInfoError as err:
            raise SinkError(f"{self.where}: {err}") from None
        if self.info.protocol != "uds":
            raise SinkError(
                f"{self.where}: server-info {self.config.server_info_path} says protocol "
                f"{self.info.protocol!r}; this client speaks only 'uds' (a Unix socket)"
            )
        self.use_batch = self.config.use_batch_extension and self.info.supports_batch()
        logger.info(
            "%s: server-info %s (version %s); using %s",
            self.where,
            self.config.server_info_path,
            self.info.version,
            "the batch extension (udsink.v1.BatchSink)" if self.use_batch else "sink.v1.Sink",
        )
        await self._disconnect()
        self._transport = self._new_transport()
        try:
            await self._connect(deadline)
        except DeadlineExceeded as err:
            await self._disconnect()
            raise SinkError(
                f"{self.where}: not ready within the start-up timeout of {timeout_s:g}s "
                f"(startupTimeout), waiting for {err.awaiting}"
            ) from None
        except TransportError as err:
            await self._disconnect()
            raise SinkError(f"{self.where}: cannot connect: {err}") from None

    def _new_transport(self) -> SinkTransport:
        """The transport of the path chosen (`use_batch`)."""
        if self.use_batch:
            return BatchTransport(self.config.socket_path, max_message_bytes=self.max_message_bytes)
        return SinkV1Transport(
            self.config.socket_path,
            max_message_bytes=self.max_message_bytes,
            where=self.where,
            on_violation=self._violated,
        )

    def is_ready(self) -> bool:
        return self._ready and not self._closed and self.liveness()[0]

    def not_ready_reason(self) -> str:
        """Why /readyz names this sink ("" when the default words say enough)."""
        return self.liveness()[1]

    def liveness(self) -> tuple[bool, str]:
        """False, with the reason, while the sink has kept the data plane waiting past its
        bound (module doc); the sink container's liveness path answers this."""
        now = time.monotonic()
        self._notice_restart(now)
        why = self._clock.hung(now)
        if why and not self._hung:
            logger.error(
                "%s %s; its liveness path now fails, so the kubelet restarts the container",
                self.where,
                why,
            )
        elif self._hung and not why:
            logger.info("%s is within its liveness bound again", self.where)
        self._hung = why
        return (False, f"{self.where} {why}") if why else (True, "")

    def _notice_restart(self, now: float) -> None:
        """Restart the clock when the socket file is no longer the one last connected to."""
        current = _socket_identity(self.config.socket_path)
        if self._socket_known and current != self._socket:
            logger.info(
                "%s: the socket file was %s; a new sink process gets startupTimeout more",
                self.where,
                "removed" if current is None else "created anew",
            )
            self._clock.restarted(now)
        self._socket = current
        self._socket_known = True

    async def close(self) -> None:
        self._closed = True
        self._ready = False
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()

    async def reset(self) -> None:
        """Drop the stream; the next write reconnects (IsReady, handshake) first."""
        async with self._lock:
            await self._disconnect()

    # --- connection ---

    async def _disconnect(self) -> None:
        if self._transport is not None:
            await self._transport.reset()

    async def _connect(self, deadline: float) -> bool:
        """A stream ready for the next batch (`SinkTransport.connect`); True when it
        connected anew."""
        if self._transport is None:
            self._transport = self._new_transport()
        anew = await self._transport.connect(deadline)
        if anew:
            self._notice_restart(time.monotonic())
        self._ready = True
        return anew

    async def _ensure_stream(self, deadline: float) -> SinkTransport:
        """The transport, ready for the next batch (a reconnect is counted)."""
        if self._closed:
            raise SinkError(f"{self.where}: closed")
        if await self._connect(deadline):
            self.metrics.sink_reconnects.labels(sink=self.name).inc()
        assert self._transport is not None
        return self._transport

    def _violated(self, err: ContractViolation) -> None:
        """The transport reports what the sink sent against the wire contract."""
        self.metrics.contract_violations.labels(sink=self.name, kind="protocol").inc()
        logger.error("%s broke the contract: %s", self.where, err)

    # --- writing ---

    async def write(self, datums: Sequence[Datum]) -> Sequence[Response]:
        """The sink's answers for `datums` (unchecked), or SinkError."""
        if not datums:
            return []
        async with self._lock:
            entries, local = self._encode(datums)
            if not entries:
                return local
            answers = self._answers(await self._write_in_time(entries, len(datums)))
            return [*answers, *local] if local else answers

    async def _write_in_time(self, entries: list[bytes], datums: int) -> Replies:
        """One batch's answers within the write timeout, reconnects and resends included
        (module doc)."""
        timeout_s = self.config.write_timeout_ms / 1000.0
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        warning = loop.call_later(
            timeout_s * STALL_WARNING_FRACTION, self._stalled, started, datums
        )
        clock = self._clock
        clock.begin(started)
        try:
            answers = await self._deliver(entries, datums, deadline)
            clock.answered()
            return answers
        except SinkError:
            clock.answered()  # the sink ended the streams itself: it is responsive
            raise
        except DeadlineExceeded as err:
            clock.unanswered(time.monotonic())
            self.metrics.write_timeouts.labels(sink=self.name).inc()
            self._ready = False
            await self._disconnect()
            raise SinkError(
                f"{self.where}: no answer to a batch within the write timeout of "
                f"{timeout_s:g}s (writeTimeout), waiting for {err.awaiting}; the stream was "
                "reset and the batch failed"
            ) from None
        finally:
            warning.cancel()
            clock.ended()  # cancelled (shutting down): no verdict

    async def _deliver(self, entries: list[bytes], datums: int, deadline: float) -> Replies:
        """Send one batch and read its answers, reconnecting and resending on a broken stream
        up to `max_resends` times; DeadlineExceeded at `deadline` (loop time)."""
        last: TransportError | None = None
        for attempt in range(self.max_resends + 1):
            try:
                transport = await self._ensure_stream(deadline)
                return await transport.send(entries, deadline)
            except DeadlineExceeded:
                raise
            except TransportError as err:
                last = err
                self._ready = False
                await self._disconnect()
                if attempt == self.max_resends:
                    break
                logger.warning(
                    "%s: stream failed (%s); reconnecting and resending %d messages "
                    "(resend %d of %d)",
                    self.where,
                    err,
                    datums,
                    attempt + 1,
                    self.max_resends,
                )
                await self._pause(min(0.05 * 2**attempt, 1.0), deadline)
        assert last is not None
        raise SinkError(
            f"{self.where}: the batch of {datums} messages could not be delivered "
            f"after {self.max_resends} resends; last error: {last}"
        )

    @staticmethod
    async def _pause(seconds: float, deadline: float) -> None:
        """Sleep before a resend; DeadlineExceeded if `deadline` (loop time) comes first."""
        left = deadline - asyncio.get_running_loop().time()
        if seconds < left:
            await asyncio.sleep(seconds)
            return
        await asyncio.sleep(max(0.0, left))
        raise DeadlineExceeded("the pause before resending")

    def _stalled(self, started: float, messages: int) -> None:
        self.metrics.sink_stalls.labels(sink=self.name).inc()
        logger.warning(
            "%s has not answered a batch of %d messages for %.1fs; the write times out after "
            "%gs (writeTimeout)",
            self.where,
            messages,
            time.monotonic() - started,
            self.config.write_timeout_ms / 1000.0,
        )

    def _encode(self, datums: Sequence[Datum]) -> tuple[list[bytes], list[Response]]:
        """The batch's entries for the transport (`transport.encode_entries`), and local
        FAILUREs for oversized datums."""
        entries = encode_entries(datums)
        limit = self.max_message_bytes
        local = [
            self._oversized(d, len(entry))
            for d, entry in zip(datums, entries, strict=True)
            if len(entry) > limit
        ]
        if local:
            entries = [entry for entry in entries if len(entry) <= limit]
        return entries, local

    def _oversized(self, d: Datum, size: int) -> Response:
        return Response.failure(
            d.id,
            f"message {d.id} is {size} bytes encoded, over the max message size of "
            f"{self.max_message_bytes} bytes of the {self.where} (maxMessageBytes); "
            "it cannot be sent",
        )

    def _answers(self, replies: Replies) -> Sequence[Response]:
        """The answers of one batch: `AllSucceeded` when every result is SUCCESS (the usual
        answer, read with two passes over the wire results and no object per datum)."""
        if not any(r.status for results in replies for r in results):
            return AllSucceeded([r.id for results in replies for r in results])
        decode = codec.result_to_response
        answers: list[Response] = []
        for results in replies:
            answers.extend(self._decode(results, decode))
        return answers

    def _decode(self, results: Results, decode: Callable[..., Response]) -> list[Response]:
        answers: list[Response] = []
        append = answers.append
        ok = Response.ok
        for res in results:
            if not res.status:  # SUCCESS, the usual answer: no call through the codec
                append(ok(res.id))
                continue
            try:
                append(decode(res))
            except ValueError as err:
                # An unknown status: keep the id out of the answers, so the contract check
                # reports it as missing and the datum is treated as FAILURE.
                logger.error("%s: %s", self.where, err)
        return answers
