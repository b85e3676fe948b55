"""When a Kafka-to-Kafka UDSink may run exactly-once, as one rule both validators apply.

Exactly-once writes a batch's output records and the source offsets that batch consumed in one
Kafka transaction. That holds only where every write of the batch can join the transaction and
the offsets can be committed on the cluster written to:
- the source is Kafka (its offsets are what the transaction commits);
- the primary sink is Kafka on the source's brokers (a transaction commits offsets on the
  cluster its producer writes to);
- every other sink the UDSink has (fallback, onSuccess, serve) is Kafka with the primary's
  connection: all of a batch's records go through the primary's one transactional producer;
  a user-defined, log or blackhole sink writes outside any transaction;
- onFailure is not drop: a dropped record would be committed with no output anywhere, which
  a reader of the output topics cannot tell from a lost one.

The UDSink model (field paths under `spec.sink`) and the RuntimeConfig (under `sink`) describe
their sinks with `Leg`s and get the same messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

NEEDS_KAFKA_SOURCE: Final = (
    "{root}.kafka.exactlyOnce needs a Kafka source: the transaction commits the offsets of the "
    "records it consumed (got a {source} source)"
)
NEEDS_SOURCE_CLUSTER: Final = (
    "{root}.kafka.exactlyOnce needs {root}.kafka.brokers to be the source's brokers: a "
    "transaction commits the source offsets on the cluster it writes to (got {brokers}; the "
    "source reads from {source_brokers})"
)
NEEDS_KAFKA_LEG: Final = (
    "{root}.kafka.exactlyOnce: {path} is a {kind} sink, whose writes cannot join the Kafka "
    "transaction; make it a kafka sink with the same brokers, tls, sasl and config as "
    "{root}.kafka, or remove it"
)
NEEDS_SAME_CONNECTION: Final = (
    "{root}.kafka.exactlyOnce: {path}.kafka writes through the primary sink's transactional "
    "producer, so it needs the same brokers, tls, sasl and config as {root}.kafka"
)
NOT_PRIMARY: Final = (
    "{path}.kafka.exactlyOnce: only {root}.kafka can be exactly-once (its transaction carries "
    "the other sinks' records)"
)
NO_DROP: Final = (
    "{root}.kafka.exactlyOnce cannot be combined with retryStrategy.onFailure 'drop': a "
    "dropped record is committed with no output, which a reader cannot tell from a lost one; "
    "choose retry, or fallback to a kafka dead-letter topic"
)


def connection(
    brokers: Sequence[str], tls: object, sasl: object, config: Mapping[str, str]
) -> object:
    """A value equal for two Kafka connections exactly when they reach the brokers the same
    way (the same brokers, tls, sasl and librdkafka settings)."""
    return (tuple(brokers), tls, sasl, tuple(sorted(config.items())))


@dataclass(frozen=True, slots=True)
class Leg:
    """One sink of the UDSink as the rule sees it: where it is (`path`, e.g.
    `spec.sink.fallback`), its kind (udsink, kafka, log, blackhole), for kafka its
    `connection` and whether it asks for exactly-once itself."""

    path: str
    kind: str
    connection: object = None
    exactly_once: bool = False


def problems(
    *,
    root: str,
    source_kind: str,
    source_brokers: Sequence[str],
    primary: Leg,
    primary_brokers: Sequence[str],
    others: Sequence[Leg],
    on_failure: str,
) -> list[str]:
    """What keeps the UDSink's exactly-once setting from holding (empty: nothing): a
    secondary sink asking for it, and, when the primary Kafka sink asks, every condition of
    the module doc that fails."""
    out = [NOT_PRIMARY.format(root=root, path=leg.path) for leg in others if leg.exactly_once]
    if not primary.exactly_once:
        return out
    if source_kind != "kafka":
        out.append(NEEDS_KAFKA_SOURCE.format(root=root, source=source_kind))
    elif set(primary_brokers) != set(source_brokers):
        out.append(
            NEEDS_SOURCE_CLUSTER.format(
                root=root,
                brokers=",".join(primary_brokers),
                source_brokers=",".join(source_brokers),
            )
        )
    for leg in others:
        if leg.kind != "kafka":
            out.append(NEEDS_KAFKA_LEG.format(root=root, path=leg.path, kind=leg.kind))
        elif leg.connection != primary.connection:
            out.append(NEEDS_SAME_CONNECTION.format(root=root, path=leg.path))
    if on_failure == "drop":
        out.append(NO_DROP.format(root=root))
    return out


__all__ = ["Leg", "connection", "problems"]
