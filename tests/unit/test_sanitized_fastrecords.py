"""The C conversion of Kafka records under AddressSanitizer and UndefinedBehaviorSanitizer.

`sources/_fastrecords.c` reads records any producer wrote. Here it is compiled once more, with
`-fsanitize=address,undefined -fno-sanitize-recover=all`, into a temporary directory, and
tests/unit/test_fast_records.py (the property test holding it to the Python path over the whole
int64 range of timestamps and offsets, and the cases at its edges) runs in a subprocess that
imports that build instead of the package's. Any memory error (a use after free, an overflow)
or undefined behaviour (a signed overflow) aborts the subprocess with the sanitizer's report,
and the test fails with it.

The interpreter itself is not instrumented: the ASan runtime is preloaded (`LD_PRELOAD`), and
`PYTHONMALLOC=malloc` routes Python objects through it, so a freed message is caught when the
module touches it. Leak detection is off (the interpreter keeps objects until exit on purpose).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "sink_runtime" / "dataplane" / "sources" / "_fastrecords.c"
TESTS = "tests/unit/test_fast_records.py"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
# The property test's 400 examples take about 10 s here uninstrumented; instrumented, a few
# times that. A run past this bound is a failure, not a skip.
RUN_TIMEOUT_S = 240.0

# Runs in the subprocess: the sanitized build first on the package's path, then pytest. With
# `--capture=sys` the sanitizers' reports reach the subprocess's stderr (pytest's default
# capture of file descriptor 2 would keep them when the process aborts).
BOOTSTRAP = """
import sys
import pytest
import sink_runtime.dataplane.sources as sources
build_dir, tests = sys.argv[1], sys.argv[2]
sources.__path__.insert(0, build_dir)
from sink_runtime.dataplane.sources import kafka_record
loaded = getattr(kafka_record._fastrecords, "__file__", None) or ""
if not loaded.startswith(build_dir):
    sys.exit(f"the sanitized build was not imported (got {loaded!r})")
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--capture=sys", tests]))
"""


def compiler() -> list[str]:
    cc = sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def runtime_library(name: str) -> str:
    """The path of the compiler's sanitizer runtime `name` (e.g. libasan.so)."""
    found = subprocess.run(
        [*compiler(), f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(found) or not os.path.exists(found):
        pytest.fail(
            f"the C compiler has no {name} (install the compiler's sanitizer runtimes, e.g. "
            f"Debian's libasan8 and libubsan1): the sanitized build cannot run"
        )
    return os.path.realpath(found)


def build(out_dir: Path) -> Path:
    target = out_dir / f"_fastrecords{sysconfig.get_config_var('EXT_SUFFIX')}"
    cmd = [
        *compiler(),
        "-shared",
        "-fPIC",
        "-O1",
        "-g",
        "-fno-omit-frame-pointer",
        *SANITIZE,
        f"-I{sysconfig.get_paths()['include']}",
        str(SOURCE),
        "-o",
        str(target),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{shlex.join(cmd)} failed:\n{done.stdout}{done.stderr}"
    return target


def run_sanitized(build_dir: Path, tests: str = TESTS) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LD_PRELOAD": runtime_library("libasan.so"),
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:print_summary=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        "PYTHONMALLOC": "malloc",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-c", BOOTSTRAP, str(build_dir), tests],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def test_the_conversion_runs_clean_under_asan_and_ubsan(tmp_path: Path) -> None:
    build(tmp_path)
    started = time.monotonic()
    done = run_sanitized(tmp_path)
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, (
        f"tests/unit/test_fast_records.py against the ASan+UBSan build of _fastrecords.c "
        f"failed (exit {done.returncode} after {took:.0f}s):\n{output[-12000:]}"
    )
    assert " passed" in output and "failed" not in output, output[-4000:]
