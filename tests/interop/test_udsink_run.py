"""`udsink run` with an unmodified Numaflow SDK sink: a local command, and an image.

The sink is the Go interop sink (numaflow-go), told nothing about where to listen: with
`--sink-cmd` it gets a private /var/run/numaflow bound to the run's socket directory; from an
image it runs in the test's own podman with that directory mounted there. Counted from the
sink's own output and the run's summary; no container is left behind, and /var/run/numaflow
is neither created where it is absent nor written where it exists (a Numaflow developer's
laptop): both conditions are made in a namespace of the test's own (tests/support/sdk_dir.py).
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
from udsink_cli import oci_runtime

from tests.interop.conftest import SDK_DIR, Podman
from tests.support.interop_sinks import sink_command
from tests.support.sdk_dir import SdkDirView
from tests.support.unmodified_sink import LINE_PREFIX

pytestmark = pytest.mark.interop

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


def _run(
    args: list[str], env: dict[str, str], cwd: Path, view: SdkDirView
) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        view.wrap([sys.executable, "-m", "udsink_cli.main", "run", "--json", *args]),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )
    view.assert_untouched()
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON summary (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.returncode, summary, proc.stderr


@SDK_DIR
def test_sink_cmd_runs_an_unmodified_go_sdk_sink(tmp_path: Path, view: SdkDirView) -> None:
    binary = sink_command("go")
    out = tmp_path / "sink-output.jsonl"
    # Only the shell's redirection is ours: the binary is the SDK sink as built.
    cmd = f"sh -c {shlex.quote(f'exec {shlex.join(binary)} > {out}')}"
    udsink_file = _udsink_file(tmp_path / "udsink.yaml", "example.com/not-pulled:1")
    code, summary, stderr = _run(
        ["-f", str(udsink_file), "--sink-cmd", cmd], dict(os.environ), tmp_path, view
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


@SDK_DIR
def test_image_sinks_run_with_podman_and_are_removed(
    tmp_path: Path, podman: Podman, go_sink_image: str, view: SdkDirView
) -> None:
    # The spec names an image nobody can pull; --sink-image replaces it for the primary, and
    # the fallback sink runs from the spec's image as `fb-udsink`.
    udsink_file = _udsink_file(
        tmp_path / "udsink.yaml", "example.com/not-pulled:1", fallback_image=go_sink_image
    )
    args = ["-f", str(udsink_file), "--sink-image", go_sink_image]
    code, summary, stderr = _run(args, podman.environ(), tmp_path, view)
    assert code == 0, stderr
    assert summary["messages"]["acked"] == COUNT, summary
    assert f"udsink sink: image {go_sink_image} runs with" in stderr
    assert f"fb-udsink sink: image {go_sink_image} runs with" in stderr
    # udsink run chose the OCI runtime itself (the engine command names none).
    assert "--runtime" not in podman.env["UDSINK_CONTAINER_ENGINE"]
    assert f"runs with podman (OCI runtime {oci_runtime.oci_runtime()})" in stderr
    assert podman.run("ps", "--all", "--quiet").strip() == ""
