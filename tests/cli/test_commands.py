"""The `udsink` command behaves like a command-line tool: exit codes, standard input, a closed
pipe, `--version`, help, and errors that name the file, the field or the missing extra.

Each test runs the installed entry point's module (`python -m udsink_cli.main`) as a
subprocess and judges its exit code and output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from udsink_cli.main import COMMANDS

from tests.cli.runner import GENERATOR_SPEC, QUICKSTART, RUN_TIMEOUT_S, run_env, write_udsink

ROOT = Path(__file__).resolve().parents[2]


def udsink(
    *args: str | Path, stdin: str | None = None, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "udsink_cli.main", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=RUN_TIMEOUT_S,
    )


# --- invalid input: exit 2, one message naming the file and what is wrong ---


@pytest.mark.parametrize("command", ["run", "render"])
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "bad.yaml: no such file"),
        ("kind: UDSink\nspec: [unclosed\n", 'bad.yaml", line 2'),
        ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n", "Deployment"),
        (
            "apiVersion: udsink.dev/v1alpha1\nkind: UDSink\nmetadata: {name: x}\nspec:\n"
            + GENERATOR_SPEC
            + "  colour: blue\n",
            "spec.colour: unknown field",
        ),
        (
            "apiVersion: udsink.dev/v1alpha1\nkind: UDSink\nmetadata: {name: x}\nspec:\n"
            + GENERATOR_SPEC.replace("timeout: 100ms", "timeout: 10"),
            "spec.batch.timeout: must be a duration with a unit such as 10s",
        ),
    ],
    ids=["missing-file", "invalid-yaml", "other-kind", "unknown-field", "bare-number-duration"],
)
def test_invalid_input_exits_2_naming_what_is_wrong(
    tmp_path: Path, command: str, content: str | None, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    sink_cmd = ["--sink-cmd", "true"] if command == "run" else []
    done = udsink(command, "-f", path, *sink_cmd)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr, done.stderr
    assert done.stderr.startswith(f"udsink {command}: "), done.stderr
    assert "Traceback" not in done.stderr
    assert "<unicode string>" not in done.stderr


def test_run_reads_the_udsink_from_standard_input(tmp_path: Path) -> None:
    # The annotation's relative command runs from the current directory when the file is '-'.
    done = udsink(
        "run",
        "--filename",
        "-",
        "--count",
        "3",
        "--rate",
        "0",
        "--json",
        stdin=QUICKSTART.read_text(encoding="utf-8"),
        env=run_env(tmp_path),
        cwd=QUICKSTART.parent,
    )
    assert done.returncode == 0, done.stderr
    assert '"outcome": "completed"' in done.stdout


def test_render_reads_standard_input_with_the_same_option() -> None:
    done = udsink("render", "--filename", "-", stdin=QUICKSTART.read_text(encoding="utf-8"))
    assert done.returncode == 0, done.stderr
    assert "kind: Deployment" in done.stdout


# --- the command itself ---


def test_version() -> None:
    done = udsink("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("udsink 0.")


def test_udsink_alone_lists_every_command() -> None:
    done = udsink()
    assert done.returncode == 0
    for name in COMMANDS:
        assert f"  {name}" in done.stdout, done.stdout


@pytest.mark.parametrize("args", [["-h"], ["crd"], ["run", "--help"]], ids=" ".join)
def test_closed_pipe_ends_quietly(args: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte, as with `| head -1` late
    try:
        done = subprocess.run(
            [sys.executable, "-m", "udsink_cli.main", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
    finally:
        os.close(write_end)
    assert done.stderr == "", done.stderr


def test_operator_without_its_extra_names_the_extra() -> None:
    # A None entry in sys.modules makes `import kopf` fail as an uninstalled package does.
    code = (
        "import sys; sys.modules['kopf'] = None\n"
        "from udsink_cli.main import main\n"
        "raise SystemExit(main(['operator', '-A']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert done.returncode == 2, done.stderr
    assert "needs the 'operator' extra (module kopf is not installed)" in done.stderr
    assert "pip install -e '.[operator]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_operator_without_a_kubeconfig_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    env = {**os.environ, "KUBECONFIG": str(missing)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = udsink("operator", "-A", "--standalone", env=env)
    assert done.returncode == 2, done.stderr
    assert f"no kubeconfig at {missing} (from KUBECONFIG)" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_help_documents_input_commands_output_and_exit_codes() -> None:
    done = udsink("run", "--help")
    assert done.returncode == 0
    text = done.stdout
    for needle in (
        "local.udsink.dev/sink-command",
        '"valueBase64"',
        '"eventTime"',
        "file:0:<line number>",
        "--hide-sink-output",
        "--on-failure",
        "2 invalid input",
        "130 Ctrl-C",
        "A second Ctrl-C quits at once",
        # What a stop waits for, and its bound.
        "ends the run within 10s: the sink has up to 8s to answer the",
        "every sink gets SIGTERM",
    ):
        assert needle in text, f"{needle!r} not in udsink run --help"


def test_missing_command_annotation_and_bad_input_line_exit_2(tmp_path: Path) -> None:
    udsink_file = write_udsink(tmp_path / "udsink.yaml", GENERATOR_SPEC)
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"value": "ok"}\n{"valeu": "typo"}\n', encoding="utf-8")
    done = udsink("run", "-f", udsink_file, "--sink-cmd", "true", "--input", cases)
    assert done.returncode == 2, done.stderr
    assert f"udsink run: --input {cases}:2: unknown field 'valeu'" in done.stderr
