"""`udsink run` as a newcomer runs it: a real subprocess, real sinks as its subprocesses, real gRPC.

Each test starts `python -m udsink_cli.main run ...` and judges it from the outside only: its
exit code, its `--json` summary, its stderr, and what the test sinks (tests/cli/sinks/, written
with our SDK) recorded under RECORD_DIR. Sockets go to a private directory under
`--socket-dir`, so a test can check that nothing is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from udsink_cli import oci_runtime

from sink_runtime.config import constants
from tests.cli.runner import (
    GENERATOR_SPEC,
    QUICKSTART,
    RUN_TIMEOUT_S,
    SINKS,
    Finished,
    Running,
    assert_one_message,
    process_exists,
    read_pid,
    records,
    run_env,
    sink_cmd,
    udsink_argv,
    udsink_run,
    wait_for,
    write_udsink,
)
from tests.support.ports import free_port

# What --json prints on every exit path, a completed run or one that never started.
SUMMARY_KEYS = {
    *("headline", "name", "outcome", "reason", "exit_code", "on_failure", "messages"),
    *("attempts", "abandoned", "never_succeeded", "elapsed_s", "rate_per_s", "consumer_group"),
}


# --- 1. The quickstart end to end ---


def test_quickstart_runs_end_to_end_from_any_directory(tmp_path: Path) -> None:
    socks = tmp_path / "socks"
    socks.mkdir()
    # From another directory: the annotation's `python ../sinks/log_sink.py` runs from the
    # UDSink file's directory, and a relative --socket-dir still means ours.
    done = udsink_run(
        "-f",
        QUICKSTART,
        "--count",
        "50",
        "--rate",
        "0",
        "--json",
        "--socket-dir",
        "socks",
        env=run_env(tmp_path),
        cwd=tmp_path,
    )
    assert done.code == 0, done.stderr
    summary = done.summary()
    assert set(summary) == SUMMARY_KEYS
    assert summary["name"] == "quickstart"
    assert summary["outcome"] == "completed"
    assert summary["exit_code"] == 0
    counts = summary["messages"]
    assert counts["read"] == counts["written"] == counts["acked"] == 50, counts
    assert counts["fallback"] == counts["dropped"] == 0, counts
    assert summary["attempts"]["failed"] == 0
    assert summary["abandoned"] == 0
    assert list(socks.iterdir()) == []


# --- 2. --input FILE: JSON lines delivered with keys and headers intact ---


def test_input_file_delivers_every_line_with_keys_and_headers(tmp_path: Path) -> None:
    cases: list[dict[str, Any]] = [
        {"value": "plain"},
        {"value": "two keys", "keys": ["tenant-7", "order:42"]},
        {"value": "with headers", "keys": ["k"], "headers": {"trace-id": "abc", "x-é": "ü"}},
        {"valueBase64": "AAEC", "keys": []},
        {"value": "empty key", "keys": [""], "headers": {"a": ""}},
    ]
    lines = [json.dumps(c) for c in cases]
    lines.insert(2, "")  # blank lines are skipped; ids keep the file's line numbers
    input_file = tmp_path / "cases.jsonl"
    input_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # A command given as a flag runs where it was typed (the annotation's, from the file's dir).
    done = udsink_run(
        "-f",
        QUICKSTART,
        "--sink-cmd",
        "python sinks/recording_sink.py",
        "--input",
        input_file,
        "--json",
        env=run_env(tmp_path),
        cwd=SINKS.parent,
    )
    assert done.code == 0, done.stderr
    got = records(tmp_path / f"{constants.CONTAINER_UDSINK}.jsonl")
    line_numbers = [1, 2, 4, 5, 6]
    assert [r["id"] for r in got] == [f"file:0:{n}" for n in line_numbers]
    assert [r["keys"] for r in got] == [c.get("keys", []) for c in cases]
    assert [r["headers"] for r in got] == [c.get("headers", {}) for c in cases]
    assert [r["value"] for r in got] == [
        "plain",
        "two keys",
        "with headers",
        "\x00\x01\x02",
        "empty key",
    ]
    counts = done.summary()["messages"]
    assert counts["read"] == counts["written"] == counts["acked"] == len(cases), counts


# --- 2b. The sink command runs as typed: `python` is the user's, not udsink's ---


def test_python_in_the_sink_command_is_the_one_the_users_shell_finds(tmp_path: Path) -> None:
    # Another venv, active in the user's shell: its `python` sees a package udsink's own
    # interpreter does not have, as a pynumaflow venv has pynumaflow.
    site = tmp_path / "sink-venv" / "site-packages"
    site.mkdir(parents=True)
    (site / "only_in_the_sink_venv.py").write_text("WHERE = 'sink venv'\n", encoding="utf-8")
    venv_bin = tmp_path / "sink-venv" / "bin"
    venv_bin.mkdir()
    python = venv_bin / "python"
    python.write_text(
        f'#!/bin/sh\nPYTHONPATH={site} exec {shlex.quote(sys.executable)} "$@"\n',
        encoding="utf-8",
    )
    python.chmod(0o755)
    sink = tmp_path / "sink.py"
    sink.write_text(
        "import runpy\n"
        "import only_in_the_sink_venv  # ModuleNotFoundError under any other python\n"
        f"runpy.run_path({str(SINKS / 'recording_sink.py')!r}, run_name='__main__')\n",
        encoding="utf-8",
    )
    env = run_env(tmp_path)
    env["PATH"] = os.pathsep.join([str(venv_bin), env["PATH"]])
    done = udsink_run(
        "-f",
        QUICKSTART,
        "--sink-cmd",
        "python sink.py",
        "--count",
        "20",
        "--rate",
        "0",
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert done.code == 0, done.stderr
    assert "ModuleNotFoundError" not in done.stderr
    assert done.summary()["messages"]["acked"] == 20
    assert len(records(tmp_path / f"{constants.CONTAINER_UDSINK}.jsonl")) == 20


# --- 3. A sink that crashes mid-run ---


def test_sink_crashing_mid_run_fails_the_run_and_commits_only_answers(tmp_path: Path) -> None:
    socks = tmp_path / "socks"
    socks.mkdir()
    udsink_file = write_udsink(tmp_path / "udsink.yaml", GENERATOR_SPEC)
    done = udsink_run(
        "-f",
        udsink_file,
        "--sink-cmd",
        sink_cmd("crashing_sink.py"),
        "--json",
        "--socket-dir",
        socks,
        env=run_env(tmp_path, CRASH_AFTER="25"),
        cwd=tmp_path,
    )
    assert done.code == 1, done.stderr
    assert "crashing_sink.py" in done.stderr
    assert "exited with code 3" in done.stderr
    # Its last stderr lines are shown, quoted.
    assert "  | crashing_sink: giving up after 25 datums (on purpose)" in done.stderr
    assert "Traceback" not in done.stderr

    summary = done.summary()
    assert summary["outcome"] == "sink-exited"
    assert "exited with code 3" in summary["reason"]
    assert summary["exit_code"] == 1
    answered = (
        (tmp_path / f"{constants.CONTAINER_UDSINK}.answered").read_text(encoding="utf-8").split()
    )
    counts = summary["messages"]
    # Two batches of 10 were answered and committed; the third died with the sink.
    assert len(answered) == 20
    assert counts["acked"] == counts["written"] == len(answered), counts
    assert counts["acked"] < counts["read"], counts
    assert summary["abandoned"] == counts["read"] - counts["acked"]
    assert not process_exists(read_pid(tmp_path / f"{constants.CONTAINER_UDSINK}.pid"))
    assert list(socks.iterdir()) == []


# --- 4. A sink that never starts ---


def test_sink_exiting_at_start_is_one_message_with_its_stderr(tmp_path: Path) -> None:
    done = udsink_run(
        "-f",
        QUICKSTART,
        "--sink-cmd",
        sink_cmd("broken_sink.py"),
        "--json",
        env=run_env(tmp_path),
        cwd=tmp_path,
    )
    assert done.code == 1, done.stderr
    assert_one_message(
        done.stderr,
        "broken_sink.py",
        "exited with code 1 before it was ready",
        "stderr lines:",
        "  | RuntimeError: cannot connect to database postgres://db.invalid:5432/orders",
    )
    # A script reading --json gets the summary with the same reason, nothing counted.
    summary = done.summary()
    assert (summary["outcome"], summary["exit_code"]) == ("failed", 1)
    assert "broken_sink.py" in summary["reason"]
    assert "cannot connect to database" in summary["reason"]
    assert summary["headline"] == (f"quickstart: failed: {summary['reason'].splitlines()[0]}"), (
        "one line, the reason's first"
    )
    assert set(summary["messages"].values()) == {0}


def test_sink_never_writing_server_info_times_out_and_is_stopped(tmp_path: Path) -> None:
    socks = tmp_path / "socks"
    socks.mkdir()
    done = udsink_run(
        "-f",
        QUICKSTART,
        "--sink-cmd",
        sink_cmd("silent_sink.py"),
        "--startup-timeout",
        "2",
        "--socket-dir",
        socks,
        "--json",
        env=run_env(tmp_path),
        cwd=tmp_path,
    )
    assert done.code == 1, done.stderr
    assert_one_message(
        done.stderr,
        "silent_sink.py",
        "did not write its server-info file",
        constants.SERVER_INFO_FILES[constants.CONTAINER_UDSINK],
        "within 2s",
        "it wrote nothing to stderr",
    )
    assert not process_exists(read_pid(tmp_path / f"{constants.CONTAINER_UDSINK}.pid"))
    assert list(socks.iterdir()) == []
    summary = done.summary()
    assert (summary["outcome"], summary["exit_code"]) == ("failed", 1)
    assert "did not write its server-info file" in summary["reason"]


# --- 5. Ctrl-C and SIGTERM: summary, exit code, nothing left behind ---


@pytest.mark.parametrize(
    ("sig", "code", "outcome"),
    [
        (signal.SIGINT, 130, "interrupted"),
        (signal.SIGTERM, 143, "terminated"),
        (signal.SIGHUP, 129, "hung-up"),  # the terminal closed: a clean stop too
    ],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_signal_mid_run_stops_cleanly(
    tmp_path: Path, sig: signal.Signals, code: int, outcome: str
) -> None:
    socks = tmp_path / "socks"
    socks.mkdir()
    received = tmp_path / f"{constants.CONTAINER_UDSINK}.jsonl"
    pid_file = tmp_path / f"{constants.CONTAINER_UDSINK}.pid"
    proc = subprocess.Popen(
        udsink_argv(
            "-f",
            QUICKSTART,
            "--sink-cmd",
            sink_cmd("recording_sink.py"),
            "--count",
            "0",  # endless: only the signal ends this run
            "--rate",
            "500",
            "--json",
            "--socket-dir",
            socks,
        ),
        env=run_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for("the sink received messages", lambda: len(records(received)) >= 20, proc)
        assert any(socks.iterdir()), "the private socket directory should exist mid-run"
        sink_pid = read_pid(pid_file)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = Finished(proc.returncode, out, err)
    assert done.code == code, done.stderr
    summary = done.summary()
    assert summary["outcome"] == outcome, summary
    assert summary["exit_code"] == code
    counts = summary["messages"]
    assert counts["read"] >= 20, counts
    # A clean stop: the in-flight batch finished and was committed, nothing abandoned.
    assert counts["acked"] == counts["written"] == counts["read"], counts
    assert summary["abandoned"] == 0
    assert len(records(received)) == counts["read"]
    assert not process_exists(sink_pid)
    assert list(socks.iterdir()) == []


def test_signal_while_the_sink_starts_stops_at_once(tmp_path: Path) -> None:
    socks = tmp_path / "socks"
    socks.mkdir()
    proc = subprocess.Popen(
        # The default startup timeout (30 s) applies: the signal must not wait for it.
        udsink_argv(
            "-f",
            QUICKSTART,
            "--sink-cmd",
            sink_cmd("silent_sink.py"),
            "--json",
            "--socket-dir",
            socks,
        ),
        env=run_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_file = tmp_path / f"{constants.CONTAINER_UDSINK}.pid"
    try:
        wait_for("the sink started", pid_file.exists, proc)
        sink_pid = read_pid(pid_file)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = Finished(proc.returncode, out, err)
    assert done.code == 130, done.stderr
    summary = done.summary()
    assert summary["outcome"] == "interrupted"
    assert summary["messages"]["read"] == 0
    assert not process_exists(sink_pid)
    assert list(socks.iterdir()) == []


# --- 6. Mistakes a newcomer makes ---


def test_invalid_udsink_file_names_the_field_and_value(tmp_path: Path) -> None:
    bad = write_udsink(tmp_path / "bad.yaml", GENERATOR_SPEC.replace("size: 10", "size: 0"))
    done = udsink_run(
        "-f", bad, "--sink-cmd", sink_cmd("recording_sink.py"), env=run_env(tmp_path), cwd=tmp_path
    )
    assert done.code == 2, done.stderr
    assert done.stderr.startswith(f"udsink run: {bad} is not a valid UDSink")
    assert "spec.batch.size" in done.stderr
    assert "(got 0)" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_local_command_and_no_engine_names_what_to_do(tmp_path: Path) -> None:
    udsink_file = write_udsink(tmp_path / "udsink.yaml", GENERATOR_SPEC)
    env = run_env(tmp_path, UDSINK_CONTAINER_ENGINE="no-such-engine-here")
    done = udsink_run("-f", udsink_file, env=env, cwd=tmp_path)
    assert done.code == 1, done.stderr
    assert_one_message(
        done.stderr,
        "no container engine to run the sink image",
        "no-such-engine-here: not installed",
        "--sink-cmd",
        "local.udsink.dev/sink-command",
    )


def test_socket_dir_that_is_not_a_directory_is_one_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("", encoding="utf-8")
    done = udsink_run(
        "-f", QUICKSTART, "--socket-dir", not_a_dir, "--json", env=run_env(tmp_path), cwd=tmp_path
    )
    assert done.code == 2, done.stderr
    message = f"--socket-dir {not_a_dir} is not a directory"
    assert done.stderr.strip() == f"udsink run: {message}"
    # --json readers get the reason on stdout, not an empty document.
    summary = done.summary()
    assert {k: summary[k] for k in ("headline", "name", "outcome", "reason", "exit_code")} == {
        "headline": f"quickstart: invalid: {message}",
        "name": "quickstart",
        "outcome": "invalid",
        "reason": message,
        "exit_code": 2,
    }


def test_podman_with_only_crun_on_a_hybrid_host_says_to_install_runc(tmp_path: Path) -> None:
    # A machine whose podman brought crun and no runc: PATH holds podman and crun only (this
    # crun is a stand-in that the choice finds; no container is started here).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    podman = shutil.which("podman")
    assert podman is not None, "podman is not installed (scripts/ensure_containers.sh)"
    (bin_dir / "podman").symlink_to(podman)
    (bin_dir / "crun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "crun").chmod(0o755)
    udsink_file = write_udsink(tmp_path / "udsink.yaml", GENERATOR_SPEC)
    env = run_env(tmp_path, PATH=str(bin_dir), UDSINK_CONTAINER_ENGINE="podman")
    done = udsink_run("-f", udsink_file, "--sink-image", "example.com/x:1", env=env, cwd=tmp_path)
    host = oci_runtime.read_host()
    if host.layout == "hybrid" and host.unified_controllers:  # this project's CI machines
        assert done.code == 1, done.stderr
        assert_one_message(
            done.stderr,
            "podman: no OCI runtime for containers: crun is installed but refuses this cgroup v1 "
            "hybrid host",
            "apt-get install runc",
            oci_runtime.ENV,
        )
    else:
        assert "runs with podman (OCI runtime " in done.stderr, done.stderr
        assert "/crun)" in done.stderr


# --- 7. --json: a summary with the reason on every exit path ---


def kafka_udsink(path: Path, port: int) -> Path:
    """A UDSink reading a Kafka broker at a local port nothing listens on."""
    spec = GENERATOR_SPEC.replace(
        "generator: {rate: 0, count: 1000, valueSize: 16, keyCount: 2}",
        f"kafka: {{brokers: ['127.0.0.1:{port}'], topics: [orders]}}",
    )
    assert "kafka:" in spec
    return write_udsink(path, spec)


def exit_path_args(case: str, tmp_path: Path) -> list[str | Path]:
    """The arguments of one way `udsink run` ends before its data plane runs."""
    recorder = ["--sink-cmd", sink_cmd("recording_sink.py")]
    if case == "option":
        return ["-f", QUICKSTART, "--count", "-1"]
    if case == "no-file-option":
        return ["--count", "3"]
    if case == "missing-file":
        return ["-f", tmp_path / "absent.yaml", *recorder]
    if case == "input-line":
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"value": "ok"}\nnot json\n', encoding="utf-8")
        return ["-f", QUICKSTART, *recorder, "--input", bad]
    if case == "command-not-found":
        return ["-f", QUICKSTART, "--sink-cmd", "no-such-sink-program --port 1"]
    assert case == "brokers-silent"
    return ["-f", kafka_udsink(tmp_path / "kafka.yaml", free_port()), *recorder]


EXIT_PATHS = {
    "option": (2, "invalid", None, "--count must be >= 0 (got -1)"),
    "no-file-option": (2, "invalid", None, "the following arguments are required: -f"),
    "missing-file": (2, "invalid", None, "absent.yaml"),
    "input-line": (2, "invalid", "quickstart", "--input"),
    "command-not-found": (1, "failed", "quickstart", "no-such-sink-program"),
    "brokers-silent": (1, "failed", "local-test", "cannot reach the brokers"),
}


@pytest.mark.parametrize("case", EXIT_PATHS)
def test_json_summary_names_the_reason_on_every_exit_path(tmp_path: Path, case: str) -> None:
    code, outcome, name, reason = EXIT_PATHS[case]
    done = udsink_run(
        *exit_path_args(case, tmp_path), "--json", env=run_env(tmp_path), cwd=tmp_path
    )
    assert done.code == code, done.stderr
    summary = done.summary()
    assert set(summary) == SUMMARY_KEYS, summary
    assert (summary["outcome"], summary["exit_code"], summary["name"]) == (outcome, code, name)
    assert reason in summary["reason"], summary
    assert (
        summary["headline"]
        == f"{name or 'udsink run'}: {outcome}: " + (summary["reason"].splitlines()[0])
    )
    assert set(summary["messages"].values()) == {0}
    # The person at the terminal reads the same reason on stderr.
    assert f"udsink run: {summary['reason'].splitlines()[0]}" in done.stderr
    assert "Traceback" not in done.stderr


def rdkafka_running(pid: int) -> bool:
    """librdkafka's main thread runs in `pid` (it names its threads rdk:*)."""
    tasks = Path(f"/proc/{pid}/task")
    names = []
    for task in tasks.iterdir() if tasks.exists() else []:
        with contextlib.suppress(OSError):
            names.append((task / "comm").read_text(encoding="utf-8").strip())
    return "rdk:main" in names


