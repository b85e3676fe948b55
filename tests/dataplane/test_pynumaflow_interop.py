"""Our data plane drives a sink written with pynumaflow, the independent sink.v1 implementation.

The sink runs in its own process and venv (its generated protobuf types would collide with
ours in one process). It does not advertise the batch extension, so this exercises the
`sink.v1` path end to end: handshake, N requests + EOT, results + EOT, FAILURE retried,
FALLBACK routed to a fallback sink (our SDK server), everything acknowledged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sink_runtime.config import UserSinkConfig, constants
from sink_runtime.dataplane.forwarder import Sinks
from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.sinks.udsink import UserSinkClient
from tests.dataplane.harness import SourceFactory, ids, run_forwarder, udsink
from tests.support.recording_sink import SdkFactory
from tests.support.sink_process import sink_process

pytestmark = pytest.mark.pynumaflow

PYNUMAFLOW_SINK = """
import json, os
from pynumaflow.sinker import Response, Responses, SinkServer

seen = {}

def handler(datums):
    out = Responses()
    for d in datums:
        n = seen[d.id] = seen.get(d.id, 0) + 1
        print(json.dumps({"id": d.id, "keys": list(d.keys), "value": d.value.decode(),
                          "headers": dict(d.headers)}), flush=True)
        if d.id == "file:0:2" and n == 1:
            out.append(Response.as_failure(d.id, "first try fails"))
        elif d.id == "file:0:3":
            out.append(Response.as_fallback(d.id))
        else:
            out.append(Response.as_success(d.id))
    return out

SinkServer(handler, sock_path=os.environ["UDSINK_SOCKET_PATH"],
           server_info_file=os.environ["UDSINK_SERVER_INFO_PATH"]).start()
"""


async def test_pynumaflow_sink_over_sink_v1(
    pynumaflow_python: Path,
    sock_dir: Path,
    sdk_sink: SdkFactory,
    file_source: SourceFactory,
) -> None:
    script = sock_dir / "pnf_sink.py"
    script.write_text(PYNUMAFLOW_SINK)
    fallback = await sdk_sink(name="fb")
    metrics = Metrics()
    source = file_source(12)
    async with sink_process(script, str(sock_dir), python=str(pynumaflow_python)) as pnf:
        primary = UserSinkClient(
            UserSinkConfig(socket_path=pnf.socket_path, server_info_path=pnf.server_info_path),
            metrics=metrics,
        )
        sinks = Sinks(primary, fallback=udsink(fallback, metrics, "fallback"))
        await run_forwarder(source, sinks, metrics=metrics, batch_size=5)
        assert primary.use_batch is False
        output = pnf.output()

    seen = [json.loads(line) for line in output.splitlines() if line.startswith('{"id"')]
    assert [s["id"] for s in seen].count("file:0:2") == 2
    assert {s["id"] for s in seen} == set(ids(12))
    first = next(s for s in seen if s["id"] == "file:0:5")
    assert (first["keys"], first["value"], first["headers"]) == (["k1", "p4"], "v4", {"n": "4"})
    [moved] = fallback.recorder.datums
    assert moved.id == "file:0:3"
    assert moved.headers[constants.FALLBACK_STATUS_HEADER] == "FALLBACK"
    assert source.acked_ids == ids(12)
    assert metrics.value("udsink_contract_violations_total", sink="primary", kind="count") == 0
