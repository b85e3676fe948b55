"""`udsink run` as a sink author's daily tool: it ends, it cleans up, it shows the sink, and it
reports in the metrics module's vocabulary.

Like test_local_run.py, each test runs the real runner as a subprocess with real sink processes
(tests/cli/sinks/recording_sink.py, answering by the header `x-test-answer`) and judges it
from outside: exit code, `--json` summary, stdout, stderr, and what the sink recorded.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from fcntl import ioctl
from pathlib import Path
from typing import Any

from udsink_cli.run import DRAIN_S, OUTCOMES, STOP_BOUND_S

from sink_runtime.config import constants
from sink_runtime.config.errors import FALLBACK_NEEDED
from sink_runtime.dataplane.metrics import ATTEMPT_COUNTS, MESSAGE_COUNTS
from tests.cli.runner import (
    QUICKSTART,
    RUN_TIMEOUT_S,
    WAIT_TIMEOUT_S,
    Running,
    alive,
    read_pid,
    records,
    run_env,
    sink_cmd,
    udsink_argv,
    udsink_run,
    write_udsink,
)

PRIMARY_RECORDS = f"{constants.CONTAINER_UDSINK}.jsonl"
PRIMARY_PID = f"{constants.CONTAINER_UDSINK}.pid"
# Two retries 10 ms apart: the retry budget runs out at once.
REPLAY_SPEC = """\
  source:
    generator: {{rate: 0, count: 10}}
  batch: {{size: {batch}, timeout: 50ms}}
  sink:
    udsink:
      container:
        image: example.com/test-sink:1
        env:
          - {{name: TEST_GREETING, value: "hello from the spec"}}
          - {{name: TEST_FROM_SECRET, valueFrom: {{secretKeyRef: {{name: s, key: k}}}}}}
    retryStrategy:
      backoff: {{interval: 10ms, factor: 1, cap: 10ms, steps: 2, jitter: 0}}
"""


def cases_file(path: Path, answers: list[str | None]) -> Path:
    """One JSON line per answer the sink should give (None: OK); ids are file:0:<line>."""
    lines = []
    for n, answer in enumerate(answers, start=1):
        case: dict[str, Any] = {"value": f"v{n}"}
        if answer:
            case["headers"] = {"x-test-answer": answer}
        lines.append(json.dumps(case))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def replay(tmp_path: Path, answers: list[str | None], *args: str, batch: int = 10) -> Any:
    udsink_file = write_udsink(tmp_path / "udsink.yaml", REPLAY_SPEC.format(batch=batch))
    return udsink_run(
        "-f",
        udsink_file,
        "--sink-cmd",
        sink_cmd("recording_sink.py"),
        "--input",
        cases_file(tmp_path / "cases.jsonl", answers),
        *args,
        env=run_env(tmp_path),
        cwd=tmp_path,
    )


# --- It ends ---


def test_replay_that_keeps_failing_ends_after_the_budget_naming_the_ids(tmp_path: Path) -> None:
    # onFailure is the default (retry): in a pod that retries forever; a replay must end.
    done = replay(tmp_path, [None, "failure", None, "failure", None], "--json")
    assert done.code == 1, done.stderr
    summary = done.summary()
    assert summary["outcome"] == "gave-up"
    assert summary["on_failure"] == "retry"
    never = summary["never_succeeded"]
    assert [e["id"] for e in never] == ["file:0:2", "file:0:4"]
    assert all(e["last"] == "FAILURE: the test asked for a FAILURE" for e in never), never
    messages, attempts = summary["messages"], summary["attempts"]
    # The batch never finished: nothing committed, all of it left for a redelivery.
    assert messages["acked"] == 0
    assert summary["abandoned"] == 5
    # Messages and attempts are counted apart: 3 messages written once, 2 failing many times.
    assert messages["written"] == 3
    assert attempts["failed"] >= 2 * 3  # the first delivery and two retries, at least
    assert "--on-failure" in summary["reason"]
    assert "udsink run: 2 messages still failed after 2 retries" in done.stderr
    # The log line ends its message with the sink's error, then its fields, set apart.
    failed = next(line for line in done.stderr.splitlines() if "messages FAILED" in line)
    message, fields = failed.split(" | ")
    assert message.endswith(": the test asked for a FAILURE"), failed
    assert fields == "batch_size=2 ids=['file:0:2', 'file:0:4']", failed


def test_replay_summary_first_line_names_the_ids_and_fits_80_columns(tmp_path: Path) -> None:
    done = replay(tmp_path, [None, "failure", None, None, None, None, "failure"])
    assert done.code == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "local-test: gave up: 2 messages never succeeded within the retry budget: "
        "file:0:2, file:0:7; 7 in flight left uncommitted"
    ), done.stdout
    # The table below it is drawn for a pipe's 80 columns, not wider.
    table = lines[1 : lines.index(next(ln for ln in lines if ln.startswith("never succeeded")))]
    assert table and max(len(line) for line in table) <= 80, "\n".join(table)
    assert "never succeeded: file:0:7: FAILURE: the test asked for a FAILURE" in lines


def test_on_failure_drop_completes_and_says_it_dropped(tmp_path: Path) -> None:
    done = replay(tmp_path, [None, "failure", None, "failure", None], "--on-failure", "drop")
    assert done.code == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first == (
        "local-test: completed: 5 messages read, 5 acked; 2 messages DROPPED (the log names each)"
    )


def test_json_speaks_the_metrics_vocabulary(tmp_path: Path) -> None:
    done = replay(
        tmp_path, [None, "failure", None, "failure", None], "--on-failure", "drop", "--json"
    )
    summary = done.summary()
    assert summary["outcome"] in OUTCOMES
    assert (summary["outcome"], summary["exit_code"]) == ("completed", 0)
    assert list(summary["messages"]) == list(MESSAGE_COUNTS)
    assert list(summary["attempts"]) == list(ATTEMPT_COUNTS)
    m, a = summary["messages"], summary["attempts"]
    assert (m["read"], m["written"], m["dropped"], m["acked"]) == (5, 3, 2, 5), m
    # Each dropped message: the first delivery and two retries, all FAILURE.
    assert (a["failed"], a["retried"], a["nacked"], a["contract_violations"]) == (6, 4, 0, 0), a
    # Scripts read the same first line a person reads.
    assert summary["headline"].endswith("; 2 messages DROPPED (the log names each)")


def test_on_failure_fallback_without_a_fallback_sink_is_invalid_input(tmp_path: Path) -> None:
    done = replay(tmp_path, [None], "--on-failure", "fallback")
    assert done.code == 2, done.stderr
    assert done.stderr.startswith(f"udsink run: --on-failure fallback: spec.sink.{FALLBACK_NEEDED}")


def hung_batch(tmp_path: Path) -> tuple[Running, int]:
    """A run whose sink holds a batch of 3 forever (its handler hangs on the second): the run,
    once the sink has the batch, and the sink's pid."""
    udsink_file = write_udsink(tmp_path / "udsink.yaml", REPLAY_SPEC.format(batch=10))
    run = Running(
        "-f",
        udsink_file,
        "--sink-cmd",
        sink_cmd("recording_sink.py"),
        "--input",
        cases_file(tmp_path / "cases.jsonl", [None, "hang", None]),
        "--json",
        env=run_env(tmp_path),
        cwd=tmp_path,
    )
    run.wait_for("the sink got the batch", lambda: len(records(tmp_path / PRIMARY_RECORDS)) == 3)
    sink_pid = read_pid(tmp_path / PRIMARY_PID)
    return run, sink_pid


