"""`udsink run` with an unmodified Numaflow SDK sink: a local command, and an image.

The sink is the Go interop sink (numaflow-go), told nothing about where to listen: with
`--sink-cmd` it gets a private /var/run/numaflow bound to the run's socket directory; from an
image it runs in the test's own podman with that directory mounted there. Counted from the
sink's own output and the run's summary; the machine's /var/run/numaflow is never created and
no container is left behind.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import Podman
from tests.support.interop_sinks import sink_command
from tests.support.unmodified_sink import LINE_PREFIX

pytestmark = pytest.mark.interop

REAL_SDK_DIR = Path("/var/run/numaflow")
COUNT = 300


def _udsink_file(path: Path, image: str, fallback_image: str | None = None) -> Path:
    fallback = (
        f"    fallback:\n      udsink:\n        container:\n          image: {fallback_image}\n"
        if fallback_image
        else ""
    )
    path.write_text(
        "apiVersion: udsink.dev/v1alpha1\nkind: UDSink\nmetadata:\n  name: sdk-run\nspec:\n"
        f"  source:\n    generator: {{rate: 0, count: {COUNT}, valueSize: 16, keyCount: 3}}\n"
        "  batch: {size: 50, timeout: 100ms}\n"
        "  sink:\n    udsink:\n      container:\n"
        f"        image: {image}\n"
        "        env: [{name: SINK_GREETING, value: hello}]\n" + fallback,
        encoding="utf-8",
    )
    return path


def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, dict[str, Any], str]:
    assert not REAL_SDK_DIR.exists(), f"{REAL_SDK_DIR} exists before the run"
    proc = subprocess.run(
        [sys.executable, "-m", "udsink_cli.main", "run", "--json", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert not REAL_SDK_DIR.exists(), f"the run created the machine's {REAL_SDK_DIR}"
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON summary (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.returncode, summary, proc.stderr


def test_sink_cmd_runs_an_unmodified_go_sdk_sink(tmp_path: Path) -> None:
    binary = sink_command("go")
    out = tmp_path / "sink-output.jsonl"
    # Only the shell's redirection is ours: the binary is the SDK sink as built.
    cmd = f"sh -c {shlex.quote(f'exec {shlex.join(binary)} > {out}')}"
    udsink_file = _udsink_file(tmp_path / "udsink.yaml", "example.com/not-pulled:1")
    code, summary, stderr = _run(
        ["-f", str(udsink_file), "--sink-cmd", cmd], dict(os.environ), tmp_path
    )
    assert code == 0, stderr
    assert summary["messages"]["acked"] == COUNT, summary
    lines = [
        json.loads(line[len(LINE_PREFIX) :])
        for line in out.read_text().splitlines()
        if line.startswith(LINE_PREFIX)
    ]
    assert len({r["id"] for r in lines}) == COUNT
    assert {(r["sdk"], r["role"], r["answer"]) for r in lines} == {("go", "udsink", "SUCCESS")}


def test_image_sinks_run_with_podman_and_are_removed(
    tmp_path: Path, podman: Podman, go_sink_image: str
) -> None:
    # The spec names an image nobody can pull; --sink-image replaces it for the primary, and
    # the fallback sink runs from the spec's image as `fb-udsink`.
    udsink_file = _udsink_file(
        tmp_path / "udsink.yaml", "example.com/not-pulled:1", fallback_image=go_sink_image
    )
    args = ["-f", str(udsink_file), "--sink-image", go_sink_image]
    code, summary, stderr = _run(args, podman.environ(), tmp_path)
    assert code == 0, stderr
    assert summary["messages"]["acked"] == COUNT, summary
    assert f"udsink sink: image {go_sink_image} runs with" in stderr
    assert f"fb-udsink sink: image {go_sink_image} runs with" in stderr
    assert "podman" in stderr
    assert podman.run("ps", "--all", "--quiet").strip() == ""
