"""udsink installs beside pynumaflow, and a sink of each SDK then runs in that one environment.

A fresh venv gets `pip install <this checkout>[cli] pynumaflow==<newest>` with protobuf and
grpcio pinned to the lowest versions pyproject.toml declares (the dev environment runs the whole
suite on the highest). pip must resolve it with no conflict (`pip check`), and `udsink run`
from that venv then delivers every message to our SDK's example log sink and to an unmodified
pynumaflow sink (each in its own process: the two SDKs' sink.v1 types never share one).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.support.pynumaflow_env import PYNUMAFLOW_VERSION
from tests.support.unmodified_sink import LINE_PREFIX

pytestmark = [pytest.mark.pynumaflow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "00-quickstart" / "udsink.yaml"
PYNUMAFLOW_SINK = ROOT / "tests" / "interop" / "sinks" / "python" / "interop_sink.py"
COUNT = 200


def lowest(package: str) -> str:
    """The lower bound pyproject.toml declares for `package` (`>=X`)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        found = re.fullmatch(rf"{re.escape(package)}>=([0-9.]+)(,<[0-9.]+)?", dep)
        if found:
            return found.group(1)
    raise AssertionError(f"pyproject.toml declares no lower bound for {package}: {deps}")


def _checked(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc.stdout


def test_udsink_installs_beside_the_newest_pynumaflow_and_both_sdks_sinks_run(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    _checked(["python3", "-m", "venv", str(venv)])
    python, udsink = str(venv / "bin" / "python"), str(venv / "bin" / "udsink")
    pins = {"protobuf": lowest("protobuf"), "grpcio": lowest("grpcio")}
    _checked(
        [
            python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            f"{ROOT}[cli]",
            f"pynumaflow=={PYNUMAFLOW_VERSION}",
            *(f"{name}=={version}" for name, version in pins.items()),
        ]
    )
    _checked([python, "-m", "pip", "check"])
    installed = json.loads(_checked([python, "-m", "pip", "list", "--format", "json"]))
    versions = {p["name"].lower(): p["version"] for p in installed}
    assert versions["pynumaflow"] == PYNUMAFLOW_VERSION
    assert {name: versions[name] for name in pins} == pins

    run = [udsink, "run", "-f", str(QUICKSTART), "--count", str(COUNT), "--rate", "0", "--json"]
    # Our SDK: the quickstart's own log sink, started with this venv's python (the `python`
    # of PATH, as for a user who activated the venv; not the one running these tests).
    activated = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    ours = subprocess.run(
        run, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=activated
    )
    assert ours.returncode == 0, ours.stderr
    assert json.loads(ours.stdout)["messages"]["acked"] == COUNT

    # pynumaflow's: an unmodified pynumaflow sink, from the same venv.
    theirs = subprocess.run(
        [*run, "--sink-cmd", f"{python} -u {PYNUMAFLOW_SINK}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=activated,
    )
    assert theirs.returncode == 0, theirs.stderr
    assert json.loads(theirs.stdout)["messages"]["acked"] == COUNT
    seen = {
        json.loads(line.split(LINE_PREFIX, 1)[1])["id"]
        for line in theirs.stderr.splitlines()
        if LINE_PREFIX in line
    }
    assert len(seen) == COUNT, theirs.stderr[-4000:]