def test_second_ctrl_c_quits_at_once_committing_nothing_unanswered(tmp_path: Path) -> None:
    run, sink_pid = hung_batch(tmp_path)
    run.proc.send_signal(signal.SIGINT)
    run.wait_for_stderr("Ctrl-C again to quit at once")
    run.proc.send_signal(signal.SIGINT)
    # Well inside the 10 s the first Ctrl-C would wait for the hung batch.
    done = run.finish(timeout_s=8.0)
    assert done.code == 130, done.stderr
    assert "quitting at once" in done.stderr
    assert "grace period" not in done.stderr  # it did not wait the drain out
    summary = done.summary()
    assert summary["outcome"] == "interrupted"
    assert summary["messages"]["acked"] == 0
    assert summary["abandoned"] == 3
    assert not alive(sink_pid)


def test_ctrl_c_with_a_hung_handler_ends_within_the_bound_it_states(tmp_path: Path) -> None:
    run, sink_pid = hung_batch(tmp_path)
    signalled = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    # What it waits for, said when it starts waiting.
    run.wait_for_stderr(
        f"stopping within {STOP_BOUND_S:g}s: the sink has up to {DRAIN_S:g}s to answer the "
        "in-flight batch (3 messages; left uncommitted if it does not)"
    )
    try:
        run.proc.wait(timeout=RUN_TIMEOUT_S)
    finally:
        took = time.monotonic() - signalled
        done = run.finish(timeout_s=RUN_TIMEOUT_S)
    # The handler never returns and the sink ignores SIGTERM while it hangs: the run waits
    # the batch's share of the bound, then kills the sink when the bound is up (before:
    # 10 s for the batch, then 5.4 s more for the sink). The slack covers a loaded machine.
    assert DRAIN_S <= took <= STOP_BOUND_S + 2.5, f"{took:.1f}s:\n{done.stderr}"
    assert done.code == 130, done.stderr
    assert "did not exit within" in done.stderr and "of SIGTERM: killed" in done.stderr
    summary = done.summary()
    assert summary["outcome"] == "interrupted"
    assert (summary["messages"]["acked"], summary["abandoned"]) == (0, 3)
    assert not alive(sink_pid)


# --- It cleans up ---


