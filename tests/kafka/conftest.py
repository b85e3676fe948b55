"""The Kafka tier's fixture: one real KRaft broker for the whole test session.

Started on first use, killed at session end (also on failure or interrupt; the JVM also dies
with the test process). Tests create their own uniquely named topics with
`kafka_broker.unique_topic()` + `create_topic()`; a test that stops the broker must start it
again before it ends (the `broker_restored` fixture does that even when the test fails).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.kafka_broker import KafkaBroker, running_broker


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    with running_broker() as broker:
        yield broker


@pytest.fixture
def broker_restored(kafka_broker: KafkaBroker) -> Iterator[KafkaBroker]:
    """The session broker, guaranteed running again after the test (for stop/start tests)."""
    yield kafka_broker
    if not kafka_broker.running:
        kafka_broker.start()
