"""`udsink run` against the real broker, as a user runs it: a subprocess, interrupted once
what the test waits for has happened, its JSON summary and stderr returned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.udsink_doc import udsink_doc

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 60.0


def udsink_file(path: Path, name: str, spec: dict[str, Any], namespace: str = "shop") -> Path:
    doc = udsink_doc(name, spec, namespace=namespace)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_until(
    argv: list[str], done: Callable[[list[str]], bool], timeout_s: float = RUN_TIMEOUT_S
) -> tuple[int, dict[str, Any], str]:
    """`udsink run ARGV --json`, interrupted (Ctrl-C) once `done(stderr lines so far)`; (exit
    code, JSON summary, stderr). `done` is asked again and again: each call should wait a
    little (a look at the broker) before answering False."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "udsink_cli.main", "run", *argv, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        while not done(list(lines)):
            if proc.poll() is not None:
                reader.join(5)
                pytest.fail(f"udsink run ended ({proc.returncode}):\n{''.join(lines)}")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    reader.join(5)
    err = "".join(lines)
    if proc.returncode == -signal.SIGKILL:
        pytest.fail(f"udsink run: not done within {timeout_s:g}s\n{err}")
    try:
        return proc.returncode, json.loads(out), err
    except json.JSONDecodeError:
        pytest.fail(f"no JSON summary ({proc.returncode}):\n{out}\n{err}")


def run_to_end(argv: list[str], timeout_s: float = RUN_TIMEOUT_S) -> tuple[int, str, str]:
    """`udsink run ARGV --json` left to end by itself; (exit code, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "udsink_cli.main", "run", *argv, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """`udsink ARGV` in this process (what the `udsink` command runs); (exit code, the parsed
    JSON of stdout or its text, stderr)."""
    from udsink_cli.main import main as udsink

    capsys.readouterr()
    code = udsink(list(argv))
    out, err = capsys.readouterr()
    try:
        return code, json.loads(out), err
    except json.JSONDecodeError:
        return code, out, err