def test_sink_never_outlives_a_killed_runner(tmp_path: Path) -> None:
    run = Running(
        "-f",
        QUICKSTART,
        "--sink-cmd",
        sink_cmd("recording_sink.py"),
        "--count",
        "0",
        "--rate",
        "200",
        env=run_env(tmp_path),
        cwd=tmp_path,
    )
    run.wait_for("the sink got messages", lambda: len(records(tmp_path / PRIMARY_RECORDS)) > 0)
    sink_pid = read_pid(tmp_path / PRIMARY_PID)
    assert alive(sink_pid)
    run.proc.kill()  # SIGKILL: the runner runs no code of its own any more
    run.proc.wait()
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while alive(sink_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    outlived = alive(sink_pid)
    if outlived:  # do not leave it running after the failure
        os.kill(sink_pid, signal.SIGKILL)
    assert not outlived, "the sink outlived its runner"


# --- It shows the sink ---


def test_sink_output_is_shown_prefixed_by_role_unless_hidden(tmp_path: Path) -> None:
    shown = replay(tmp_path, [None, None])
    assert shown.code == 0, shown.stderr
    err = shown.stderr.splitlines()
    assert "primary | recording_sink stdout: batch of 2 from file:0:1" in err, shown.stderr
    assert "primary | recording_sink stderr: batch of 2 from file:0:1" in err, shown.stderr

    hidden = replay(tmp_path, [None, None], "--hide-sink-output")
    assert hidden.code == 0, hidden.stderr
    assert "recording_sink" not in hidden.stderr


def test_built_in_log_sink_lines_are_the_run_output(tmp_path: Path) -> None:
    udsink_file = write_udsink(
        tmp_path / "udsink.yaml",
        "  source:\n    generator: {rate: 0, count: 1}\n  sink:\n    log: {}\n",
    )
    done = udsink_run(
        "-f",
        udsink_file,
        "--input",
        cases_file(tmp_path / "cases.jsonl", [None, None]),
        env=run_env(tmp_path),
        cwd=tmp_path,
    )
    assert done.code == 0, done.stderr
    lines = done.stderr.splitlines()
    assert [line.split(" keys=")[0] for line in lines] == [
        "primary | id=file:0:1",
        "primary | id=file:0:2",
    ], done.stderr


def test_literal_env_of_the_spec_reaches_the_local_sink(tmp_path: Path) -> None:
    done = replay(tmp_path, [None], "--json")
    assert done.code == 0, done.stderr
    env = json.loads((tmp_path / f"{constants.CONTAINER_UDSINK}.env.json").read_text())
    assert env == {"TEST_GREETING": "hello from the spec"}
    # The reference cannot be resolved locally: one note says so, naming it.
    assert "note: the primary sink's env TEST_FROM_SECRET comes from references" in done.stderr


_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _read_pty(fd: int, into: bytearray, until: bytes | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (until is None or until not in into):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side closed
                return
            if not chunk:
                return
            into += chunk


def test_terminal_at_80_columns_shows_stall_and_lines_without_collisions(tmp_path: Path) -> None:
    # Batches of one: line 1 fails and is dropped (warnings), line 2 is written, line 3 hangs.
    udsink_file = write_udsink(tmp_path / "udsink.yaml", REPLAY_SPEC.format(batch=1))
    main, child = pty.openpty()
    ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = run_env(tmp_path, COLUMNS="80", LINES="24", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        udsink_argv(
            "-f",
            udsink_file,
            "--sink-cmd",
            sink_cmd("recording_sink.py"),
            "--input",
            cases_file(tmp_path / "cases.jsonl", ["failure", None, "hang"]),
            "--on-failure",
            "drop",
        ),
        env=env,
        cwd=tmp_path,
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    out = bytearray()
    try:
        _read_pty(main, out, b"primary sink: no answer for", WAIT_TIMEOUT_S)
        assert b"primary sink: no answer for" in out, out.decode(errors="replace")
        proc.send_signal(signal.SIGINT)
        _read_pty(main, out, b"Ctrl-C again", WAIT_TIMEOUT_S)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=RUN_TIMEOUT_S)
        _read_pty(main, out, None, 2.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    text = _CSI.sub("", out.decode("utf-8", "replace"))
    chunks = [c for c in re.split(r"[\r\n]", text) if c.strip()]
    progress = [c for c in chunks if c.startswith("read ")]
    assert progress, text
    assert max(len(c) for c in progress) <= 80, progress
    assert any("to a write of 1 messages" in c for c in chunks), text
    # Every sink line and run line starts a line of its own: none is glued to the progress.
    for marker in ("primary | ", "udsink run: ", "messages FAILED"):
        hits = [c for c in chunks if marker in c]
        assert hits, f"{marker!r} never shown:\n{text}"
        for c in hits:
            assert not c.startswith("read "), f"{marker!r} glued to the progress line: {c!r}"
    assert any(c.startswith("primary | recording_sink stdout: batch of 1") for c in chunks), text
    assert proc.returncode == 130
