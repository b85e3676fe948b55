"""The interop tier's fixtures: official SDK sinks, built once, run unmodified.

`podman` is a container engine of the test's own (its own storage under a temp dir, the
containers.conf a host without CAP_SYS_RESOURCE needs, as in scripts/ensure_containers.sh), as
the environment that points
`udsink run` at it; it fails, never skips, when podman is missing.

`unmodified_sink(sdk, container_type, socket_dir)` starts the interop sink of one SDK in a
private /var/run/numaflow bound to `socket_dir` and stops it (by pid) at the end of the test.
The Kafka broker and `sock_dir` fixtures come from tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from sink_runtime.config import constants
from tests.support.interop_sinks import build_go_image, sink_command
from tests.support.sdk_dir import SdkDirView
from tests.support.unmodified_sink import UnmodifiedSink

StartSink = Callable[[str, constants.ContainerType, Path], Awaitable[UnmodifiedSink]]

# A test that takes `view` runs twice: /var/run/numaflow absent, and present as on a Numaflow
# developer's laptop (tests/support/sdk_dir.py).
SDK_DIR = pytest.mark.parametrize(
    "present", [False, True], ids=["sdk-dir-absent", "sdk-dir-present"]
)


@pytest.fixture
def view(tmp_path: Path, present: bool) -> Iterator[SdkDirView]:
    made = SdkDirView(tmp_path, present=present)
    yield made
    made.cleanup()


@pytest.fixture
async def unmodified_sink(tmp_path: Path) -> AsyncIterator[StartSink]:
    started: list[UnmodifiedSink] = []

    async def start(
        sdk: str, container_type: constants.ContainerType, socket_dir: Path
    ) -> UnmodifiedSink:
        command = await asyncio.to_thread(sink_command, sdk)
        sink = UnmodifiedSink(
            command, socket_dir, tmp_path / f"{sdk}-{container_type}.log", container_type
        )
        started.append(sink)
        await sink.start()
        return sink

    yield start
    for sink in started:
        await sink.stop()


class Podman:
    """The test's podman: its argv (with storage flags) and the env that selects it."""

    def __init__(self, root: Path) -> None:
        conf = root / "containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\npids_limit = 0\n")
        self.root = root
        self.argv = [
            "podman",
            "--root",
            str(root / "storage"),
            "--runroot",
            str(root / "run"),
            "--tmpdir",
            str(root / "tmp"),
            "--storage-driver",
            "overlay",
        ]
        self.env = {
            "CONTAINERS_CONF": str(conf),
            "UDSINK_CONTAINER_ENGINE": " ".join(self.argv),
        }

    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [*self.argv, *args],
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, f"podman {' '.join(args)}: {proc.stderr}"
        return proc.stdout


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (scripts/ensure_containers.sh installs it)")
    engine = Podman(Path(tempfile.mkdtemp(prefix="udsink-podman-")))
    try:
        yield engine
    finally:
        for args in (["rm", "--all", "--force"], ["rmi", "--all", "--force"]):
            subprocess.run(
                [*engine.argv, *args], env=engine.environ(), capture_output=True, check=False
            )
        shutil.rmtree(engine.root, ignore_errors=True)


@pytest.fixture(scope="session")
def go_sink_image(podman: Podman) -> str:
    """The Go interop sink as a FROM-scratch image in the test's podman storage."""
    return build_go_image(podman.argv, podman.env)