def test_signal_while_probing_the_brokers_still_prints_the_summary(tmp_path: Path) -> None:
    udsink_file = kafka_udsink(tmp_path / "kafka.yaml", free_port())
    run = Running(
        "-f",
        udsink_file,
        "--sink-cmd",
        sink_cmd("recording_sink.py"),
        "--json",
        env=run_env(tmp_path),
        cwd=tmp_path,
    )
    # Before any sink starts, while the brokers are asked for up to 5 s.
    run.wait_for("the Kafka probe", lambda: rdkafka_running(run.proc.pid))
    run.proc.send_signal(signal.SIGTERM)
    done = run.finish(RUN_TIMEOUT_S)
    assert done.code == 143, done.stderr
    summary = done.summary()
    assert (summary["outcome"], summary["exit_code"]) == ("terminated", 143)
    assert summary["reason"] == "terminated (SIGTERM) before the sinks started"
    assert not (tmp_path / f"{constants.CONTAINER_UDSINK}.pid").exists()
    assert "Traceback" not in done.stderr


# --- 8. The fallback sink as a second local subprocess ---

# The source is replaced by --input.
FALLBACK_SPEC = """\
  source:
    generator: {rate: 0, count: 10}
  batch: {size: 4, timeout: 100ms}
  sink:
    udsink:
      container: {image: example.com/primary:1}
    fallback:
      udsink:
        container: {image: example.com/fallback:1}
"""
ROLES = (constants.CONTAINER_UDSINK, constants.CONTAINER_FALLBACK)


