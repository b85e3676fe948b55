"""When `exactlyOnce` may be set: one rule, the same words from the UDSink validation (field
paths under spec.sink) and the RuntimeConfig the data plane reads (under sink)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from udsink_operator import api
from udsink_operator.build import build_runtime_config

from sink_runtime.config import ConfigError, RuntimeConfig, parse_config
from tests.support.udsink_doc import udsink_doc

KAFKA = {"brokers": ["kafka:9092"]}


def spec(**sink: Any) -> dict[str, Any]:
    return {
        "source": {"kafka": {**KAFKA, "topics": ["orders"]}},
        "sink": {"kafka": {**KAFKA, "topic": "out", "exactlyOnce": True}, **sink},
    }


def built(raw: dict[str, Any]) -> RuntimeConfig:
    return build_runtime_config(api.parse_udsink(udsink_doc("u", raw, namespace="ns")))


def issues_of(raw: dict[str, Any]) -> str:
    with pytest.raises(api.SpecError) as caught:
        api.parse_spec(raw)
    return "\n".join(caught.value.issues)


def test_a_kafka_to_kafka_spec_with_a_kafka_dead_letter_topic_is_accepted() -> None:
    raw = spec(
        fallback={"kafka": {**KAFKA, "topic": "dlq"}},
        retryStrategy={"onFailure": "fallback"},
    )
    parsed = api.parse_spec(raw)
    assert parsed.sink.kafka is not None and parsed.sink.kafka.exactly_once
    config = built(raw)
    assert config.sink.exactly_once  # type: ignore[union-attr]
    assert parse_config(config.to_json()).sink.exactly_once  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda s: s.update(source={"generator": {}}),
            "spec.sink.kafka.exactlyOnce needs a Kafka source",
        ),
        (
            lambda s: s["sink"]["kafka"].update(brokers=["other:9092"]),
            "needs spec.sink.kafka.brokers to be the source's brokers: a transaction commits "
            "the source offsets on the cluster it writes to (got other:9092; the source reads "
            "from kafka:9092)",
        ),
        (
            lambda s: s["sink"].update(fallback={"log": {}}),
            "spec.sink.fallback is a log sink, whose writes cannot join the Kafka transaction",
        ),
        (
            lambda s: s["sink"].update(
                onSuccess={"kafka": {**KAFKA, "topic": "ok", "config": {"linger.ms": "50"}}}
            ),
            "spec.sink.onSuccess.kafka writes through the primary sink's transactional producer",
        ),
        (
            lambda s: s["sink"].update(retryStrategy={"onFailure": "drop"}),
            "cannot be combined with retryStrategy.onFailure 'drop'",
        ),
        (
            lambda s: s["sink"].update(
                fallback={"kafka": {**KAFKA, "topic": "dlq", "exactlyOnce": True}}
            ),
            "spec.sink.fallback.kafka.exactlyOnce: only spec.sink.kafka can be exactly-once",
        ),
    ],
    ids=["generator-source", "other-cluster", "log-fallback", "other-config", "drop", "nested"],
)
def test_where_it_cannot_hold_the_spec_is_refused_with_the_reason(change: Any, words: str) -> None:
    raw = copy.deepcopy(spec())
    change(raw)
    assert words in issues_of(raw)


def test_the_runtime_config_applies_the_same_rule() -> None:
    raw = json.loads(built(spec()).to_json())
    raw["retryStrategy"]["onFailure"] = "drop"
    with pytest.raises(ConfigError) as caught:
        parse_config(json.dumps(raw))
    assert "sink.kafka.exactlyOnce cannot be combined with retryStrategy.onFailure 'drop'" in str(
        caught.value
    )
