"""Session fixtures shared by every tier.

`kafka_broker` is one real KRaft broker for the whole test session (the Kafka, fault and
interop tiers): started on first use, killed at session end (also on failure or interrupt; the
JVM also dies with the test process). Tests create their own uniquely named topics
(`unique_topic()` + `create_topic()`); a test that stops the broker uses `broker_restored`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sink_runtime.server import SinkServer
from tests.support.go_tools import ensured
from tests.support.kafka_broker import KafkaBroker, running_broker
from tests.support.pynumaflow_env import ensure_pynumaflow_python
from tests.support.recording_sink import Answer, RecordingSink, SdkFactory, SdkSink, ok

E2E_TIER = Path(__file__).parent / "e2e"
FAULT_TIER = Path(__file__).parent / "faults"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e carries the `e2e` marker and every test under tests/faults
    the `faults` marker, before `-m` selects on them: scripts/check.sh runs those two tiers in
    a process of its own beside `-m "not e2e and not faults"`, so a new file without the
    marker would otherwise run in both."""
    for item in items:
        if item.path.is_relative_to(E2E_TIER):
            item.add_marker(pytest.mark.e2e)
        elif item.path.is_relative_to(FAULT_TIER):
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def pynumaflow_python() -> Path:
    """The python of a venv with pynumaflow 0.14.0 (built on first use; fails if it cannot)."""
    return ensure_pynumaflow_python()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """Secured listeners beside PLAINTEXT (tests/kafka/test_secured_kafka.py): on the one
    broker rather than a second JVM, whose start costs the whole tier far more."""
    with running_broker(secured=True) as broker:
        yield broker


@pytest.fixture
def broker_restored(kafka_broker: KafkaBroker) -> Iterator[KafkaBroker]:
    """The session broker, guaranteed running again after the test (for stop/start tests)."""
    yield kafka_broker
    if not kafka_broker.running:
        kafka_broker.start()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short private directory for sink sockets (Unix socket paths are limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="udsk-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def sdk_sink(sock_dir: Path) -> AsyncIterator[SdkFactory]:
    """`await sdk_sink(answer_or_recorder, name="fb")`: our SDK server, in the test process, on
    a real socket in `sock_dir`, around a RecordingSink (given, or made from an answer)."""
    started: list[SinkServer] = []

    async def make(sink: Answer | RecordingSink = ok, *, name: str | None = None) -> SdkSink:
        name = name or f"sdk{len(started)}"
        recorder = sink if isinstance(sink, RecordingSink) else RecordingSink(sink)
        server = SinkServer(
            recorder,
            socket_path=str(sock_dir / f"{name}.sock"),
            server_info_path=str(sock_dir / f"{name}-server-info"),
            grace_s=1.0,
        )
        await server.start()
        started.append(server)
        return SdkSink(server, recorder)

    yield make
    for s in started:
        await s.stop(0)


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """The helm v3 binary (the chart and e2e tiers): `scripts/ensure_helm.sh` builds it from Go
    modules into the cache on first use and prints its path; a test fails with the build output
    when it cannot, never runs without the real helm."""
    return ensured(Path(__file__).parents[1] / "scripts" / "ensure_helm.sh")
