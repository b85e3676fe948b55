"""bench/operator_scale.py runs end to end, tiny: 5 UDSinks reconciled, measured, resynced;
and the emulator it serves from (UnrecordedEmulator) behaves like the tests' ApplyingEmulator
while keeping no record of served requests.

Only that it works and reports its numbers: timing goals live in bench/, not in tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from udsink_operator.cluster import APPLY_CONTENT_TYPE

from tests.support.emulated_apiserver import (
    CONFIGMAPS_PATH,
    UDSINK_PATH,
    UDSINKS,
    UnrecordedEmulator,
    create,
    patch,
    serving_emulator,
    stored,
    udsink_object,
)

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
    # A restarted operator over an unchanged world writes nothing.
    assert row["resync_writes"] == 0, row
    assert row["peak_rss_mib"] > 0 and row["cpu_s"] > 0, row
    assert "| 5 |" in proc.stdout, proc.stdout


async def test_the_bench_emulator_serves_the_api_without_recording_requests() -> None:
    async with serving_emulator(UnrecordedEmulator) as served:
        assert isinstance(served, UnrecordedEmulator)
        emu = served
        await create(emu, UDSINK_PATH, udsink_object("orders"))
        await patch(emu, f"{UDSINK_PATH}/orders", {"spec": {"replicas": 3}})
        async with emu.get(f"{UDSINK_PATH}/orders") as response:
            assert response.status == 200
            body = await response.json()
        assert body["spec"]["replicas"] == 3
        assert body["metadata"]["generation"] == 2  # a spec change, as in ApplyingEmulator

        # A missing object is the API's 404 Status, naming the reason.
        async with emu.get(f"{UDSINK_PATH}/missing") as response:
            assert response.status == 404
            missing = await response.json()
        assert missing["kind"] == "Status" and missing["reason"], missing

        # Server-side apply creates a missing object; a stale resourceVersion is a 409.
        applied = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}
        applied["metadata"] = {"name": "orders-config", "namespace": "shop"}
        headers = {"Content-Type": APPLY_CONTENT_TYPE}
        async with emu.patch(
            f"{CONFIGMAPS_PATH}/orders-config", json=applied, headers=headers
        ) as r:
            assert r.status == 200, await r.text()
        assert (stored(emu, "v1/configmaps", "orders-config") or {}).get("data") == {"k": "v"}
        stale = {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 4}}
        async with emu.patch(
            f"{UDSINK_PATH}/orders",
            json=stale,
            headers={"Content-Type": "application/merge-patch+json"},
        ) as response:
            assert response.status == 409, await response.text()
        assert (stored(emu, UDSINKS, "orders") or {})["spec"]["replicas"] == 3

        # Counted as they came (the GETs too), and nothing of them is kept.
        assert emu.requests_seen == 6, emu.requests_seen
        assert emu.writes_seen == 4, emu.writes_seen
        assert emu._requests == []
        assert all(not reaction._requests for reaction in emu._payloads)
