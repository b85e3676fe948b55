"""KafkaSink: writes Datums to a topic with an idempotent producer, one outcome per datum.

The same class serves every role (primary, fallback, on-success, serve): the forwarder hands
it Datums and reads back one Response per datum. Separate from the source because producing
has its own rules:
- the producer is idempotent (`enable.idempotence`, `acks=all`): librdkafka's internal
  retries neither duplicate nor reorder records of a partition;
- record key: with `setKey`, the keys joined by `keySeparator`; no keys, no key;
- headers, later wins: the message's headers (when `propagate`), the static headers, then the
  key headers (`split` / `single` / `none`), which win over any same-named header (see
  `keyheaders`);
- `write()` produces the whole batch, then waits until the producer has no message left in
  flight; a datum is OK only once the broker acknowledged it, otherwise FAILURE with an error
  naming the topic and the Kafka error (an oversized message fails on its own, the others
  still go through). Every message is settled within `message.timeout.ms` (default: the
  sink's delivery timeout); only failures are reported one by one.

All producer calls run on one dedicated thread, never on the event loop.

Per record, the work is kept to what librdkafka needs (the data plane's Kafka -> Kafka hot
path): the record key and the key headers come from a small cache by key list; a Kafka
record's headers are passed on as the bytes they arrived with (`raw_headers`, kafka_record.py)
wherever that gives the same bytes as the documented text (UTF-8 with replacement, null as
""), instead of being decoded and encoded again; the resulting header list is exactly
`KeyHeaderCodec.record_headers`'s, encoded (a property test holds it to that).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeAlias, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer

from sink_runtime.config import KafkaSinkConfig
from sink_runtime.dataplane.kafka_settings import (
    DEFAULT_DELIVERY_TIMEOUT_MS,
    ErrorThrottle,
    LibrdkafkaLog,
    client_settings,
    explain_failure,
    producer_settings,
    redacted,
)
from sink_runtime.dataplane.keyheaders import KeyHeaderCodec, record_key
from sink_runtime.dataplane.protocols import (
    ON_SUCCESS,
    PRIMARY,
    AllSucceeded,
    BatchMustRestart,
    SinkError,
)
from sink_runtime.dataplane.sinks.kafka_transaction import KafkaTransaction, needs_abort
from sink_runtime.types import Datum, Response

logger = logging.getLogger(__name__)
rdkafka_logger = LibrdkafkaLog(logging.getLogger(f"{__name__}.librdkafka"))

_T = TypeVar("_T")
Headers: TypeAlias = list[tuple[str, bytes]]
# Outgoing key and key headers by key list, and ownership by header name: bounded, cleared
# when full (entries are then simply computed again).
_CACHE_LIMIT = 16_384
# Waiting for delivery reports a little longer than librdkafka's own message timeout, so the
# reports (success or timeout) arrive before we give up on them.
REPORT_GRACE_S = 5.0
PROBE_TIMEOUT_S = 2.0
CLOSE_FLUSH_S = 5.0
# Delivery errors that refuse the record itself (retrying it cannot help).
_REFUSED_RECORD = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_MSG_SIZE,
    }
)
# In a transaction, deliveries are awaited in steps this long, to stop at the first failure.
TRANSACTION_FLUSH_STEP_S = 0.05
# While the local queue is full, how long to serve delivery reports before producing again.
QUEUE_FULL_POLL_S = 0.1
# The RuntimeConfig field of each role, for error messages.
_CONFIG_FIELD = {PRIMARY: "sink", ON_SUCCESS: "onSuccess"}


class KafkaSink:
    """Writes to `config.topic` (see the module doc).

    `name` is the sink's role (primary, fallback, on_success, serve); it prefixes the config
    path in errors (`fallback.config: ...`). Its written/failed counts are the forwarder's.
    """

    def __init__(
        self,
        config: KafkaSinkConfig,
        *,
        name: str = "kafka",
        delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_MS / 1000,
        transaction: KafkaTransaction | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._delivery_timeout_ms = int(delivery_timeout_s * 1000)
        self._codec = KeyHeaderCodec(config.headers.keys, config.headers.keys_header)
        self._propagate = config.headers.propagate
        self._static = {k: v for k, v in config.headers.static.items() if not self._codec.owns(k)}
        self._keyed: dict[tuple[str, ...], tuple[bytes | None, Headers]] = {}
        self._owned: dict[str, bool] = {}
        # Datum id -> why the broker refused its record inside a transaction (see _write).
        self._poisoned: dict[str, str] = {}
        # Exactly-once: every Kafka sink of the data plane produces through the transaction's
        # producer, on its thread; the primary sink owns (closes) it.
        self._transaction = transaction
        self._thread = (
            transaction.thread
            if transaction is not None
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kafka-sink-{name}")
        )
        self._settings: dict[str, Any] = {}
        self._own_producer: Any = None
        self._fatal: str | None = None
        self._reachable = False
        self._probing = False
        self._closed = False
        self._errors = ErrorThrottle(logger)
        # Why the brokers refuse this producer (credentials, certificates), until they answer.
        self._refused: str | None = None

    @property
    def topic(self) -> str:
        return self.config.topic

    @property
    def _producer(self) -> Any:
        if self._transaction is not None:
            return self._transaction.producer
        return self._own_producer

    # --- lifecycle ---

    async def start(self) -> None:
        """Create the producer and check the brokers answer (not fatal if they do not)."""
        settings = client_settings(
            producer_settings(self.config, self._where, self._delivery_timeout_ms), self._where
        )
        settings |= {"error_cb": self._on_error, "logger": rdkafka_logger}
        self._settings = settings
        logger.info(
            "kafka sink %s: producing to %s on %s",
            self.name,
            self.topic,
            ",".join(self.config.brokers),
            extra={"settings": redacted(settings)},
        )
        if self._transaction is not None:
            await self._transaction.start(settings)
        else:
            await self._run(self._create)
        await self._run(self._probe)

    @property
    def _where(self) -> str:
        return _CONFIG_FIELD.get(self.name, self.name)

    def _create(self) -> None:
        self._fatal = None
        if self._transaction is not None:
            self._transaction.recreate()
            return
        self._own_producer = Producer(self._settings)

    async def reset(self) -> None:
        """Nothing here outlives a write."""

    async def close(self) -> None:
        """Deliver what is still queued (briefly), then drop the producer.

        Every write() already waited for its reports, so the queue is normally empty here.
        """
        if self._closed:
            return
        self._closed = True
        if self._transaction is not None:
            if self.name == PRIMARY:
                await self._transaction.close()
            return
        if self._producer is not None:
            left = await self._run(self._producer.flush, CLOSE_FLUSH_S)
            if left:
                logger.warning(
                    "kafka sink %s: %d message(s) to %s still undelivered at close",
                    self.name,
                    left,
                    self.topic,
                )
        self._thread.shutdown(wait=False)
        self._own_producer = None

    def is_ready(self) -> bool:
        """Started, not failed fatally, and the brokers answered last time we checked."""
        ready = self._producer is not None and self._fatal is None and not self._closed
        if ready and not self._reachable and not self._probing:
            # Re-check in the background; readiness must not block its caller.
            self._probing = True
            try:
                self._thread.submit(self._probe)
            except RuntimeError:  # closed meanwhile
                self._probing = False
        return ready and self._reachable

    def not_ready_reason(self) -> str:
        """Why `is_ready()` is False, in words for /readyz ("" when it has no more to say)."""
        if self._fatal is not None:
            return f"{self.name} sink: {self._fatal}"
        if self._refused is not None and not self._reachable:
            return f"{self.name} sink: {self._refused}"
        return ""

    def refused_reason(self) -> str:
        """Why the brokers refuse this producer while they do not answer ("" otherwise)."""
        if self._refused is None or self._reachable or self._closed:
            return ""
        return f"kafka sink {self.name}: {self._refused}"

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, fn, *args)

    # --- writing ---

    async def write(self, datums: Sequence[Datum]) -> Sequence[Response]:
        if self._producer is None:
            raise SinkError(f"kafka sink {self.name}: write() before start() or after close()")
        if not datums:
            return []
        return await self._run(self._write, list(datums))

    def _write(self, datums: list[Datum]) -> Sequence[Response]:
        if self._fatal is not None:
            logger.warning(
                "kafka sink %s: recreating the producer after a fatal error: %s",
                self.name,
                self._fatal,
            )
            fatal = self._fatal
            self._create()
            if self._transaction is not None:
                raise BatchMustRestart(f"kafka sink {self.name}: fatal producer error: {fatal}")
        # In a transaction, a record the broker refused for what it is (too large, invalid)
        # fails at once in the batch's next attempt, without being produced again, so the
        # retry policy and onFailure (a dead-letter topic) can settle it.
        poisoned = self._poisoned
        # Errors by datum index: refused at once by the client, or reported as failed. Only
        # failed deliveries are reported (`delivery.report.only.error`); a datum without an
        # error is delivered once the producer's queue is empty. Were every delivery reported
        # (the user's config may say so), a success report carries no error and changes
        # nothing here.
        errors: dict[int, str] = {}
        codes: dict[int, int] = {}
        report = partial(self._report, codes=codes)
        produce = self._producer.produce
        topic = self.topic
        outgoing = self._outgoing
        for i, datum in enumerate(datums):
            if poisoned and datum.id in poisoned:
                errors[i] = poisoned[datum.id]
                continue
            try:
                # A key or header that cannot be encoded (a lone surrogate) is a ValueError.
                key, headers = outgoing(datum)
                produce(
                    topic, datum.value, key, headers=headers, on_delivery=partial(report, i, errors)
                )
            except BufferError:
                error = self._produce_when_room(
                    datum.value, key, headers, partial(report, i, errors)
                )
                if error is not None:
                    errors[i] = error
            except KafkaException as exc:
                errors[i] = self._refused_at_once(exc)
            except (TypeError, ValueError) as exc:
                errors[i] = f"record rejected by the client: {exc}"
        wait_s = self._report_wait_s()
        deadline = time.monotonic() + wait_s
        if self._transaction is not None:
            self._flush_in_transaction(codes, deadline)
            if codes or self._producer.flush(0):
                self._void(datums, errors, codes)
        left = self._producer.flush(wait_s)
        while left and time.monotonic() < deadline:
            left = self._producer.flush(max(0.0, deadline - time.monotonic()))
        if left:
            # Some deliveries are still unknown (not one of ours can be told apart from the
            # others): every datum without an error is FAILURE and written again, at least once.
            late = f"no delivery report from Kafka within {wait_s:.0f}s"
            errors = {i: errors.get(i, late) for i in range(len(datums))}
        if len(errors) < len(datums):
            self._reachable = True
        if not errors:
            return AllSucceeded([d.id for d in datums])
        return [
            Response.ok(d.id)
            if i not in errors
            else Response.failure(d.id, f"kafka topic {self.topic}: {errors[i]}")
            for i, d in enumerate(datums)
        ]

    def _flush_in_transaction(self, codes: dict[int, int], deadline: float) -> None:
        """Wait for the deliveries until the first failure: one failure dooms the transaction,
        and librdkafka may hold the rest until their message timeout."""
        while not codes and time.monotonic() < deadline:
            if not self._producer.flush(min(TRANSACTION_FLUSH_STEP_S, deadline - time.monotonic())):
                return

    def _void(self, datums: list[Datum], errors: dict[int, str], codes: dict[int, int]) -> None:
        """The transaction cannot commit: remember the records the broker refused for what they
        are (so the next attempt fails them at once, see _write) and start the batch again."""
        if len(self._poisoned) >= _CACHE_LIMIT:
            self._poisoned.clear()
        for i, code in codes.items():
            if code in _REFUSED_RECORD:
                self._poisoned[datums[i].id] = errors[i]
        why = next((errors[i] for i in codes), "no delivery report in time")
        raise BatchMustRestart(f"kafka topic {self.topic}: a write failed: {why}")

    def _produce_when_room(
        self,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        on_delivery: Callable[[Any, Any], None],
    ) -> str | None:
        """Queue one record once the local queue has room; the error text if refused."""
        while True:
            # The local queue is full: serve delivery reports to make room, then retry.
            self._producer.poll(QUEUE_FULL_POLL_S)
            try:
                self._producer.produce(
                    self.topic, value, key, headers=headers, on_delivery=on_delivery
                )
                return None
            except BufferError:
                continue
            except KafkaException as exc:
                return self._refused_at_once(exc)
            except (TypeError, ValueError) as exc:
                return f"record rejected by the client: {exc}"

    def _refused_at_once(self, exc: KafkaException) -> str:
        """Why the client refused to queue a record; in a transaction that error may mean the
        transaction cannot go on (BatchMustRestart) rather than this record's fault."""
        err = exc.args[0] if exc.args else exc
        if self._transaction is not None and needs_abort(err):
            raise BatchMustRestart(
                f"kafka topic {self.topic}: the transaction cannot go on: {_describe(err)}"
            ) from None
        return _describe(err)

    @staticmethod
    def _report(
        i: int, errors: dict[int, str], err: Any, _msg: Any, *, codes: dict[int, int]
    ) -> None:
        if err is not None:
            errors[i] = _describe(err)
            codes[i] = err.code()

    # --- one record's key and headers ---

    def _outgoing(self, datum: Datum) -> tuple[bytes | None, Headers]:
        """The record key and headers of `datum` (module doc): key headers last."""
        keys = datum.keys
        keyed = self._keyed.get(keys)
        if keyed is None:
            keyed = self._new_keyed(keys)
        key, key_headers = keyed
        if not self._propagate:
            return key, self._with_static([], key_headers) if self._static else key_headers
        raw: Mapping[str, bytes | None] | None = getattr(datum, "raw_headers", None)
        if raw is None:
            headers = datum.headers
            if not headers:
                return key, self._with_static([], key_headers) if self._static else key_headers
            owned = self._owned
            own = [
                (n, v.encode()) for n, v in headers.items() if not (owned.get(n) or self._owns(n))
            ]
        elif not raw:
            return key, self._with_static([], key_headers) if self._static else key_headers
        else:
            owned = self._owned
            own = [
                (n, v if v is not None and v.isascii() else _as_text_bytes(v))
                for n, v in raw.items()
                if not (owned.get(n) or self._owns(n))
            ]
        if self._static:
            return key, self._with_static(own, key_headers)
        return key, own + key_headers if own else key_headers

    def _owns(self, name: str) -> bool:
        owned = self._owned
        if len(owned) >= _CACHE_LIMIT:
            owned.clear()
        result = owned[name] = self._codec.owns(name)
        return result

    def _new_keyed(self, keys: tuple[str, ...]) -> tuple[bytes | None, Headers]:
        key = record_key(keys, self.config.key_separator) if self.config.set_key else None
        headers = [(n, v.encode()) for n, v in self._codec.encode(keys).items()]
        keyed = (None if key is None else key.encode(), headers)
        if len(self._keyed) >= _CACHE_LIMIT:
            self._keyed.clear()
        self._keyed[keys] = keyed
        return keyed

    def _with_static(self, own: Headers, key_headers: Headers) -> Headers:
        """The message's headers, then the static ones (a static header replaces a same-named
        message header in place, as a dict update does), then the key headers."""
        merged = dict(own)
        merged.update((n, v.encode()) for n, v in self._static.items())
        return [*merged.items(), *key_headers]

    def _report_wait_s(self) -> float:
        timeout_ms = int(self._settings.get("message.timeout.ms", self._delivery_timeout_ms))
        return timeout_ms / 1000 + REPORT_GRACE_S

    # --- connectivity ---

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self._fatal = _describe(err)
            logger.error("kafka sink %s: fatal producer error: %s", self.name, self._fatal)
            return
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._reachable = False
        why = explain_failure(
            self.config, self._where, [(err.name(), err.str())], check_tls=self._refused is None
        )
        if why is not None:
            self._refused = why
            self._errors.warning(err.code(), f"kafka sink {self.name}: {why} (retrying)")
            return
        self._errors.warning(
            err.code(),
            f"kafka sink {self.name}: {_describe(err)} "
            f"(brokers {','.join(self.config.brokers)}; retrying)",
        )

    def _probe(self) -> None:
        try:
            md = self._producer.list_topics(topic=self.topic, timeout=PROBE_TIMEOUT_S)
            self._reachable = bool(md.brokers)
            if self._reachable:
                self._refused = None
        except KafkaException as exc:
            self._reachable = False
            self._errors.warning(
                "probe",
                f"kafka sink {self.name}: cannot reach brokers "
                f"{','.join(self.config.brokers)} ({exc}); not ready, retrying",
            )
        finally:
            self._probing = False


def _as_text_bytes(value: bytes | None) -> bytes:
    """A header value's bytes as the Datum's text has them: UTF-8 with replacement, null
    as "" (the Kafka source's rule, kafka_record.header_text)."""
    if value is None:
        return b""
    return value.decode("utf-8", errors="replace").encode()


def _describe(err: Any) -> str:
    if isinstance(err, KafkaError):
        return f"{err.name()}: {err.str()}"
    return str(err)


__all__ = ["KafkaSink"]
