"""The SDK server speaks both wire paths of docs/design/contract.md: real gRPC, a Unix socket.

sink.v1 (SinkFn): handshake first, N requests + EOT, results then a separate EOT, many batches
per stream. The batch extension (WriteBatch): one SinkBatch answered by one SinkBatchResult.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sink_runtime import Datum, Message, Response, Responses, Status
from sink_runtime.proto import sink_pb2
from sink_runtime.testing import (
    WIRE_PATHS,
    BatchStream,
    SinkFnStream,
    WirePath,
    channel,
    datums,
    is_ready,
    served,
)
from tests.support.sink_wire import request, requests, serving

EVERY_STATUS = {
    "t:0:0": Response.ok("t:0:0"),
    "t:0:1": Response.failure("t:0:1", "db locked"),
    "t:0:2": Response.fallback("t:0:2", "poison"),
    "t:0:3": Response.serve("t:0:3", b"reply"),
    "t:0:4": Response.on_success("t:0:4"),
    "t:0:5": Response.on_success("t:0:5", Message(b"next", ("k",)).add_headers(h="1")),
    "t:0:6": Response.nack("t:0:6", delay=1500, reason="slow down", max_deliveries=3),
    "t:0:7": Response.nack("t:0:7"),
}


def scripted(datums: Iterator[Datum]) -> Responses:
    """Answers each datum with the response scripted for its id (SUCCESS otherwise)."""
    return Responses.of(EVERY_STATUS.get(d.id, Response.ok(d.id)) for d in datums)


def echo_sizes(datums: Iterator[Datum]) -> Responses:
    return Responses.of(Response.serve(d.id, str(len(d.value)).encode()) for d in datums)


@pytest.mark.parametrize("path", WIRE_PATHS)
async def test_every_status_round_trips(path: WirePath) -> None:
    async with served(scripted) as sink:
        results = await sink.write(datums(*(b"v" for _ in EVERY_STATUS), topic="t"), path=path)
    # Every field of every status (the on-success message's headers, the NACK options, the
    # serve payload) came back as it was sent.
    assert dict(results) == EVERY_STATUS


async def test_the_handler_sees_every_field_of_the_datum(sock_dir: Path) -> None:
    seen: list[Datum] = []

    def record(datums: Iterator[Datum]) -> Responses:
        batch = list(datums)
        seen.extend(batch)
        return Responses.of(Response.ok(d.id) for d in batch)

    sent = request("t:1:7", b"payload", keys=["a", "b"], headers={"x-h": "1"})
    async with serving(record, sock_dir) as server, channel(server.socket_path) as ch:
        stream = SinkFnStream(ch)
        await stream.handshake()
        await stream.batch([sent])
        await BatchStream(ch).batch([sent])
    assert len(seen) == 2 and seen[0] == seen[1]
    d = seen[0]
    assert (d.id, d.value, d.keys, dict(d.headers)) == (
        "t:1:7",
        b"payload",
        ("a", "b"),
        {"x-h": "1"},
    )
    assert d.event_time == sent.event_time.ToDatetime().replace(tzinfo=d.event_time.tzinfo)
    assert d.event_time.tzinfo is not None and d.watermark.tzinfo is not None


async def test_results_never_ride_in_the_eot_message(sock_dir: Path) -> None:
    async with serving(scripted, sock_dir) as server, channel(server.socket_path) as ch:
        stream = SinkFnStream(ch)
        handshake = await stream.handshake()
        assert handshake.handshake.sot and not handshake.results
        await stream.batch(requests(20))
    *result_messages, eot = stream.answer_messages
    assert eot.status.eot and not eot.results and not eot.HasField("handshake")
    assert result_messages and all(not m.HasField("status") for m in result_messages)
    assert sum(len(m.results) for m in result_messages) == 20


async def test_many_batches_follow_one_another_on_one_stream(sock_dir: Path) -> None:
    async with serving(echo_sizes, sock_dir) as server, channel(server.socket_path) as ch:
        stream = SinkFnStream(ch)
        await stream.handshake()
        for n in (1, 7, 3, 50):
            results = await stream.batch(requests(n, prefix=f"b{n}:", value=b"x" * n))
            assert sorted(r.id for r in results) == sorted(f"b{n}:{i}" for i in range(n))
            assert {r.serve_response for r in results} == {str(n).encode()}
        batch = BatchStream(ch)
        for n in (2, 9):
            assert len(await batch.batch(requests(n, prefix=f"w{n}:"))) == n


async def test_an_empty_batch_is_answered_by_eot_alone(sock_dir: Path) -> None:
    calls: list[int] = []

    def counting(datums: Iterator[Datum]) -> Responses:
        calls.append(1)
        return Responses.of(Response.ok(d.id) for d in datums)

    async with serving(counting, sock_dir) as server, channel(server.socket_path) as ch:
        stream = SinkFnStream(ch)
        await stream.handshake()
        assert await stream.batch([]) == []
        assert len(stream.answer_messages) == 1
        assert await BatchStream(ch).batch([]) == []
        assert len(await stream.batch(requests(2))) == 2
    assert calls == [1]


async def test_a_stream_must_start_with_a_handshake(sock_dir: Path) -> None:
    async with serving(scripted, sock_dir) as server, channel(server.socket_path) as ch:
        stream = SinkFnStream(ch)
        await stream.send(requests(1))
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stream.read()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.details() == (
            "protocol error: a SinkFn stream must start with a handshake "
            "(SinkRequest{handshake{sot: true}}), got a datum (id 't:0:0')"
        )
        # sot=false is no handshake either.
        stream = SinkFnStream(ch)
        await stream.call.write(sink_pb2.SinkRequest(handshake=sink_pb2.Handshake(sot=False)))
        with pytest.raises(grpc.aio.AioRpcError, match="got a handshake with sot=False"):
            await stream.read()
        # The server still serves.
        good = SinkFnStream(ch)
        await good.handshake()
        assert len(await good.batch(requests(3))) == 3


async def test_a_handshake_in_the_middle_of_a_batch_is_a_protocol_error(sock_dir: Path) -> None:
    async with serving(scripted, sock_dir) as server, channel(server.socket_path) as ch:
        stream = SinkFnStream(ch)
        await stream.handshake()
        await stream.call.write(sink_pb2.SinkRequest(request=request("t:0:0")))
        await stream.call.write(sink_pb2.SinkRequest(handshake=sink_pb2.Handshake(sot=True)))
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stream.read()
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "handshake in the middle of a SinkFn stream, after 1 datums" in str(e.value.details())


async def test_a_client_leaving_mid_batch_does_not_hurt_the_server(
    sock_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(scripted, sock_dir) as server, channel(server.socket_path) as ch:
        stream = SinkFnStream(ch)
        await stream.handshake()
        for r in requests(3):
            await stream.call.write(sink_pb2.SinkRequest(request=r))
        await stream.done_writing()
        with pytest.raises(EOFError):
            await stream.read()
        again = SinkFnStream(ch)
        await again.handshake()
        assert len(await again.batch(requests(3))) == 3
    [warning] = [r for r in caplog.records if "middle of a batch" in r.getMessage()]
    assert warning.batch_size == 3  # type: ignore[attr-defined]
    assert warning.ids == ["t:0:0", "t:0:1", "t:0:2"]  # type: ignore[attr-defined]


async def test_is_ready(sock_dir: Path) -> None:
    async with serving(scripted, sock_dir) as server, channel(server.socket_path) as ch:
        assert await is_ready(ch)


LIMIT = 1024 * 1024


@pytest.mark.parametrize("path", ["sink.v1", "batch"])
async def test_values_near_the_size_limit_pass(sock_dir: Path, path: str) -> None:
    value = b"v" * (LIMIT - 200)  # room for the id, the times and the framing
    async with (
        serving(echo_sizes, sock_dir, max_message_bytes=LIMIT) as server,
        channel(server.socket_path) as ch,
    ):
        if path == "batch":
            results = await BatchStream(ch).batch([request("big", value)])
        else:
            stream = SinkFnStream(ch)
            await stream.handshake()
            results = await stream.batch([request("big", value), request("big2", value)])
    assert {r.serve_response for r in results} == {str(len(value)).encode()}


@pytest.mark.parametrize("path", ["sink.v1", "batch"])
async def test_a_message_over_the_size_limit_fails_clearly(sock_dir: Path, path: str) -> None:
    async with (
        serving(echo_sizes, sock_dir, max_message_bytes=LIMIT) as server,
        channel(server.socket_path) as ch,
    ):
        too_big = [request("big", b"v" * (LIMIT + 1))]
        with pytest.raises(grpc.aio.AioRpcError) as e:
            if path == "batch":
                await BatchStream(ch).batch(too_big)
            else:
                stream = SinkFnStream(ch)
                await stream.handshake()
                await stream.batch(too_big)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = str(e.value.details())
        assert "Received message larger than max (" in details and f"vs. {LIMIT})" in details


async def test_results_too_big_for_one_message_are_split_before_the_eot(sock_dir: Path) -> None:
    payload = b"p" * (LIMIT // 3)

    def serve_big(datums: Iterator[Datum]) -> Responses:
        return Responses.of(Response.serve(d.id, payload) for d in datums)

    async with (
        serving(serve_big, sock_dir, max_message_bytes=LIMIT) as server,
        channel(server.socket_path) as ch,
    ):
        stream = SinkFnStream(ch)
        await stream.handshake()
        results = await stream.batch(requests(5))
        assert len(results) == 5
        assert len(stream.answer_messages) >= 3  # at least two result messages, then EOT
        assert all(m.ByteSize() <= LIMIT for m in stream.answer_messages)
        # The batch path cannot split one answer: it says so.
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await BatchStream(ch).batch(requests(5))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "the answer to a batch of 5 datums is" in str(e.value.details())
        assert f"over the max message size of {LIMIT} bytes" in str(e.value.details())


async def test_a_single_result_over_the_limit_names_its_id(sock_dir: Path) -> None:
    def serve_huge(datums: Iterator[Datum]) -> Responses:
        return Responses.of(Response.serve(d.id, b"p" * (LIMIT + 10)) for d in datums)

    async with (
        serving(serve_huge, sock_dir, max_message_bytes=LIMIT) as server,
        channel(server.socket_path) as ch,
    ):
        stream = SinkFnStream(ch)
        await stream.handshake()
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stream.batch(requests(1))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "the result for id 't:0:0' is" in str(e.value.details())


def test_status_numbers_match_the_wire_enum() -> None:
    for s in Status:
        assert sink_pb2.Status.Value(s.name) == s.value


def raw_sink_fn(ch: grpc.aio.Channel) -> Any:
    """A SinkFn call that sends bytes as given, for messages a stub would not build."""
    stream: Any = ch.stream_stream(
        "/sink.v1.Sink/SinkFn", response_deserializer=sink_pb2.SinkResponse.FromString
    )
    return stream()


async def answer_of(call: Any) -> list[sink_pb2.SinkResponse.Result]:
    results = []
    while not (reply := await call.read()).status.eot:
        results.extend(reply.results)
    return results


HANDSHAKE = sink_pb2.SinkRequest(handshake=sink_pb2.Handshake(sot=True)).SerializeToString()


async def test_every_encoding_of_a_request_and_an_eot_is_understood(sock_dir: Path) -> None:
    # The server reads the usual forms from their bytes and parses any other form in full:
    # each must mean what protobuf says it means.
    eot = sink_pb2.TransmissionStatus(eot=True)
    unknown_field = b"\xa0\x06\x01"  # field 100, varint 1: ignored by every parser
    forms = [
        sink_pb2.SinkRequest(request=request("t:0:0")).SerializeToString(),
        sink_pb2.SinkRequest(
            request=request("t:0:1"), status=sink_pb2.TransmissionStatus(eot=False)
        ).SerializeToString(),
        sink_pb2.SinkRequest(request=request("t:0:2")).SerializeToString() + unknown_field,
        # The field twice: protobuf merges the two, so the id of the second one wins.
        sink_pb2.SinkRequest(request=request("t:0:x")).SerializeToString()
        + sink_pb2.SinkRequest(
            request=sink_pb2.SinkRequest.Request(id="t:0:3")
        ).SerializeToString(),
    ]
    async with serving(scripted, sock_dir) as server, channel(server.socket_path) as ch:
        call = raw_sink_fn(ch)
        await call.write(HANDSHAKE)
        await call.read()
        for raw in forms:
            await call.write(raw)
        # An EOT that also carries a request: the request is not part of the batch.
        await call.write(
            sink_pb2.SinkRequest(request=request("t:0:9"), status=eot).SerializeToString()
        )
        assert sorted(r.id for r in await answer_of(call)) == ["t:0:0", "t:0:1", "t:0:2", "t:0:3"]
        # The usual forms again on the same stream, the EOT with a field it does not know.
        await call.write(sink_pb2.SinkRequest(request=request("t:1:0")).SerializeToString())
        await call.write(sink_pb2.SinkRequest(status=eot).SerializeToString() + unknown_field)
        assert [r.id for r in await answer_of(call)] == ["t:1:0"]


@pytest.mark.parametrize(
    ("messages", "named"),
    [
        ([b"\xff\xff"], "the first message of the stream (2 bytes)"),
        ([HANDSHAKE, b"\x0a\x02\xff\xff"], "message 1 of a batch of 1 (4 bytes)"),
        (
            [
                HANDSHAKE,
                sink_pb2.SinkRequest(request=request("t:0:0")).SerializeToString(),
                b"\xff",
            ],
            "message 2 of a batch (1 bytes)",
        ),
    ],
    ids=["first message", "framed request", "unframed message"],
)
async def test_bytes_that_are_not_a_request_end_the_stream_naming_the_message(
    sock_dir: Path, messages: list[bytes], named: str, caplog: pytest.LogCaptureFixture
) -> None:
    eot = sink_pb2.SinkRequest(status=sink_pb2.TransmissionStatus(eot=True)).SerializeToString()
    reason = f"protocol error: {named} is not a sink.v1 SinkRequest"
    async with serving(scripted, sock_dir) as server, channel(server.socket_path) as ch:
        call = raw_sink_fn(ch)
        write_failed = False
        for raw in [*messages, eot]:
            try:
                await call.write(raw)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                write_failed = True  # the server ended the stream before the rest was sent
                break
        with pytest.raises(grpc.aio.AioRpcError):
            while True:
                await call.read()
        # The server names the message whatever the client saw.
        assert any(reason in r.getMessage() for r in caplog.records), caplog.text
        if write_failed:
            # gRPC reports a send that failed on a finished stream as a status of its own.
            assert await call.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.INTERNAL,
            )
        else:
            assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert reason in str(await call.details())
        # The server still serves.
        good = SinkFnStream(ch)
        await good.handshake()
        assert len(await good.batch(requests(2))) == 2
