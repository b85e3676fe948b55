"""The data plane as a program: config errors, HTTP endpoints, draining, the real entry point."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from sink_runtime.config import (
    Backoff,
    BatchConfig,
    BlackholeSinkConfig,
    GeneratorSourceConfig,
    LogSinkConfig,
    ObservabilityConfig,
    RetryStrategy,
    RuntimeConfig,
)
from sink_runtime.dataplane import app
from sink_runtime.dataplane.app import DataPlane
from sink_runtime.dataplane.sources.generator import GeneratorSource
from sink_runtime.types import Datum, Response
from tests.dataplane.harness import H2SinkFactory, http_get, until
from tests.support.recording_sink import SdkFactory

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]


def _config(sink: Any, **overrides: Any) -> RuntimeConfig:
    options: dict[str, Any] = {
        "source": GeneratorSourceConfig(rate=0, count=30, key_count=0, partitions=1),
        "sink": sink,
        "batch": BatchConfig(size=10, timeout_ms=50),
        "observability": ObservabilityConfig(metrics_port=0, metrics_host="127.0.0.1"),
        "retry_strategy": RetryStrategy(
            backoff=Backoff(interval_ms=1, cap_ms=5, jitter=0.0, steps=3)
        ),
    }
    return RuntimeConfig(**(options | overrides))


# --- configuration errors ---


def test_invalid_config_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps({"source": {"type": "generator"}, "sink": {"type": "log"}, "batch": {"size": 0}})
    )
    assert app.main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"invalid runtime config {cfg}" in err
    assert "batch.size: Input should be greater than or equal to 1 (got 0)" in err


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    assert app.main(["--config", str(missing)]) == 2
    assert f"cannot read runtime config {missing}" in capsys.readouterr().err


def test_udsink_runtime_dispatches_to_the_data_plane(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from udsink_cli.main import main as udsink_main

    cfg = tmp_path / "config.json"
    cfg.write_text('{"source": {"type": "generator"}}')
    assert udsink_main(["runtime", "--config", str(cfg)]) == 2
    assert "sink: required field is missing" in capsys.readouterr().err


# --- in-process data plane ---


async def test_data_plane_from_config_forwards_everything_and_serves_http(
    sdk_sink: SdkFactory,
) -> None:
    primary = await sdk_sink()
    dp = DataPlane(_config(primary.config()))
    assert dp.http is not None
    await dp.http.start()
    port = dp.http.port
    assert await http_get(port, "/readyz") == (503, "not ready: starting\n")
    assert "\nudsink_ready 0.0" in (await http_get(port, "/metrics"))[1]
    assert await http_get(port, "/livez") == (200, "ok\n")
    await dp.start()
    assert await http_get(port, "/readyz") == (200, "ready\n")
    assert "\nudsink_ready 1.0" in (await http_get(port, "/metrics"))[1]
    await asyncio.wait_for(dp.run(), 30)

    assert primary.recorder.ids == [f"generator:0:{i}" for i in range(30)]
    assert isinstance(dp.source, GeneratorSource)
    assert dp.source.committed == {0: 30}


async def test_metrics_endpoint_shows_the_counters(sdk_sink: SdkFactory) -> None:
    primary = await sdk_sink()
    dp = DataPlane(_config(primary.config()))
    await dp.start()
    assert dp.http is not None
    forwarding = asyncio.ensure_future(dp.forwarder.run())
    await asyncio.wait_for(forwarding, 30)
    status, body = await http_get(dp.http.port, "/metrics")
    assert status == 200
    assert "udsink_acked_total 30.0" in body
    assert 'udsink_written_total{sink="primary"} 30.0' in body
    assert "udsink_batch_seconds_count 3.0" in body
    assert (await http_get(dp.http.port, "/nope"))[0] == 404
    await dp.close()


async def test_readyz_names_what_is_not_ready(sdk_sink: SdkFactory) -> None:
    primary = await sdk_sink()
    dp = DataPlane(_config(primary.config()))
    await dp.start()
    assert dp.http is not None
    await dp.source.close()
    assert await http_get(dp.http.port, "/readyz") == (503, "not ready: source not ready\n")
    await dp.close()


async def test_stop_finishes_the_in_flight_batch_and_reads_no_more(
    sdk_sink: SdkFactory,
) -> None:
    loop = asyncio.get_running_loop()
    stop_now = threading.Event()
    holder: dict[str, DataPlane] = {}

    def answer(d: Datum, n: int) -> Response:
        # The first delivery of the first batch asks the data plane to stop, then the batch
        # still needs two retries of one datum before it is done.
        if not stop_now.is_set():
            stop_now.set()
            loop.call_soon_threadsafe(holder["dp"].stop)
        if d.id == "generator:0:3" and n <= 2:
            return Response.failure(d.id, "busy")
        return Response.ok(d.id)

    primary = await sdk_sink(answer)
    dp = DataPlane(_config(primary.config()), serve_http=False)
    holder["dp"] = dp
    await asyncio.wait_for(dp.run(), 30)
    assert isinstance(dp.source, GeneratorSource)
    assert dp.source.committed == {0: 10}  # the in-flight batch, acknowledged
    assert primary.recorder.count("generator:0:3") == 3
    assert all(int(i.rsplit(":", 1)[1]) < 10 for i in primary.recorder.ids)
    assert dp.abandoned == 0


async def test_hard_deadline_abandons_the_batch_unacknowledged(sdk_sink: SdkFactory) -> None:
    loop = asyncio.get_running_loop()
    holder: dict[str, DataPlane] = {}

    def answer(d: Datum, n: int) -> Response:
        if n == 1 and d.id == "generator:0:0":
            loop.call_soon_threadsafe(holder["dp"].stop)
        return Response.failure(d.id, "down")  # never succeeds; onFailure=retry

    primary = await sdk_sink(answer)
    dp = DataPlane(_config(primary.config(), shutdown_grace_ms=1000), serve_http=False)
    holder["dp"] = dp
    await asyncio.wait_for(dp.run(), 30)
    assert isinstance(dp.source, GeneratorSource)
    assert dp.source.committed == {}
    assert dp.metrics.value("udsink_acked_total") == 0
    assert dp.abandoned == 10


async def test_livez_fails_while_start_up_hangs_past_its_limit(h2_sink: H2SinkFactory) -> None:
    # A sink that accepts the stream and never answers the handshake, and a start-up limit
    # far under its startupTimeout: /livez turns 503 before the client gives up by itself.
    sink = await h2_sink(["silent"])
    dp = DataPlane(_config(sink.config(startup_timeout_ms=60_000)))
    assert dp.startup_limit_s == 60 + app.LIVENESS_SLACK_S
    dp.startup_limit_s = 1.0
    assert dp.http is not None
    await dp.http.start()
    starting = asyncio.ensure_future(dp.start())
    try:
        assert await http_get(dp.http.port, "/livez") == (200, "ok\n")
        await until(lambda: not dp.liveness()[0], "/livez stayed healthy during start-up")
        status, body = await http_get(dp.http.port, "/livez")
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await dp.close()
    assert status == 503
    assert "start-up has not finished after" in body
    assert "(limit 1s)" in body


# --- the real entry point, as the container runs it ---


def _write_config(path: Path, config: RuntimeConfig) -> Path:
    path.write_text(config.to_json())
    return path


def test_module_entry_point_runs_to_exhaustion_with_json_logs(tmp_path: Path) -> None:
    cfg = _write_config(
        tmp_path / "config.json",
        _config(
            LogSinkConfig(),
            source=GeneratorSourceConfig(rate=0, count=5, key_count=2, partitions=2),
        ),
    )
    done = subprocess.run(
        [PYTHON, "-m", "sink_runtime.dataplane", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    logged = [e["message"] for e in lines if e["logger"] == "sink_runtime.dataplane.sinks.log"]
    assert len(logged) == 5
    assert logged[0].startswith("[primary] id=generator:0:0 keys=['key-0'] headers={} value='0")
    assert any("5 messages acknowledged" in e["message"] for e in lines)


def test_sigterm_drains_and_exits_0(tmp_path: Path) -> None:
    cfg = _write_config(
        tmp_path / "config.json",
        _config(BlackholeSinkConfig(), source=GeneratorSourceConfig(rate=200, count=0)),
    )
    proc = subprocess.Popen(
        [PYTHON, "-m", "sink_runtime.dataplane", "--config", str(cfg)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "started" in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=30) == 0, rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopping: no new batches" in rest
    assert "messages acknowledged" in rest
