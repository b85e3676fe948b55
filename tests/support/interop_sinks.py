"""Builds the interop tier's sinks, one per official Numaflow SDK, and says how to run each.

The sources live in tests/interop/sinks/<sdk>/ with their lock files; the SDKs come from the
package registries (Go module proxy, Maven Central, crates.io, PyPI). Each build goes to
`$UDSINK_CACHE/interop-<sdk>-<hash of its sources>` (default `~/.cache/udsink`), under a file
lock so concurrent sessions share it, and counts only once its completion marker is written; a
half-built folder is built again. Cargo keeps one target directory for every hash
(`interop-cargo-target`), so a changed Rust source rebuilds incrementally.

The tests run the Rust sink as a debug build (a cold build stays short in CI). The bench's
speed rows ask for `rust-release`, the same source built with `--release` into its own cache
entry (`interop-rust-release-<hash>`): only a bench run pays for the optimized build.

A build that fails raises InteropBuildError with the tool's output: the interop tests fail,
never skip. `python -m tests.support.interop_sinks [sdk...]` builds ahead of the tests and
prints the time each build took.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.support.pynumaflow_env import PYNUMAFLOW_VERSION, cache_dir, ensure_pynumaflow_python

SOURCES = Path(__file__).resolve().parents[1] / "interop" / "sinks"
SDKS = ("go", "java", "rust", "python")
# Builds the tests never need: the bench's optimized Rust sink.
BENCH_BUILDS = ("rust-release",)
_COMPLETE = ".udsink-complete"
BUILD_TIMEOUT_S = 1800

# The SDK version each interop sink is built against (one home: the lock files pin the same).
SDK_VERSIONS = {
    "go": "numaflow-go v0.12.0",
    "java": "numaflow-java 0.9.2",
    "rust": "numaflow (crate) 0.6.0",
    "rust-release": "numaflow (crate) 0.6.0, release build",
    "python": f"pynumaflow {PYNUMAFLOW_VERSION}",
}


class InteropBuildError(RuntimeError):
    """An interop sink could not be built; the message carries the build's output."""


def _source_hash(sdk: str) -> str:
    digest = hashlib.sha256()
    root = SOURCES / sdk
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise InteropBuildError(
            f"`{' '.join(cmd)}` in {cwd} failed (exit {proc.returncode}):\n"
            f"{(proc.stdout + proc.stderr)[-6000:]}"
        )


def _need(tool: str, sdk: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise InteropBuildError(f"`{tool}` is not on PATH: it is needed to build the {sdk} sink")
    return path


def _build_go(src: Path, out: Path) -> None:
    go = _need("go", "Go")
    _run(
        [go, "build", "-mod=readonly", "-trimpath", "-o", str(out / "interop-sink"), "."],
        src,
        # Static, so the same binary also runs in a FROM-scratch image.
        {"CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"},
    )


def _build_rust(src: Path, out: Path, release: bool = False) -> None:
    cargo = _need("cargo", "Rust")
    target = cache_dir() / "interop-cargo-target"
    profile = ["--release"] if release else []
    _run([cargo, "build", "--locked", "--quiet", *profile], src, {"CARGO_TARGET_DIR": str(target)})
    built = target / ("release" if release else "debug") / "interop-sink"
    shutil.copy2(built, out / "interop-sink")


def _build_rust_release(src: Path, out: Path) -> None:
    _build_rust(src, out, release=True)


def _build_java(src: Path, out: Path) -> None:
    mvn = _need("mvn", "Java")
    javac = _need("javac", "Java")
    _run(
        [
            mvn,
            "-q",
            "-B",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={out / 'lib'}",
        ],
        src,
    )
    classes = out / "classes"
    classes.mkdir()
    _run(
        [javac, "-d", str(classes), "-cp", str(out / "lib" / "*"), "InteropSink.java"],
        src,
    )


_BUILDERS = {
    "go": _build_go,
    "rust": _build_rust,
    "rust-release": _build_rust_release,
    "java": _build_java,
}


def _source_of(build: str) -> str:
    """The SDK whose sources a build compiles (`rust-release` builds the `rust` sink)."""
    return build.removesuffix("-release")


def build_dir(sdk: str) -> Path:
    return cache_dir() / f"interop-{sdk}-{_source_hash(_source_of(sdk))}"


def ensure_built(sdk: str) -> Path:
    """The folder holding the built sink of `sdk`, built first when missing."""
    out = build_dir(sdk)
    if (out / _COMPLETE).exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / _COMPLETE).exists():
            return out  # another session built it while we waited
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        _BUILDERS[sdk](SOURCES / _source_of(sdk), out)
        (out / _COMPLETE).write_text(SDK_VERSIONS[sdk] + "\n")
    return out


def sink_command(sdk: str, *, full_jit: bool = False) -> list[str]:
    """The argv that starts the interop sink of `sdk` (building it first when needed).

    `sdk` is one of SDKS, or one of BENCH_BUILDS (the same sink, built for speed).
    The Java sink starts with the JIT's first tier only (fast start-up for the tests) unless
    `full_jit` (what a speed row wants: the optimizing tier too, the JVM's default).
    """
    if sdk == "python":
        python = ensure_pynumaflow_python()
        return [str(python), "-u", str(SOURCES / "python" / "interop_sink.py")]
    out = ensure_built(sdk)
    if sdk == "java":
        java = _need("java", "Java")
        classpath = f"{out / 'classes'}:{out / 'lib' / '*'}"
        jit = [] if full_jit else ["-XX:TieredStopAtLevel=1"]
        return [java, *jit, "-cp", classpath, "InteropSink"]
    if sdk in ("go", "rust", "rust-release"):
        return [str(out / "interop-sink")]
    raise ValueError(f"unknown SDK {sdk!r}; known: {', '.join(SDKS + BENCH_BUILDS)}")


def main(argv: list[str]) -> int:
    for sdk in argv or list(SDKS):
        started = time.monotonic()
        cached = sdk != "python" and (build_dir(sdk) / _COMPLETE).exists()
        sink_command(sdk)
        took = time.monotonic() - started
        state = "venv ready" if sdk == "python" else "cached" if cached else "built"
        print(f"interop sink {sdk}: {state} in {took:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def build_go_image(engine: list[str], env: dict[str, str]) -> str:
    """A FROM-scratch image holding the Go interop sink, built into `engine`'s storage.

    Nothing is pulled: the only layer is the static binary. Returns the image's name.
    """
    out = ensure_built("go")
    tag = f"localhost/udsink-interop-go:{out.name.rsplit('-', 1)[-1]}"
    context = out / "image"
    context.mkdir(exist_ok=True)
    shutil.copy2(out / "interop-sink", context / "interop-sink")
    (context / "Containerfile").write_text(
        'FROM scratch\nCOPY interop-sink /interop-sink\nENTRYPOINT ["/interop-sink"]\n'
    )
    _run([*engine, "build", "--quiet", "--tag", tag, str(context)], context, env)
    return tag
