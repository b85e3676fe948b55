"""Running `udsink run` as a user does, for the CLI tests: a real subprocess, judged from outside.

Helpers shared by the CLI test files: start the runner, parse its `--json` summary, read what
the test sinks (tests/cli/sinks/) recorded, and check that processes are gone.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from sink_runtime.config import constants
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "00-quickstart" / "udsink.yaml"
SINKS = Path(__file__).resolve().parent / "sinks"
RUN_TIMEOUT_S = 60.0
WAIT_TIMEOUT_S = 30.0


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, Any]:
        try:
            parsed: dict[str, Any] = json.loads(self.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"no JSON summary on stdout:\n{self.stdout}\nstderr:\n{self.stderr}")
        return parsed


def sink_cmd(script: str) -> str:
    return shlex.join(["python", str(SINKS / script)])


def udsink_argv(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "udsink_cli.main", "run", *map(str, args)]


def run_env(record_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of `udsink run` and so of its sinks, as a user with this venv activated
    has it (`python` in a sink command is this venv's); the log format is its default."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "RECORD_DIR": str(record_dir), **extra}
    env.pop(constants.LOG_FORMAT_ENV, None)
    return env


def udsink_run(*args: str | Path, env: Mapping[str, str], cwd: Path) -> Finished:
    proc = subprocess.run(
        udsink_argv(*args),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    return Finished(proc.returncode, proc.stdout, proc.stderr)


def write_udsink(path: Path, spec: str, name: str = "local-test") -> Path:
    """A UDSink file whose sinks are container images only: commands come from the flags."""
    path.write_text(
        f"apiVersion: udsink.dev/v1alpha1\nkind: UDSink\nmetadata:\n  name: {name}\nspec:\n" + spec,
        encoding="utf-8",
    )
    return path


GENERATOR_SPEC = """\
  source:
    generator: {rate: 0, count: 1000, valueSize: 16, keyCount: 2}
  batch: {size: 10, timeout: 100ms}
  sink:
    udsink:
      container: {image: example.com/test-sink:1}
"""


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    """Poll until `check()` holds; fail with the run's output if it exits or time runs out."""

    def exited() -> str | None:
        return None if proc.poll() is None else f"udsink run exited ({proc.returncode})"

    try:
        until(check, what, within=WAIT_TIMEOUT_S, every=0.05, abort=exited)
    except AssertionError as err:
        if proc.poll() is None:
            proc.kill()
        out, errout = proc.communicate()
        pytest.fail(f"{err}\n{out}\n{errout}")


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def read_pid(path: Path) -> int:
    return int(path.read_text(encoding="utf-8"))


def sink_output(stderr: str, role: str = "primary") -> list[str]:
    """The lines a sink printed, as `udsink run` shows them (prefix removed)."""
    prefix = f"{role} | "
    return [line.removeprefix(prefix) for line in stderr.splitlines() if line.startswith(prefix)]


def assert_one_message(stderr: str, *expected: str) -> None:
    """One `udsink run:` message; every further line quotes the sink's stderr or says so.

    The sink's own output, shown as it came (`primary | ...`), is left aside.
    """
    lines = [line for line in stderr.strip().splitlines() if " | " not in line[:14]]
    assert lines and lines[0].startswith("udsink run: "), stderr
    assert sum(line.startswith("udsink run:") for line in lines) == 1, stderr
    for line in lines[1:]:
        assert line.startswith(("  | ", "last ", "it wrote nothing")), stderr
    for text in expected:
        assert text in stderr, f"{text!r} not in:\n{stderr}"


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for a parent that is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Running:
    """`udsink run` started in the background; stdout and stderr collected as they come."""

    def __init__(self, *args: str | Path, env: Mapping[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            udsink_argv(*args),
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._pumps = [
            threading.Thread(target=self._pump, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))
        ]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            into.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def wait_for(self, what: str, check: Callable[[], bool]) -> None:
        def exited() -> str | None:
            return None if self.proc.poll() is None else "udsink run exited"

        try:
            until(check, what, within=WAIT_TIMEOUT_S, every=0.05, abort=exited)
        except AssertionError as err:
            self.proc.kill()
            done = self.finish(RUN_TIMEOUT_S)
            pytest.fail(f"{err} (exit {done.code}):\n{done.stderr}")

    def wait_for_stderr(self, text: str) -> None:
        self.wait_for(f"{text!r} on stderr", lambda: text in self.stderr)

    def finish(self, timeout_s: float) -> Finished:
        """Wait for the exit; a run still going after `timeout_s` is killed and fails."""
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            for pump in self._pumps:
                pump.join(timeout=5)
            pytest.fail(f"udsink run still running after {timeout_s:g}s:\n{self.stderr}")
        for pump in self._pumps:
            pump.join(timeout=5)
        return Finished(self.proc.returncode, "".join(self._out), self.stderr)
