"""Hostile sinks: whatever bytes a sink sends, the data plane ends in bounded time and memory.

Each case runs a whole data plane (file source, forwarder, our sink.v1 client) in a subprocess
(sink_probe.py) against a raw HTTP/2 sink in this process (h2_sink.py) that misbehaves on
purpose: it floods, answers PINGs with more PINGs while reading nothing, sends a second EOT or
stray answers, odd headers, huge length prefixes, or never answers the handshake. Each case
asserts:
- bounded memory: the data plane's peak resident set grew by less than `RSS_GROWTH_MIB` over
  what it had before talking to the sink (the sink's own buffers are in this process);
- bounded time: with 1 s timeouts the run ends within `ENDS_WITHIN_S`;
- a clear reset: the data plane's log (and, where the sink still reads, the GOAWAY it
  received) names what the sink did, and no exception escaped a protocol callback (asyncio
  logs those as fatal errors);
- nothing committed early: a batch is acknowledged only after the sink really answered it
  SUCCESS; the misbehaving stream's batch is sent again on a new stream.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sink_runtime.config import (
    Backoff,
    BatchConfig,
    FileSourceConfig,
    RetryStrategy,
    RuntimeConfig,
)
from tests.dataplane.h2_sink import H2Sink, Reset
from tests.dataplane.harness import H2SinkFactory, ids, write_jsonl

REPO = Path(__file__).resolve().parents[2]
RECORDS, BATCH = 6, 3
RSS_GROWTH_MIB = 24
ENDS_WITHIN_S = 20.0
# Stops a data plane that did not end by itself (the failure this suite exists to catch).
PROBE_LIMIT_S = 60.0


@dataclass
class Report:
    acked: list[str]
    error: str | None
    elapsed_s: float
    rss_growth_mib: float
    violations: dict[str, float]
    write_timeouts: float
    logs: list[dict[str, str]]

    def logged(self, text: str) -> bool:
        return any(text in r["message"] for r in self.logs)


async def _run(
    sink: H2Sink,
    tmp_path: Path,
    *,
    stop_when: Callable[[], bool] | None = None,
    **sink_config: Any,
) -> Report:
    """A data plane in a subprocess, from a file of RECORDS lines to `sink`, until it ends (or,
    once `stop_when()` holds, SIGTERM ends it)."""
    config = RuntimeConfig(
        source=FileSourceConfig(path=str(write_jsonl(tmp_path / "in.jsonl", RECORDS))),
        sink=sink.config(**({"write_timeout_ms": 1000} | sink_config)),
        batch=BatchConfig(size=BATCH, timeout_ms=50),
        retry_strategy=RetryStrategy(
            backoff=Backoff(interval_ms=10, cap_ms=50, jitter=0.0, steps=3)
        ),
    )
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.dataplane.sink_probe",
        str(path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    done = asyncio.ensure_future(proc.communicate())
    try:
        async with asyncio.timeout(PROBE_LIMIT_S):
            while stop_when is not None and not done.done() and not stop_when():
                await asyncio.wait({done}, timeout=0.02)
            if not done.done() and stop_when is not None:
                proc.send_signal(signal.SIGTERM)
            out, err = await done
    except TimeoutError:
        proc.kill()
        out, err = await done
        pytest.fail(f"the data plane did not end within {PROBE_LIMIT_S:g}s\n{err.decode()[-3000:]}")
    assert proc.returncode == 0, err.decode()[-3000:]
    raw = json.loads(out.decode().strip().splitlines()[-1])
    return Report(
        acked=raw["acked"],
        error=raw["error"],
        elapsed_s=raw["elapsed_s"],
        rss_growth_mib=(raw["rss_peak_kib"] - raw["rss_base_kib"]) / 1024,
        violations=raw["violations"],
        write_timeouts=raw["write_timeouts"],
        logs=raw["logs"],
    )


def _bounded(report: Report) -> None:
    assert report.rss_growth_mib < RSS_GROWTH_MIB, report
    assert report.elapsed_s < ENDS_WITHIN_S, report
    fatal = [r for r in report.logs if r["logger"] == "asyncio"]
    assert not fatal, fatal  # an exception out of a protocol callback


def _delivered_after_answers(report: Report, sink: H2Sink) -> None:
    """Every record acknowledged, and only after the sink answered it SUCCESS."""
    assert sorted(report.acked) == sorted(ids(RECORDS)), report
    assert set(report.acked) <= sink.succeeded
    assert report.error is None, report


def _goaway_names(sink: H2Sink, text: str) -> bool:
    return any(r.frame == "GOAWAY" and text in r.debug for r in sink.resets)


async def test_a_well_behaved_sink_stays_within_the_bounds_the_suite_asserts(
    h2_sink: H2SinkFactory, tmp_path: Path
) -> None:
    sink = await h2_sink(["ok"])
    report = await _run(sink, tmp_path)
    _bounded(report)
    _delivered_after_answers(report, sink)
    assert sink.streams == 1
    assert not report.logs


async def test_a_sink_that_never_answers_the_handshake_fails_start_up_at_its_timeout(
    h2_sink: H2SinkFactory, tmp_path: Path
) -> None:
    sink = await h2_sink(["silent"])
    report = await _run(sink, tmp_path, startup_timeout_ms=1000)
    _bounded(report)
    assert report.error is not None
    assert "not ready within the start-up timeout of 1s (startupTimeout)" in report.error
    assert "waiting for the handshake answer" in report.error
    assert report.acked == []


async def test_a_reconnect_whose_handshake_is_never_answered_ends_at_the_write_timeout(
    h2_sink: H2SinkFactory, tmp_path: Path
) -> None:
    # Stream 1 goes away mid-batch; the reconnect meets a sink that never answers the
    # handshake; the write gives up at its timeout and the retry reaches a good stream.
    sink = await h2_sink(["goaway", "silent", "ok"])
    report = await _run(sink, tmp_path)
    _bounded(report)
    _delivered_after_answers(report, sink)
    assert report.write_timeouts == 1
    assert report.logged(
        "within the write timeout of 1s (writeTimeout), waiting for the handshake answer"
    )
    assert [n for n, _ in sink.batches] == [3, 3]  # both batches on the good stream


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("flood-empty", "sent 4 answer messages (0 results) for a batch of 3 without its EOT"),
        ("flood-byte", "an answer of 1 bytes is not a SinkResponse"),
        ("flood-empty-idle", "after the handshake answer, before the first batch"),
        ("flood-byte-idle", "after the handshake answer, before the first batch"),
    ],
    ids=["empty", "1-byte", "empty-between-batches", "1-byte-between-batches"],
)
async def test_a_flood_of_tiny_messages_ends_the_stream_and_the_batch_goes_again(
    h2_sink: H2SinkFactory, tmp_path: Path, behaviour: str, reason: str
) -> None:
    sink = await h2_sink([behaviour, "ok"])
    report = await _run(sink, tmp_path)
    _bounded(report)
    _delivered_after_answers(report, sink)
    assert report.logged(reason), report.logs
    if behaviour.endswith("-idle"):  # the stream was reset before any batch went on it
        assert report.violations["protocol"] == 1
        assert [n for n, _ in sink.batches] == [2, 2]
    else:  # the first batch went again on the next stream
        assert [n for n, _ in sink.batches] == [1, 2, 2]
        assert sink.batches[0][1] == sink.batches[1][1]


@pytest.mark.parametrize("behaviour", ["ping-no-read", "settings-no-read"])
async def test_a_sink_that_sends_frames_to_answer_and_reads_nothing_is_dropped(
    h2_sink: H2SinkFactory, tmp_path: Path, behaviour: str
) -> None:
    sink = await h2_sink([behaviour, "ok"])
    report = await _run(sink, tmp_path)
    _bounded(report)
    _delivered_after_answers(report, sink)
    assert report.logged("PING and SETTINGS frames (each answered) within 60s"), report.logs
    assert report.violations["protocol"] == 1
    assert [n for n, _ in sink.batches] == [2, 2]


async def test_a_second_eot_resets_the_stream_and_the_next_batch_gets_its_own_answers(
    h2_sink: H2SinkFactory, tmp_path: Path
) -> None:
    sink = await h2_sink(["double-eot", "ok"])
    report = await _run(sink, tmp_path)
    _bounded(report)
    _delivered_after_answers(report, sink)
    reason = "between batches (after a batch's EOT)"
    assert report.logged(reason), report.logs
    assert _goaway_names(sink, reason)
    assert report.violations["protocol"] == 1
    assert report.violations["count"] == 0  # no batch read another's answers
    assert sink.batches == [(1, ids(RECORDS)[:BATCH]), (2, ids(RECORDS)[BATCH:])]


async def test_a_retried_batch_never_takes_a_previous_attempts_stray_answers(
    h2_sink: H2SinkFactory, tmp_path: Path
) -> None:
    # Every attempt is answered FAILURE, then (stray) SUCCESS for the same ids: taking the
    # stray answer for the retry's would commit records the sink never handled.
    sink = await h2_sink(["stray-success"])
    report = await _run(sink, tmp_path, stop_when=lambda: len(sink.batches) >= 4)
    _bounded(report)
    assert report.acked == []
    first = ids(RECORDS)[:BATCH]
    assert [b for _, b in sink.batches[:4]] == [first] * 4
    numbers = [n for n, _ in sink.batches]
    assert len(set(numbers)) == len(numbers)  # each attempt on a stream of its own
    assert report.logged("between batches (after a batch's EOT)"), report.logs


async def test_a_huge_length_prefix_ends_the_stream_at_once(
    h2_sink: H2SinkFactory, tmp_path: Path
) -> None:
    sink = await h2_sink(["huge-prefix", "ok"])
    report = await _run(sink, tmp_path, max_message_bytes=1024 * 1024)
    _bounded(report)
    _delivered_after_answers(report, sink)
    reason = (
        "the server sent a message of 4294967295 bytes, over the max message size of "
        "1048576 bytes (maxMessageBytes)"
    )
    assert report.logged(reason), report.logs
    assert _goaway_names(sink, reason)
    assert report.write_timeouts == 0
    assert [n for n, _ in sink.batches] == [1, 2, 2]


async def test_a_message_that_never_completes_is_held_only_to_its_declared_bound(
    h2_sink: H2SinkFactory, tmp_path: Path
) -> None:
    size = 8 * 1024 * 1024
    sink = await h2_sink(["partial", "ok"], partial_length=size)
    report = await _run(sink, tmp_path, max_message_bytes=size)
    _bounded(report)
    _delivered_after_answers(report, sink)
    assert report.write_timeouts == 1
    assert report.logged("within the write timeout of 1s (writeTimeout), waiting for the answers")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([(b":status", "²".encode())], "malformed :status '²'"),
        ([(b":status", b"\xb2")], "malformed :status '\ufffd'"),
        ([(b":status", "\u0662\u0660\u0660".encode())], "malformed :status '\u0662\u0660\u0660'"),
        ([(b":status", b"2OO")], "malformed :status '2OO'"),
        ([(b"content-type", b"application/grpc")], "missing mandatory b':status' header"),
        (
            [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"x", b"\xff\xfe")],
            "waiting for the handshake answer",
        ),
        (
            [
                (b":status", b"200"),
                (b"content-type", b"application/grpc"),
                (b"grpc-status", "\u0660".encode()),
            ],
            "malformed grpc-status '\u0660'",
        ),
    ],
    ids=[
        "status-superscript",
        "status-not-utf8",
        "status-arabic-digits",
        "status-letters",
        "status-missing",
        "header-not-utf8",
        "grpc-status-arabic-zero",
    ],
)
async def test_odd_headers_end_the_stream_without_an_exception_in_the_callback(
    h2_sink: H2SinkFactory,
    tmp_path: Path,
    headers: list[tuple[bytes, bytes]],
    reason: str,
) -> None:
    # A good stream goes away mid-batch, the reconnect meets the odd headers, the resend
    # after that reaches a good stream.
    sink = await h2_sink(["goaway", "headers", "ok"], headers=headers)
    report = await _run(sink, tmp_path)
    _bounded(report)
    _delivered_after_answers(report, sink)
    assert report.logged(reason), report.logs
    assert [n for n, _ in sink.batches] == [3, 3]
    assert all(isinstance(r, Reset) for r in sink.resets)
