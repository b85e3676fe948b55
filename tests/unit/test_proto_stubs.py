"""The committed stubs are exactly what scripts/gen_proto.py generates from the .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "sink_runtime" / "proto"


def test_committed_stubs_equal_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh_dir = tmp_path / "sink_runtime" / "proto"
    fresh = sorted(p.name for p in fresh_dir.iterdir() if p.is_file())
    assert fresh, f"gen_proto.py wrote nothing under {fresh_dir}"
    for name in fresh:
        committed = PROTO_DIR / name
        assert committed.exists(), f"{name} is generated but not committed"
        assert committed.read_bytes() == (fresh_dir / name).read_bytes(), (
            f"{committed} differs from a fresh generation: run scripts/gen_proto.py"
        )
    generated_kinds = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
    stale = [p.name for p in PROTO_DIR.iterdir() if p.name.endswith(generated_kinds)]
    assert sorted(stale) == fresh, "committed stubs without a .proto source"
