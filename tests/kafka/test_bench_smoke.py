"""bench/dataplane_e2e.py runs end to end, tiny, against the session's broker.

Only that it works and reports a rate for every row: timing goals live in bench/, not in tests.
The peer rows run the interop tier's Numaflow SDK sinks as the interop tests build them (the
Rust one in its debug build, `--rust-build debug`: no build the CI run does not already do).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.kafka_broker import KafkaBroker

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
ROWS = (
    "ceiling",
    "blackhole",
    "udsink-batch",
    "udsink-v1",
    "pynumaflow-v1",
    "go-v1",
    "rust-v1",
    "java-v1",
    "kafka-kafka",
    "kafka-ceiling",
    "grpc-v1",
    "blackhole-tls",
    "blackhole-sasl-ssl",
    "kafka-kafka-tls",
    "kafka-kafka-sasl-ssl",
)
# Each row but the ceilings is reported against its matching ceiling.
MATCHING = {
    "blackhole": "ceiling",
    "kafka-kafka": "kafka-ceiling",
    "udsink-batch": "blackhole",
    "udsink-v1": "grpc-v1",
    "pynumaflow-v1": "grpc-v1",
    "go-v1": "grpc-v1",
    "rust-v1": "grpc-v1",
    "java-v1": "grpc-v1",
    # The secured rows against their plaintext rows.
    "blackhole-tls": "blackhole",
    "blackhole-sasl-ssl": "blackhole",
    "kafka-kafka-tls": "kafka-kafka",
    "kafka-kafka-sasl-ssl": "kafka-kafka",
}
# The rows with a sink, also reported over the data plane without one.
OVER_BLACKHOLE = ("udsink-batch", "udsink-v1", "pynumaflow-v1", "go-v1", "rust-v1", "java-v1")


@pytest.mark.pynumaflow
def test_dataplane_bench_reports_a_rate_for_every_row(
    kafka_broker: KafkaBroker, pynumaflow_python: Path
) -> None:
    cmd = [sys.executable, str(REPO / "bench" / "dataplane_e2e.py"), "--messages", "2000"]
    cmd += ["--partitions", "2", "--batch", "200", "--bootstrap", kafka_broker.bootstrap]
    cmd += ["--broker-security", str(kafka_broker.security_file)]
    cmd += ["--pynumaflow-python", str(pynumaflow_python), "--rust-build", "debug"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    rates: dict[str, float] = {}
    for row in ROWS:
        line = re.search(rf"^\| {re.escape(row)} \|.*$", proc.stdout, re.MULTILINE)
        assert line is not None, f"no table row {row!r} in:\n{out[-4000:]}"
        cells = [c.strip() for c in line.group(0).strip("|").split("|")]
        assert cells[2] == "2000", line.group(0)  # every message was committed
        rates[row] = float(cells[4].replace(",", ""))
        if row in MATCHING:
            assert cells[6].endswith(f"% of {MATCHING[row]}"), line.group(0)
        assert cells[10].endswith("%") == (row in OVER_BLACKHOLE), line.group(0)
    assert all(rate > 0 for rate in rates.values()), rates
    assert re.search(r"^- CPU: \d+ x ", proc.stdout, re.MULTILINE), out[-2000:]
    assert "rust-v1: the Rust sink's debug build" in proc.stdout
