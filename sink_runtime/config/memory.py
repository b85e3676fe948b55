"""How much memory one data plane holds at most, from its configuration.

docs/operations.md ("Memory") explains the bound, R0 + Q + F + n x B: the process itself, the
Kafka consumer's prefetch queue, one fetch response beyond it, and n batches of at most
`batch.max_bytes` (4, or 6 with a user-defined sink). The data plane's Kafka defaults for Q
and F live here too, so the bound and the settings it is computed from cannot drift apart;
the operator gives the `runtime` container this bound as its default memory request and limit.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping

from sink_runtime.config import (
    DEFAULT_BATCH_MAX_BYTES,
    KafkaSourceConfig,
    RuntimeConfig,
    UserSinkConfig,
)

MIB = 1024 * 1024
# R0: the interpreter, gRPC, librdkafka's threads, the metrics (measured, docs/benchmarks.md).
PROCESS_BYTES = 75 * MIB
# Q: librdkafka's prefetch queue, in KiB as its key counts (librdkafka's own default: 64 MiB).
QUEUE_KBYTES_KEY = "queued.max.messages.kbytes"
DEFAULT_QUEUE_KBYTES = 16 * 1024
# F: one fetch response beyond the queue (librdkafka's own default: 50 MiB).
FETCH_BYTES_KEY = "fetch.max.bytes"
DEFAULT_FETCH_BYTES = 16 * MIB
# n: the batch being delivered, the one read ahead, the sink's copy of the one being written,
# and allocator slack (measured); a user-defined sink adds its encoded requests and the gRPC
# message joined from them.
BATCHES_HELD = 4
BATCHES_HELD_WITH_USER_SINK = 6


def _setting(config: Mapping[str, str], key: str, default: int) -> int:
    """A librdkafka size from the user's map; librdkafka itself refuses one that is not a
    number, so such a value counts as the default here."""
    with contextlib.suppress(ValueError):
        return int(config.get(key, default))
    return default


def bound(*, prefetch_bytes: int, batch_bytes: int, user_sink: bool) -> int:
    """R0 + (Q + F) + n x B, in bytes."""
    batches = BATCHES_HELD_WITH_USER_SINK if user_sink else BATCHES_HELD
    return PROCESS_BYTES + prefetch_bytes + batches * batch_bytes


def memory_bound(config: RuntimeConfig) -> int:
    """The most bytes the data plane running `config` holds."""
    prefetch = 0
    if isinstance(config.source, KafkaSourceConfig):
        settings = config.source.config
        prefetch = _setting(settings, QUEUE_KBYTES_KEY, DEFAULT_QUEUE_KBYTES) * 1024
        prefetch += _setting(settings, FETCH_BYTES_KEY, DEFAULT_FETCH_BYTES)
    user_sink = any(
        isinstance(sink, UserSinkConfig)
        for sink in (config.sink, config.fallback, config.on_success)
    )
    return bound(prefetch_bytes=prefetch, batch_bytes=config.batch.max_bytes, user_sink=user_sink)


def in_mib(size: int) -> int:
    """Bytes in whole MiB, rounded up: a container's memory as a quantity."""
    return math.ceil(size / MIB)


def default_kafka_bound_mib(*, user_sink: bool) -> int:
    """The bound with every default, reading Kafka: what the docs quote."""
    return in_mib(
        bound(
            prefetch_bytes=DEFAULT_QUEUE_KBYTES * 1024 + DEFAULT_FETCH_BYTES,
            batch_bytes=DEFAULT_BATCH_MAX_BYTES,
            user_sink=user_sink,
        )
    )
