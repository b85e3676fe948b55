"""When a Kafka refusal ends the data plane, and what it leaves in the termination message."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sink_runtime.config import BlackholeSinkConfig, GeneratorSourceConfig, RuntimeConfig
from sink_runtime.config.constants import KAFKA_REFUSED_LIMIT_S
from sink_runtime.dataplane.app import DataPlane
from sink_runtime.dataplane.refusal import (
    RefusalClock,
    ending_message,
    stop_on_refusal,
    write_termination_message,
)

WHY = (
    "kafka source: the brokers refused the SCRAM-SHA-512 credentials of "
    "spec.source.kafka.sasl.scramsha512.passwordSecret (Secret 'kafka-user' key 'password')"
)


@pytest.mark.parametrize(
    ("seen", "due"),
    [
        # (seconds since start, what is refused) -> due after each look
        ([(0, WHY), (30, WHY), (59, WHY)], [False, False, False]),
        ([(0, WHY), (30, WHY), (60, WHY)], [False, False, True]),
        # A connection in between starts the count again.
        ([(0, WHY), (50, ""), (55, WHY), (100, WHY), (115, WHY)], [False] * 4 + [True]),
        # An outage (no refusal) never ends the process.
        ([(0, ""), (600, ""), (6000, "")], [False, False, False]),
    ],
)
def test_the_refusal_must_last_the_limit_without_a_break(
    seen: list[tuple[float, str]], due: list[bool]
) -> None:
    clock = RefusalClock(limit_s=60.0)
    assert [clock.due(reason, now) for now, reason in seen] == due


def stepped(times: list[float]) -> Callable[[], float]:
    ticks: Iterator[float] = iter(times)
    return lambda: next(ticks)


async def test_a_lasting_refusal_stops_the_data_plane_once_with_its_reason() -> None:
    reasons = iter(["", WHY, WHY, WHY])
    stops: list[str] = []
    message = await stop_on_refusal(
        lambda: next(reasons),
        lambda: stops.append("stop"),
        limit_s=KAFKA_REFUSED_LIMIT_S,
        poll_s=0.0,
        clock=stepped([0.0, 1.0, 30.0, 1.0 + KAFKA_REFUSED_LIMIT_S]),
    )
    assert stops == ["stop"]
    assert message == ending_message(WHY, KAFKA_REFUSED_LIMIT_S)
    assert WHY in message
    assert f"for {KAFKA_REFUSED_LIMIT_S:.0f}s" in message


def test_the_message_goes_to_the_file_the_kubelet_provides(tmp_path: Path) -> None:
    provided = tmp_path / "termination-log"
    provided.write_text("")
    assert write_termination_message(str(provided), WHY)
    assert provided.read_text() == WHY


def test_outside_a_pod_no_file_is_made(tmp_path: Path) -> None:
    absent = tmp_path / "termination-log"
    assert not write_termination_message(str(absent), WHY)
    assert not absent.exists()


def test_parts_without_kafka_refuse_nothing() -> None:
    config = RuntimeConfig(source=GeneratorSourceConfig(), sink=BlackholeSinkConfig())
    assert DataPlane(config, serve_http=False).refused() == ""
