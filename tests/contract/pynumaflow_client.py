"""A sink.v1 client built only from pynumaflow's generated stubs; prints what it got as JSON.

Run with the python of the pynumaflow venv (never udsink's: the two sets of sink.v1 types
cannot share a process). It drives a server the way Numaflow's client does: IsReady, the
handshake, then batches of N requests + EOT on one stream, each answered until an EOT.
Usage: python pynumaflow_client.py SOCKET_PATH
"""

import json
import queue
import sys
from datetime import UTC, datetime

import grpc
from google.protobuf import empty_pb2
from pynumaflow.proto.common import metadata_pb2
from pynumaflow.proto.sinker import sink_pb2, sink_pb2_grpc

EVENT_TIME = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
WATERMARK = datetime(2024, 5, 1, 11, 59, tzinfo=UTC)


def datum(i: int, prefix: str) -> sink_pb2.SinkRequest:
    r = sink_pb2.SinkRequest.Request(
        id=f"{prefix}{i}",
        value=f"value-{i}".encode(),
        keys=[f"k{i}", "eu"],
        headers={"h": str(i)},
        metadata=metadata_pb2.Metadata(
            previous_vertex="in",
            user_metadata={"g": metadata_pb2.KeyValueGroup(key_value={"k": b"v"})},
        ),
    )
    r.event_time.FromDatetime(EVENT_TIME)
    r.watermark.FromDatetime(WATERMARK)
    return sink_pb2.SinkRequest(request=r)


def describe(result: sink_pb2.SinkResponse.Result) -> dict[str, object]:
    return {
        "id": result.id,
        "status": int(result.status),
        "err_msg": result.err_msg,
        "serve_response": (
            result.serve_response.decode() if result.HasField("serve_response") else None
        ),
        "on_success": (
            {
                "value": result.on_success_msg.value.decode(),
                "keys": list(result.on_success_msg.keys),
            }
            if result.HasField("on_success_msg")
            else None
        ),
    }


def main(socket_path: str) -> None:
    channel = grpc.insecure_channel(f"unix:{socket_path}")
    stub = sink_pb2_grpc.SinkStub(channel)
    out: dict[str, object] = {"ready": stub.IsReady(empty_pb2.Empty()).ready}
    outbox: queue.Queue[sink_pb2.SinkRequest | None] = queue.Queue()
    responses = stub.SinkFn(iter(outbox.get, None))
    outbox.put(sink_pb2.SinkRequest(handshake=sink_pb2.Handshake(sot=True)))
    out["handshake_sot"] = next(responses).handshake.sot
    batches = []
    for prefix, n in (("t:0:", 8), ("again:", 3)):
        for i in range(n):
            outbox.put(datum(i, prefix))
        outbox.put(sink_pb2.SinkRequest(status=sink_pb2.TransmissionStatus(eot=True)))
        messages = []
        while True:
            msg = next(responses)
            messages.append(
                {
                    "results": [describe(r) for r in msg.results],
                    "eot": msg.HasField("status") and msg.status.eot,
                }
            )
            if msg.HasField("status") and msg.status.eot:
                break
        batches.append(messages)
    outbox.put(None)
    out["batches"] = batches
    channel.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
