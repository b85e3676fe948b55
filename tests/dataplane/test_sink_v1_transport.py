"""The sink.v1 client's own HTTP/2 transport (sinks/grpc_stream.py) against real servers.

A raw HTTP/2 server (h2_sink.py) plays what grpcio servers cannot be told to do: a window of a
few hundred bytes, Trailers-Only errors, GOAWAY in the middle of a batch, the compressed flag.
A grpcio server (scripted_sink.py) checks a batch far larger than HTTP/2's default 64 KiB
windows arrives byte for byte. Each test asserts what the server received and what the client
answered, so it fails if the transport drops, reorders or corrupts data, ignores a window, or
misreports a status.
"""

from __future__ import annotations

import logging

import grpc
import pytest

from sink_runtime.dataplane.metrics import Metrics
from sink_runtime.dataplane.protocols import SinkError
from sink_runtime.dataplane.sinks import grpc_stream
from sink_runtime.dataplane.sinks.grpc_stream import MAX_UNREAD_MESSAGES, GrpcStream, frame
from sink_runtime.dataplane.sinks.transport import SINK_AUTHORITY, SINK_FN
from sink_runtime.dataplane.sinks.udsink import UserSinkClient
from sink_runtime.proto import sink_pb2
from sink_runtime.types import Datum, Status
from tests.dataplane.h2_sink import INTERNAL_MESSAGE, UNAVAILABLE_MESSAGE
from tests.dataplane.harness import H2SinkFactory, ScriptedFactory, until

HANDSHAKE = frame(sink_pb2.SinkRequest(handshake=sink_pb2.Handshake(sot=True)).SerializeToString())
EOT_REQUEST = frame(
    sink_pb2.SinkRequest(status=sink_pb2.TransmissionStatus(eot=True)).SerializeToString()
)
EOT_ANSWER = sink_pb2.SinkResponse(status=sink_pb2.TransmissionStatus(eot=True)).SerializeToString()


def _datums(n: int, size: int) -> list[Datum]:
    return [
        Datum(id=f"t:0:{i}", value=bytes([65 + i % 26]) * size, keys=("k", str(i)))
        for i in range(n)
    ]


async def test_a_tiny_server_window_is_respected_and_the_batch_arrives_whole(
    h2_sink: H2SinkFactory,
) -> None:
    # 300 KiB through a 700-byte stream window: hundreds of WINDOW_UPDATE waits.
    sink = await h2_sink(["ok"], initial_window=700)
    client = UserSinkClient(sink.config(), metrics=Metrics())
    await client.start()
    datums = _datums(300, 1024)
    try:
        answers = await client.write(datums)
    finally:
        await client.close()
    assert [(a.id, a.status) for a in answers] == [(d.id, Status.SUCCESS) for d in datums]
    assert sink.batches == [(1, [d.id for d in datums])]
    assert 0 < sink.largest_data_frame <= 700


async def test_a_batch_far_over_64_kib_reaches_a_grpcio_sink_intact(
    scripted: ScriptedFactory,
) -> None:
    sink = await scripted(batch_extension=False)
    client = UserSinkClient(sink.config(), metrics=Metrics())
    await client.start()
    first, second = _datums(500, 1024), _datums(700, 700)
    try:
        answers = [await client.write(first), await client.write(second)]
    finally:
        await client.close()
    assert [len(a) for a in answers] == [500, 700]
    assert all(a.status == Status.SUCCESS for batch in answers for a in batch)
    got = [(d.id, d.value, d.keys) for r in sink.received for d in r.datums]
    assert got == [(d.id, d.value, d.keys) for d in first + second]
    assert sink.streams == 1


async def test_a_trailers_only_unavailable_fails_start_with_code_and_decoded_message(
    h2_sink: H2SinkFactory,
) -> None:
    sink = await h2_sink(["unavailable"])
    client = UserSinkClient(sink.config(), metrics=Metrics(), name="fallback")
    with pytest.raises(SinkError) as err:
        await client.start()
    await client.close()
    assert f"fallback sink at {sink.socket_path}: cannot connect" in str(err.value)
    assert f"handshake: gRPC status UNAVAILABLE: {UNAVAILABLE_MESSAGE}" in str(err.value)


