"""An SDK sink for tests: our SinkServer running a handler that answers by script and records.

Shared by the data plane tier and the Kafka tier (which runs the data plane as a program
against such a sink). The script answers per datum, given how many times that id was
delivered, so "fail X twice" or "NACK Z once" is one small function.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from sink_runtime.config import UserSinkConfig
from sink_runtime.server import SinkServer
from sink_runtime.types import Datum, Response, Responses

# Per-datum script of an SDK sink: (datum, how many times this id was delivered, 1-based).
Answer = Callable[[Datum, int], Response]


def ok(d: Datum, n: int) -> Response:
    return Response.ok(d.id)


class RecordingSink:
    """A sink handler for our SDK server: answers per datum by script, records what it got."""

    def __init__(self, answer: Answer = ok) -> None:
        self.answer = answer
        self.batches: list[list[Datum]] = []
        self.deliveries: dict[str, list[float]] = {}  # id -> monotonic arrival times

    def __call__(self, datums: Iterator[Datum]) -> Responses:
        batch = list(datums)
        self.batches.append(batch)
        now = time.monotonic()
        out = Responses()
        for d in batch:
            seen = self.deliveries.setdefault(d.id, [])
            seen.append(now)
            out.append(self.answer(d, len(seen)))
        return out

    @property
    def datums(self) -> list[Datum]:
        return [d for b in self.batches for d in b]

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self.datums]

    def count(self, id: str) -> int:
        return len(self.deliveries.get(id, []))


class SdkSink:
    """Our SDK's SinkServer running a RecordingSink in this process (real gRPC, Unix socket)."""

    def __init__(self, server: SinkServer, recorder: RecordingSink) -> None:
        self.server = server
        self.recorder = recorder

    def config(self, **overrides: Any) -> UserSinkConfig:
        options: dict[str, Any] = {
            "socket_path": self.server.socket_path,
            "server_info_path": self.server.server_info_path,
            "startup_timeout_ms": 10_000,
        }
        return UserSinkConfig(**(options | overrides))


# What the `sdk_sink` fixture gives: `await sdk_sink(answer_or_recorder, name=...)`.
SdkFactory = Callable[..., Awaitable[SdkSink]]
