"""Every official Numaflow SDK's sink, unmodified, under the real data plane and a real broker.

Per SDK: the interop sink (tests/interop/sinks/<sdk>) runs as the primary, and the same SDK's
sink as the fallback (`fb-udsink`) and on-success (`ons-udsink`) sinks where the SDK has those,
each in its own private /var/run/numaflow bound to one shared socket directory, the way a pod's
volume is shared. `python -m sink_runtime.dataplane` reads the records from Kafka and drives
them. Each record's `interop` header picks the sink's answer (tests/interop/README.md), for
every status the SDK version has (SDK_STATUSES; what a version lacks is listed in
docs/compatibility.md). Everything asserted is counted from the sinks' own output and from the
broker (committed offsets, the serve topic), not from the data plane's objects.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from sink_runtime.config import (
    Backoff,
    BatchConfig,
    KafkaSinkConfig,
    KafkaSourceConfig,
    NackConfig,
    ObservabilityConfig,
    RetryStrategy,
    RuntimeConfig,
)
from tests.interop.conftest import StartSink
from tests.support.dataplane_process import start_data_plane, wait_committed
from tests.support.kafka_broker import KafkaBroker
from tests.support.unmodified_sink import Received

pytestmark = [pytest.mark.interop, pytest.mark.kafka]

# The answers each SDK's newest version can give besides SUCCESS, as `interop` header values.
SDK_STATUSES: dict[str, tuple[str, ...]] = {
    "go": ("fail-once", "fallback", "serve", "on-success", "nack-once"),
    "rust": ("fail-once", "fallback", "serve", "on-success", "nack-once"),
    "java": ("fail-once", "fallback"),
    "python": ("fail-once", "fallback", "on-success"),
}
PER_KIND = 8


def _records(wants: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "value": f"value-{i}".encode(),
            "key": f"k{i % 3}".encode(),
            "partition": i % 2,
            "headers": [
                ("__key_len", b"2"),
                ("__key_0", f"k{i % 3}".encode()),
                ("__key_1", f"part:{i}".encode()),
                ("n", str(i).encode()),
                ("interop", want.encode()),
            ],
        }
        for i, want in enumerate(wants)
    ]


def _by_id(received: list[Received]) -> dict[str, list[Received]]:
    out: dict[str, list[Received]] = defaultdict(list)
    for r in received:
        out[r.id].append(r)
    return out


@pytest.mark.parametrize("sdk", sorted(SDK_STATUSES))
async def test_sdk_sink_runs_unmodified(
    sdk: str,
    kafka_broker: KafkaBroker,
    unmodified_sink: StartSink,
    sock_dir: Path,
    tmp_path: Path,
) -> None:
    statuses = SDK_STATUSES[sdk]
    kinds = ["ok", *statuses]
    wants = [kinds[i % len(kinds)] for i in range(PER_KIND * len(kinds))]
    topic = kafka_broker.create_topic(kafka_broker.unique_topic(f"io-{sdk}"), partitions=2)
    group = f"io-{sdk}-{uuid.uuid4().hex[:8]}"
    produced = await asyncio.to_thread(kafka_broker.produce, topic, _records(wants))
    ids = [f"{topic}:{p}:{o}" for p, o in produced]
    want_of = dict(zip(ids, wants, strict=True))
    index_of = {i: n for n, i in enumerate(ids)}

    primary = await unmodified_sink(sdk, "udsink", sock_dir)
    fallback = await unmodified_sink(sdk, "fb-udsink", sock_dir)
    options: dict[str, Any] = {
        "source": KafkaSourceConfig(
            brokers=[kafka_broker.bootstrap], topics=[topic], consumer_group=group
        ),
        "sink": primary.config,
        "fallback": fallback.config,
        "batch": BatchConfig(size=20, timeout_ms=100),
        "retry_strategy": RetryStrategy(backoff=Backoff(interval_ms=5, cap_ms=50, steps=3)),
        "nack": NackConfig(delay_ms=20),
        "observability": ObservabilityConfig(metrics_port=0, metrics_host="127.0.0.1"),
        "shutdown_grace_ms": 10_000,
    }
    on_success = None
    if "on-success" in statuses:
        on_success = await unmodified_sink(sdk, "ons-udsink", sock_dir)
        options["on_success"] = on_success.config
    serve_topic = None
    if "serve" in statuses:
        serve_topic = kafka_broker.create_topic(kafka_broker.unique_topic(f"io-{sdk}-serve"))
        options["serve"] = KafkaSinkConfig(brokers=[kafka_broker.bootstrap], topic=serve_topic)

    dp = start_data_plane(tmp_path, RuntimeConfig(**options))
    try:
        await wait_committed(kafka_broker, group, topic, dp)
    finally:
        code = await dp.stopped()
    assert code == 0, dp.log()[-4000:]

    seen = _by_id(primary.received())
    # Every record reached the SDK sink, once per delivery, with its keys and headers intact.
    assert set(seen) == set(ids), primary.output()[-4000:]
    for datum_id, got in seen.items():
        n = index_of[datum_id]
        first = got[0]
        assert (first.sdk, first.role) == (sdk, "udsink")
        assert first.keys == [f"k{n % 3}", f"part:{n}"]
        assert first.value == f"value-{n}"
        assert first.headers["n"] == str(n)
        assert first.headers["interop"] == want_of[datum_id]
    answers = {i: [r.answer for r in got] for i, got in seen.items()}
    for datum_id, want in want_of.items():
        expected = {
            "ok": ["SUCCESS"],
            "fail-once": ["FAILURE", "SUCCESS"],  # retried, then delivered
            "nack-once": ["NACK", "SUCCESS"],  # redelivered after the delay
            "fallback": ["FALLBACK"],
            "serve": ["SERVE"],
            "on-success": ["ON_SUCCESS"],
        }[want]
        assert answers[datum_id] == expected, (datum_id, want)

    # FALLBACK: in the same SDK's fallback sink, with our error headers.
    fallback_ids = {i for i, w in want_of.items() if w == "fallback"}
    moved = _by_id(fallback.received())
    assert set(moved) == fallback_ids, fallback.output()[-4000:]
    for datum_id, got in moved.items():
        headers = got[0].headers
        assert got[0].role == "fb-udsink"
        assert headers["x-udsink-status"] == "FALLBACK"
        assert headers["x-udsink-source"] == datum_id
        assert headers["x-udsink-attempts"] == "1"
        assert headers["n"] == str(index_of[datum_id])
        assert got[0].value == f"value-{index_of[datum_id]}"

    # ON_SUCCESS: the attached message in the same SDK's on-success sink.
    if on_success is not None:
        followed = _by_id(on_success.received())
        assert set(followed) == {i for i, w in want_of.items() if w == "on-success"}
        for datum_id, got in followed.items():
            n = index_of[datum_id]
            assert got[0].role == "ons-udsink"
            assert got[0].value == f"followup:value-{n}"
            assert got[0].keys == [f"k{n % 3}", f"part:{n}"]

    # SERVE: the payload in the serve topic, keyed by the datum id.
    if serve_topic is not None:
        serve_ids = {i for i, w in want_of.items() if w == "serve"}
        served = await asyncio.to_thread(kafka_broker.consume, serve_topic, len(serve_ids))
        assert {(r.key or b"").decode(): r.value for r in served} == {
            i: f"served:value-{index_of[i]}".encode() for i in serve_ids
        }
