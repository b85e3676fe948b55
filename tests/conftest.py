"""Session fixtures shared by every tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kafka_broker import KafkaBroker, running_broker
from tests.support.pynumaflow_env import ensure_pynumaflow_python


@pytest.fixture(scope="session")
def pynumaflow_python() -> Path:
    """The python of a venv with pynumaflow 0.14.0 (built on first use; fails if it cannot)."""
    return ensure_pynumaflow_python()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One real KRaft broker for the session, started on first use and killed at the end
    (also on failure or interrupt; the JVM also dies with the test process). Tests create
    their own uniquely named topics (`unique_topic()` + `create_topic()`)."""
    with running_broker() as broker:
        yield broker


@pytest.fixture
def broker_restored(kafka_broker: KafkaBroker) -> Iterator[KafkaBroker]:
    """The session broker, guaranteed running again after the test (for stop/start tests)."""
    yield kafka_broker
    if not kafka_broker.running:
        kafka_broker.start()
