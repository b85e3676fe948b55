"""Wire compatibility: a client built from pynumaflow's own sink.v1 stubs drives our server.

pynumaflow (PyPI) is an independent implementation of the contract; its client runs in a
separate process with its own venv (its generated types would collide with ours in one
protobuf descriptor pool). What it decodes is what Numaflow's client would see.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sink_runtime import Datum, Message, Metadata, Response, Responses
from tests.support.pynumaflow_env import pynumaflow_sink_stubs
from tests.support.sink_wire import serving

CLIENT = Path(__file__).with_name("pynumaflow_client.py")

SCRIPT = {
    "t:0:0": Response.ok("t:0:0"),
    "t:0:1": Response.failure("t:0:1", "db locked"),
    "t:0:2": Response.fallback("t:0:2"),
    "t:0:3": Response.serve("t:0:3", b"reply"),
    "t:0:4": Response.on_success("t:0:4"),
    "t:0:5": Response.on_success("t:0:5", Message(b"next", ("k",)).add_headers(h="1")),
    "t:0:6": Response.nack("t:0:6", delay=100),
    "t:0:7": Response.ok("t:0:7"),
}
EXPECTED = {
    "t:0:0": (0, "", None, None),
    "t:0:1": (1, "db locked", None, None),
    "t:0:2": (2, "", None, None),
    "t:0:3": (3, "", "reply", None),
    "t:0:4": (4, "", None, None),
    # Our headers (field 1000) are unknown to pynumaflow: ignored, the rest decodes.
    "t:0:5": (4, "", None, {"value": "next", "keys": ["k"]}),
    # NACK (5) is newer than pynumaflow 0.14's enum; proto3 keeps the number.
    "t:0:6": (5, "", None, None),
    "t:0:7": (0, "", None, None),
}


@pytest.mark.pynumaflow
async def test_pynumaflow_stubs_drive_our_server(sock_dir: Path, pynumaflow_python: Path) -> None:
    assert (pynumaflow_sink_stubs(pynumaflow_python) / "sink_pb2.py").exists()
    seen: list[Datum] = []

    def sink(datums: Iterator[Datum]) -> Responses:
        batch = list(datums)
        seen.extend(batch)
        return Responses.of(SCRIPT.get(d.id, Response.ok(d.id)) for d in batch)

    async with serving(sink, sock_dir) as server:
        proc = await asyncio.create_subprocess_exec(
            str(pynumaflow_python),
            str(CLIENT),
            server.socket_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    got = json.loads(stdout)
    assert got["ready"] is True and got["handshake_sot"] is True

    first, second = got["batches"]
    for messages in (first, second):
        *with_results, eot = messages
        assert eot == {"results": [], "eot": True}
        assert all(not m["eot"] for m in with_results)
    results = {r["id"]: r for m in first for r in m["results"]}
    assert {
        i: (r["status"], r["err_msg"], r["serve_response"], r["on_success"])
        for i, r in results.items()
    } == EXPECTED
    assert sorted(r["id"] for m in second for r in m["results"]) == [
        "again:0",
        "again:1",
        "again:2",
    ]

    # And what pynumaflow's requests carried reached the handler intact.
    d = next(x for x in seen if x.id == "t:0:2")
    assert (d.value, d.keys, dict(d.headers)) == (b"value-2", ("k2", "eu"), {"h": "2"})
    assert d.event_time == datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert d.watermark == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    assert d.metadata == Metadata(previous_vertex="in", user_metadata={"g": {"k": b"v"}})
