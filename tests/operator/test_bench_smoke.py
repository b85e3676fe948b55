"""bench/operator_scale.py runs end to end, tiny: 5 UDSinks reconciled, measured, resynced.

Only that it works and reports its numbers: timing goals live in bench/, not in tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_operator_bench_reconciles_and_measures_every_udsink(tmp_path: Path) -> None:
    out = tmp_path / "operator.json"
    cmd = [sys.executable, str(ROOT / "bench" / "operator_scale.py"), "--counts", "5"]
    cmd += ["--quiet", "1", "--timeout", "90", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    [row] = json.loads(out.read_text())
    assert row["udsinks"] == 5
    assert row["reconciled_s"] > 0
    # Each UDSink needs at least its three children and a status written.
    assert row["writes"] >= 5 * 4, row
    assert row["resync_writes"] >= 0 and row["peak_rss_mib"] > 0 and row["cpu_s"] > 0, row
    assert "| 5 |" in proc.stdout, proc.stdout