def test_fallback_sink_gets_exactly_the_fallback_datums_with_error_headers(
    tmp_path: Path,
) -> None:
    to_fallback = {3, 4, 8}
    cases = [
        {
            "value": f"v{n}",
            "keys": [f"k{n}"],
            "headers": {"n": str(n)} | ({"x-test-answer": "fallback"} if n in to_fallback else {}),
        }
        for n in range(1, 10)
    ]
    input_file = tmp_path / "cases.jsonl"
    input_file.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    udsink_file = write_udsink(tmp_path / "udsink.yaml", FALLBACK_SPEC)
    recorder = sink_cmd("recording_sink.py")  # files what it gets by its container type
    done = udsink_run(
        "-f",
        udsink_file,
        "--sink-cmd",
        recorder,
        "--fallback-cmd",
        recorder,
        "--input",
        input_file,
        "--json",
        env=run_env(tmp_path),
        cwd=tmp_path,
    )
    assert done.code == 0, done.stderr

    primary = records(tmp_path / f"{constants.CONTAINER_UDSINK}.jsonl")
    fallback = records(tmp_path / f"{constants.CONTAINER_FALLBACK}.jsonl")
    assert sorted(r["id"] for r in primary) == sorted(f"file:0:{n}" for n in range(1, 10))
    assert sorted(r["id"] for r in fallback) == sorted(f"file:0:{n}" for n in to_fallback)
    for r in fallback:
        n = int(r["id"].rsplit(":", 1)[1])
        assert r["keys"] == [f"k{n}"]
        assert r["value"] == f"v{n}"
        headers = r["headers"]
        assert headers["n"] == str(n)  # its own headers, plus why it is here
        assert headers[constants.FALLBACK_STATUS_HEADER] == "FALLBACK"
        assert headers[constants.FALLBACK_ERROR_HEADER] == "the test asked for the fallback"
        assert headers[constants.FALLBACK_SOURCE_HEADER] == r["id"]
        assert headers[constants.FALLBACK_ATTEMPTS_HEADER] == "1"

    pids = {read_pid(tmp_path / f"{role}.pid") for role in ROLES}
    assert len(pids) == 2, "primary and fallback run as two processes"
    assert not any(process_exists(pid) for pid in pids)

    counts = done.summary()["messages"]
    assert counts["fallback"] == len(to_fallback), counts
    assert counts["read"] == counts["acked"] == len(cases), counts
    assert counts["written"] == len(cases) - len(to_fallback), counts
