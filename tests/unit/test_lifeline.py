"""udsink_cli.lifeline: children die with their parent, and starting them forks nothing.

Each case runs in a fresh interpreter: at-fork hooks cannot be unregistered, and the parent
under test is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from udsink_cli.lifeline import tied_to_parent

# A parent that registers an at-fork hook (as gRPC does), starts `true` with or without a
# preexec_fn, and says whether the hook ran in the child.
HOOK_PROBE = """\
import os, subprocess, sys
from udsink_cli.lifeline import tied_to_parent
marker = sys.argv[2]
os.register_at_fork(after_in_child=lambda: open(marker, "w").close())
argv = ["true"]
if sys.argv[1] == "preexec":
    subprocess.run(argv, preexec_fn=lambda: None, check=True)
else:
    subprocess.run(tied_to_parent(argv), check=True)
print("hook ran" if os.path.exists(marker) else "no hook")
"""

# A parent that starts `sleep` through the lifeline, prints its pid and waits to be killed.
DOOMED_PARENT = """\
import subprocess, sys, time
from udsink_cli.lifeline import tied_to_parent
child = subprocess.Popen(tied_to_parent(["sleep", "120"]))
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(("how", "expected"), [("preexec", "hook ran"), ("lifeline", "no hook")])
def test_starting_a_child_runs_no_at_fork_hook(tmp_path: Path, how: str, expected: str) -> None:
    # The preexec row shows the probe can see the hook; the lifeline row is the point: no
    # library's at-fork handler (gRPC's aborts the child) runs on our way to exec.
    out = subprocess.run(
        [sys.executable, "-c", HOOK_PROBE, how, str(tmp_path / "marker")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == expected, out.stderr


def test_the_child_dies_with_its_parent() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", DOOMED_PARENT], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    try:
        assert _alive(child_pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        outlived = _alive(child_pid)
    finally:
        if _alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)
    assert not outlived, "the child outlived its parent"


def test_the_pid_is_the_commands_own(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        tied_to_parent(["sh", "-c", "echo $$; exec sleep 30"]), stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert int(proc.stdout.readline()) == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_program_that_cannot_run_raises_as_popen_would(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        tied_to_parent(["no-such-program-udsink"])
    assert missing.value.filename == "no-such-program-udsink"
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError):
        tied_to_parent([str(script)])
    with pytest.raises(FileNotFoundError):
        tied_to_parent(["./absent"], cwd=tmp_path)


def test_off_the_main_thread_the_command_is_left_as_given() -> None:
    # The signal follows the starting thread; a worker thread may end before the child should.
    seen: list[list[str]] = []
    worker = threading.Thread(target=lambda: seen.append(tied_to_parent(["true"])))
    worker.start()
    worker.join()
    assert seen == [["true"]]
    assert tied_to_parent(["true"])[-1] == "true" and len(tied_to_parent(["true"])) > 1