async def test_internal_in_trailers_then_trailers_only_then_a_good_stream(
    h2_sink: H2SinkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sink = await h2_sink(["internal", "unavailable", "ok"])
    metrics = Metrics()
    client = UserSinkClient(sink.config(), metrics=metrics, max_resends=3)
    await client.start()
    datums = _datums(20, 100)
    try:
        answers = await client.write(datums)
    finally:
        await client.close()
    assert [a.status for a in answers] == [Status.SUCCESS] * 20
    ids = [d.id for d in datums]
    assert sink.batches == [(1, ids), (3, ids)]  # stream 2 refused before any data
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"SinkFn: gRPC status INTERNAL: {INTERNAL_MESSAGE}" in warnings[0]
    assert f"handshake: gRPC status UNAVAILABLE: {UNAVAILABLE_MESSAGE}" in warnings[1]
    assert metrics.value("udsink_sink_reconnects_total", sink="primary") == 1


@pytest.mark.parametrize("goaway", ["goaway", "goaway-window"])
async def test_goaway_in_the_middle_of_a_batch_reconnects_and_resends_it(
    h2_sink: H2SinkFactory, caplog: pytest.LogCaptureFixture, goaway: str
) -> None:
    sink = await h2_sink([goaway, "ok"])
    metrics = Metrics()
    client = UserSinkClient(sink.config(), metrics=metrics)
    await client.start()
    datums = _datums(200, 1024)
    try:
        answers = await client.write(datums)
    finally:
        await client.close()
    assert [a.status for a in answers] == [Status.SUCCESS] * 200
    assert sink.batches == [(2, [d.id for d in datums])]
    assert any("the server closed the connection (GOAWAY" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert metrics.value("udsink_sink_reconnects_total", sink="primary") == 1


async def test_a_compressed_answer_is_reported_as_the_servers_error(h2_sink: H2SinkFactory) -> None:
    sink = await h2_sink(["compressed"])
    client = UserSinkClient(sink.config(), metrics=Metrics(), max_resends=1)
    await client.start()
    with pytest.raises(SinkError) as err:
        await client.write(_datums(3, 10))
    await client.close()
    text = str(err.value)
    assert "after 1 resends" in text
    assert "SinkFn: the server sent a message with the compressed flag set" in text
    assert "offers no compression" in text
    assert len(sink.batches) == 2


async def test_a_message_between_batches_resets_the_stream_at_once(
    h2_sink: H2SinkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sink = await h2_sink(["ok"])
    metrics = Metrics()
    client = UserSinkClient(sink.config(), metrics=metrics)
    await client.start()
    first, second = _datums(3, 10), _datums(5, 10)[3:]
    try:
        assert [a.id for a in await client.write(first)] == [d.id for d in first]
        # A second EOT while the client waits for nothing: the stream is reset as it arrives,
        # not when the next batch would have read it as its own answer.
        await sink.send_stray(EOT_ANSWER)
        violations = "udsink_contract_violations_total"
        await until(
            lambda: metrics.value(violations, sink="primary", kind="protocol") == 1,
            "the stray EOT was not reported",
        )
        answers = await client.write(second)
    finally:
        await client.close()
    assert [(a.id, a.status) for a in answers] == [(d.id, Status.SUCCESS) for d in second]
    assert sink.batches == [(1, [d.id for d in first]), (2, [d.id for d in second])]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert (
        "the server sent 1 messages (4 bytes) between batches (after a batch's EOT)" in (errors[0])
    )
    assert any(r.frame == "GOAWAY" and "between batches" in r.debug for r in sink.resets)


async def test_unread_messages_are_bounded_by_count_even_when_empty(h2_sink: H2SinkFactory) -> None:
    # The stream on its own, its caller reading nothing while the sink answers a batch with
    # empty messages without end: each counts, and the stream ends at the count.
    sink = await h2_sink(["flood-empty"])
    stream = await GrpcStream.open(
        sink.socket_path, SINK_FN, authority=SINK_AUTHORITY, max_message_bytes=1024
    )
    try:
        await stream.write(HANDSHAKE + frame(b"\x0a\x03\x0a\x01a") + EOT_REQUEST)
        await until(lambda: stream.broken, "the flood did not end the stream", within_s=30)
    finally:
        stream.close()
    failure = stream.failure
    assert failure is not None and failure.violation
    assert f"more than {MAX_UNREAD_MESSAGES} messages that were not read yet" in str(failure)
    assert failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_peer_that_never_reads_is_dropped_at_the_outbound_limit(
    h2_sink: H2SinkFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PINGs slower than the flood limit, from a sink that reads nothing: what grows is our
    # output waiting for it (the kernel's buffer made small so that it fills fast).
    monkeypatch.setattr(grpc_stream, "MAX_CONTROL_FRAMES", 10**9)
    monkeypatch.setattr(grpc_stream, "OUTBOUND_LIMIT", 64 * 1024)
    monkeypatch.setattr(grpc_stream, "_SEND_BUFFER_BYTES", 4096)
    sink = await h2_sink(["ping-no-read", "ok"])
    metrics = Metrics()
    client = UserSinkClient(sink.config(), metrics=metrics)
    await client.start()
    datums = _datums(3, 10)
    try:
        answers = await client.write(datums)
    finally:
        await client.close()
    assert [(a.id, a.status) for a in answers] == [(d.id, Status.SUCCESS) for d in datums]
    assert sink.batches == [(2, [d.id for d in datums])]
    assert metrics.value("udsink_contract_violations_total", sink="primary", kind="protocol") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "the server does not read what the client sends" in errors[0]
    assert "(over 65536) while it keeps sending frames that must be answered" in errors[0]
