"""bench/dataplane_e2e.py runs end to end, tiny, against the session's broker.

Only that it works and reports a rate for every row: timing goals live in bench/, not in tests.
The SDK sink rows run the interop tier's Numaflow SDK sinks as the interop tests build them (the
Rust one in its debug build, `--rust-build debug`: no build the CI run does not already do).

The Numaflow rows run Numaflow's own data plane (tests/support/numaflow_peer.py finds the
binary, and fails with where it looked when it is absent) in the bench's private network
namespace, with the bench's own broker there; interleaved with the rows the goals compare them
with, so every same-run ratio line is printed.
"""

from __future__ import annotations

import lzma
import os
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
    "kafka-kafka-eos",
    "kafka-ceiling",
    "grpc-v1",
    "blackhole-tls",
    "blackhole-sasl-ssl",
    "kafka-kafka-tls",
    "kafka-kafka-sasl-ssl",
)
NUMAFLOW_ROWS = (
    "numaflow+blackhole",
    "numaflow+blackhole-backoff10",
    "numaflow+go-v1",
    "numaflow+rust-v1",
)
# The peer run: the Numaflow rows among every row a same-run ratio needs.
PEER_RUN = (
    "ceiling",
    "blackhole",
    "numaflow+blackhole",
    "numaflow+blackhole-backoff10",
    "udsink-batch",
    "go-v1",
    "numaflow+go-v1",
    "rust-v1",
    "numaflow+rust-v1",
    "kafka-kafka",
    "kafka-ceiling",
)
# The lines the peer run must print: (goal, our row, the row it is divided by).
RATIOS = (
    (1, "blackhole", "ceiling"),
    (2, "rust-v1", "blackhole"),
    (2, "go-v1", "blackhole"),
    (3, "udsink-batch", "rust-v1"),
    (4, "kafka-kafka", "kafka-ceiling"),
    (5, "blackhole", "numaflow+blackhole"),
    (5, "blackhole", "numaflow+blackhole-backoff10"),
    (5, "go-v1", "numaflow+go-v1"),
    (5, "rust-v1", "numaflow+rust-v1"),
    (5, "udsink-batch", "numaflow+"),
)
# Each row but the ceilings is reported against its matching ceiling.
MATCHING = {
    "blackhole": "ceiling",
    "kafka-kafka": "kafka-ceiling",
    "kafka-kafka-eos": "kafka-kafka",
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
    "numaflow+blackhole": "ceiling",
    "numaflow+blackhole-backoff10": "ceiling",
}
# The rows with a sink, also reported over the data plane without one.
OVER_BLACKHOLE = ("udsink-batch", "udsink-v1", "pynumaflow-v1", "go-v1", "rust-v1", "java-v1")


@pytest.mark.pynumaflow
def test_dataplane_bench_reports_a_rate_for_every_row(
    kafka_broker: KafkaBroker, pynumaflow_python: Path
) -> None:
    cmd = [sys.executable, str(REPO / "bench" / "dataplane_e2e.py"), "--messages", "2000"]
    cmd += ["--partitions", "2", "--batch", "200", "--bootstrap", kafka_broker.bootstrap]
    cmd += ["--broker-security", str(kafka_broker.security_file), "--rows", ",".join(ROWS)]
    cmd += ["--pynumaflow-python", str(pynumaflow_python), "--rust-build", "debug"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO, check=False)
    assert_rows(proc, ROWS)
    assert "rust-v1: the Rust sink's debug build" in proc.stdout
    assert "- goal 1: blackhole / ceiling = " in proc.stdout


def test_dataplane_bench_runs_the_numaflow_peer_beside_our_rows() -> None:
    """Its own broker (the peer's network namespace holds it), 2,000 messages; the binary from
    the shared peers folder or the cache (where it looked, in the failure, when absent)."""
    cmd = [sys.executable, str(REPO / "bench" / "dataplane_e2e.py"), "--messages", "2000"]
    cmd += ["--partitions", "2", "--batch", "200", "--rows", ",".join(PEER_RUN)]
    cmd += ["--rust-build", "debug"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=REPO, check=False)
    assert_rows(proc, PEER_RUN)
    assert re.search(r"^- Numaflow peer: .*SHA-256 [0-9a-f]{16}", proc.stdout, re.MULTILINE)
    for goal, ours, over in RATIOS:
        line = re.search(
            rf"^- goal {goal}: {re.escape(ours)} / {re.escape(over)}\S* .*= \d+\.\d+",
            proc.stdout,
            re.MULTILINE,
        )
        assert line is not None, f"no goal {goal} ratio {ours} / {over} in:\n{proc.stdout}"
    verdict = re.search(r"^- goal 5 verdict: (met|MISSED) ", proc.stdout, re.MULTILINE)
    assert verdict is not None, proc.stdout
    assert "not in this run" not in verdict.group(0), verdict.group(0)


def assert_rows(proc: subprocess.CompletedProcess[str], rows: tuple[str, ...]) -> None:
    """Every row of `rows` in the table, every message committed, a rate above zero."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    rates: dict[str, float] = {}
    for row in rows:
        line = re.search(rf"^\| {re.escape(row)} \|.*$", proc.stdout, re.MULTILINE)
        assert line is not None, f"no table row {row!r} in:\n{out[-4000:]}"
        cells = [c.strip() for c in line.group(0).strip("|").split("|")]
        assert cells[2] == "2000", line.group(0)  # every message was committed
        rates[row] = float(cells[4].replace(",", ""))
        if row in MATCHING and MATCHING[row] in rows:
            assert cells[6].endswith(f"% of {MATCHING[row]}"), line.group(0)
        elif row in MATCHING:
            assert cells[6] == f"n/a (no {MATCHING[row]} row)", line.group(0)
        assert cells[10].endswith("%") == (row in OVER_BLACKHOLE), line.group(0)
        if row in NUMAFLOW_ROWS:
            assert float(cells[8]) > 0, line.group(0)  # its CPU was read from /proc
    assert all(rate > 0 for rate in rates.values()), rates
    assert re.search(r"^- CPU: \d+ x ", proc.stdout, re.MULTILINE), out[-2000:]


@pytest.mark.parametrize("given", ["missing", "another build"])
def test_the_peer_rows_fail_with_the_reason_when_the_binary_is_not_there(
    tmp_path: Path, given: str
) -> None:
    """Never skipped: the bench exits naming the file, before any broker starts; a compressed
    file of another build is not left in the cache."""
    peer = tmp_path / "numaflow-rs.xz"
    if given == "another build":
        peer.write_bytes(lzma.compress(b"not the Numaflow data plane\n"))
    cache = tmp_path / "cache"
    env = {**os.environ, "UDSINK_NUMAFLOW_PEER": str(peer), "UDSINK_CACHE": str(cache)}
    cmd = [sys.executable, str(REPO / "bench" / "dataplane_e2e.py"), "--messages", "10"]
    cmd += ["--rows", "blackhole,numaflow+blackhole"]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=60, cwd=REPO, check=False, env=env
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the Numaflow rows cannot run" in proc.stderr
    assert str(peer) in proc.stderr
    if given == "missing":
        assert "no such file" in proc.stderr
    else:
        assert "not the expected" in proc.stderr
    assert "started Kafka" not in proc.stdout
    assert not (cache / "numaflow-rs").exists()
