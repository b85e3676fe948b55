"""docs/sdk.md's "The whole path: `udsink run`", done as a reader does it: its files, its command.

The files are taken from the page as written (each code block under a line naming the file),
so the example sink (an async Sinker using `isolate_errors`), the UDSink and the cases run
exactly as printed, and what the page says the run shows is checked against the real run.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.cli.runner import RUN_TIMEOUT_S, run_env

ROOT = Path(__file__).resolve().parents[2]
SDK_DOC = ROOT / "docs" / "sdk.md"


def section() -> str:
    text = SDK_DOC.read_text(encoding="utf-8")
    return text[
        text.index("### The whole path: `udsink run`") : text.index("## Coming from pynumaflow")
    ]


def test_testing_a_sink_runs_as_written(tmp_path: Path) -> None:
    doc = section()
    files = dict(re.findall(r"^`([\w.]+)` .*?\n```\w+\n(.*?)```", doc, flags=re.M | re.S))
    assert set(files) == {"my_sink.py", "udsink.yaml", "cases.jsonl"}, set(files)
    for name, body in files.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    command = re.findall(r"```bash\n(udsink run .*?)\n```", doc)
    assert len(command) == 1, command
    argv = shlex.split(command[0])
    done = subprocess.run(
        [sys.executable, "-m", "udsink_cli.main", *argv[1:]],
        cwd=tmp_path,
        env=run_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    # "stops with exit code 1 and this first line of the summary"
    assert done.returncode == 1, done.stderr
    first_line = re.findall(r"```text\n(.*?)\n```", doc)[0]
    assert done.stdout.splitlines()[0] == first_line, done.stdout
    # What the page says appears while it runs.
    for shown in ("primary | stored file:0:1", "primary sink: 1 of 3 messages FAILED"):
        assert shown in doc
        assert shown in done.stderr, done.stderr
    # The async isolate_errors handler failed the one bad datum alone; the rest were stored.
    stored = (tmp_path / "orders.jsonl").read_text(encoding="utf-8").splitlines()
    assert [line.split('"id": "')[1].split('"')[0] for line in stored] == ["file:0:1", "file:0:3"]
