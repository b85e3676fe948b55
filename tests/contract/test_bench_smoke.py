"""bench/sdk_server.py runs end to end, tiny: every server produces numbers (no timing checks)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.pynumaflow
def test_the_sdk_server_bench_measures_every_server(
    tmp_path: Path, pynumaflow_python: Path
) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "sdk_server.py"),
            "--duration",
            "0.2",
            "--warmup",
            "0",
            "--batch",
            "20",
            "--sizes",
            "100",
            "--pynumaflow-python",
            str(pynumaflow_python),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    measured = {(r["server"], r["path"]) for r in report["rows"] if r["messages"] > 0}
    assert measured == {
        ("udsink-sync", "sink.v1"),
        ("udsink-sync", "batch"),
        ("udsink-async", "sink.v1"),
        ("udsink-async", "batch"),
        ("thin-v1", "sink.v1"),
        ("pynumaflow-sync", "sink.v1"),
        ("pynumaflow-async", "sink.v1"),
    }
    assert all(r["rate"] > 0 and r["server_cpu_s"] >= 0 for r in report["rows"])
    assert "| udsink-sync | batch |" in proc.stdout and report["machine"]["nproc"]
    # Each row's rate over the thin server's, the figure for the SDK over sink.v1.
    assert re.search(
        r"^\| thin-v1 \| sink\.v1 \| 100 B \| [\d,]+ \| 1 \| 1\.00 \|", proc.stdout, re.M
    )
    assert re.search(
        r"^\| udsink-sync \| sink\.v1 \| 100 B \| [\d,]+ \| 1 \| \d+\.\d\d \|", proc.stdout, re.M
    )
