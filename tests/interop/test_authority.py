"""The data plane's sink client reaches a Rust SDK sink (crate `numaflow`).

grpcio's default HTTP/2 :authority for a `unix:` target is the percent-encoded socket path;
the Rust SDK's server resets such a stream, so without the client's fixed authority
(transport.SINK_AUTHORITY) `start()` fails with "cannot connect ... RST_STREAM".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.sinks.udsink import UserSinkClient
from sink_runtime.types import Datum, Status
from tests.interop.conftest import StartSink

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("container_type", ["udsink", "fb-udsink", "ons-udsink"])
async def test_client_reaches_rust_sdk_sink(
    unmodified_sink: StartSink, sock_dir: Path, container_type: str
) -> None:
    sink = await unmodified_sink("rust", container_type, sock_dir)  # type: ignore[arg-type]
    client = UserSinkClient(sink.config, metrics=Metrics(), name=container_type)
    try:
        await client.start()
        datums = [
            Datum(id=f"a-{i}", value=f"v{i}".encode(), keys=("k", str(i)), headers={"n": str(i)})
            for i in range(5)
        ]
        answers = await client.write(datums)
    finally:
        await client.close()
    assert [(a.id, a.status) for a in answers] == [(d.id, Status.SUCCESS) for d in datums]
    seen = sink.received()
    assert [(r.id, r.role, r.keys, r.headers["n"]) for r in seen] == [
        (d.id, container_type, list(d.keys), d.headers["n"]) for d in datums
    ]
