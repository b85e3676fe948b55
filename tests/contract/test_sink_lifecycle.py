"""Start, serve, drain, stop: server-info, hooks, SIGTERM, a ten-line sink in its own process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from sink_runtime import Datum, Response, Responses, Sinker, SinkServer
from sink_runtime.config import constants
from sink_runtime.proto import sink_pb2
from sink_runtime.testing import BatchStream, SinkFnStream, channel, is_ready
from tests.support.sink_process import SinkProcess, sink_process
from tests.support.sink_wire import requests, serving
from tests.support.waiting import until


def ok(datums: Iterator[Datum]) -> Responses:
    return Responses.of(Response.ok(d.id) for d in datums)


def existing(*paths: str) -> list[str]:
    return [p for p in paths if os.path.exists(p)]


def touch(*paths: str) -> None:
    for p in paths:
        Path(p).write_text("left over from a previous run")


def read(path: str) -> str:
    return Path(path).read_text()


def wait_for_file(path: str, timeout_s: float = 20.0) -> None:
    until(lambda: os.path.exists(path), f"{path} to appear", within=timeout_s, every=0.02)


async def test_server_info_advertises_the_batch_extension(sock_dir: Path) -> None:
    async with serving(ok, sock_dir) as server:
        text = read(server.server_info_path)
    assert text.endswith(constants.SERVER_INFO_END_MARKER)
    info = json.loads(text[: -len(constants.SERVER_INFO_END_MARKER)])
    assert info["protocol"] == "uds" and info["language"] == "python"
    assert info["minimum_numaflow_version"] == constants.MINIMUM_NUMAFLOW_VERSION
    # Numaflow checks this against pynumaflow's releases: we speak 0.14.0's contract.
    assert info["version"] == constants.SDK_COMPAT_VERSION
    assert info["metadata"]["udsink.batch"] == "v1"
    assert info["metadata"]["udsink.version"]


async def test_stop_removes_the_socket_and_the_server_info(sock_dir: Path) -> None:
    server = SinkServer(ok, socket_path=f"{sock_dir}/s.sock")
    assert server.server_info_path == f"{sock_dir}/sinker-server-info"
    await server.start()
    both = [server.socket_path, server.server_info_path]
    assert existing(*both) == both
    await server.stop()
    assert existing(*both) == []
    await server.stop()  # idempotent


async def test_stale_files_of_a_previous_run_are_replaced(sock_dir: Path) -> None:
    touch(f"{sock_dir}/sink.sock", f"{sock_dir}/sinker-server-info")
    async with serving(ok, sock_dir) as server, channel(server.socket_path) as ch:
        assert await is_ready(ch)
        assert read(server.server_info_path).startswith('{"protocol"')


async def test_setup_and_close_run_once_around_serving(sock_dir: Path) -> None:
    class Hooked(Sinker):
        def __init__(self) -> None:
            self.events: list[str] = []

        def setup(self) -> None:
            # Nothing is served yet: no client can find the sink before it is set up.
            assert not os.path.exists(f"{sock_dir}/sinker-server-info")
            self.events.append("setup")

        def handler(self, datums: Iterator[Datum]) -> Responses:
            self.events.append("batch")
            return ok(datums)

        def close(self) -> None:
            self.events.append("close")

    sink = Hooked()
    async with serving(sink, sock_dir) as server, channel(server.socket_path) as ch:
        await BatchStream(ch).batch(requests(2))
        await BatchStream(ch).batch(requests(2))
    assert sink.events == ["setup", "batch", "batch", "close"]


async def test_a_failing_setup_serves_nothing(sock_dir: Path) -> None:
    class Broken(Sinker):
        def setup(self) -> None:
            raise RuntimeError("cannot reach the database")

        def handler(self, datums: Iterator[Datum]) -> Responses:
            return ok(datums)

    server = SinkServer(Broken(), socket_path=f"{sock_dir}/sink.sock")
    with pytest.raises(RuntimeError, match="cannot reach the database"):
        await server.start()
    assert existing(server.socket_path, server.server_info_path) == []


def test_bad_options_are_refused_by_name(sock_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"max_message_bytes=10: expected an int of at least"):
        SinkServer(ok, socket_path=f"{sock_dir}/s.sock", max_message_bytes=10)
    long = "/tmp/" + "x" * 120 + "/s.sock"
    with pytest.raises(ValueError, match=r"is 132 bytes long; a Unix socket path may have at most"):
        SinkServer(ok, socket_path=long)
    with pytest.raises(ValueError, match=r"container_type='sinker' is not a sink container type"):
        SinkServer(ok, container_type="sinker")


async def test_stop_ends_idle_streams_at_once_and_lets_a_batch_finish(sock_dir: Path) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(datums: Iterator[Datum]) -> Responses:
        started.set()
        await release.wait()
        return ok(datums)

    server = SinkServer(slow, socket_path=f"{sock_dir}/sink.sock", grace_s=60)
    await server.start()
    async with channel(server.socket_path) as ch:
        idle = SinkFnStream(ch)
        await idle.handshake()
        busy = SinkFnStream(ch)
        await busy.handshake()
        await busy.send(requests(4))
        await started.wait()
        stopping = asyncio.create_task(server.stop())
        # The idle stream ends now, not after the 60 s grace period.
        with pytest.raises(EOFError):
            await asyncio.wait_for(idle.read(), 10)
        assert not server.serving
        assert not stopping.done()
        release.set()
        answer = await busy.answer()
        assert sum(len(m.results) for m in answer) == 4 and answer[-1].status.eot
        with pytest.raises(EOFError):
            await busy.read()
        await asyncio.wait_for(stopping, 10)
        # No new streams once stopped.
        with pytest.raises(grpc.aio.AioRpcError):
            await is_ready(ch)


SLOW_SINK = """
import os, time
from pathlib import Path
from sink_runtime import Response, Responses, Sinker, serve

here = Path(os.environ["SINK_DIR"])

class Slow(Sinker):
    def handler(self, datums):
        batch = list(datums)
        (here / "started").write_text(str(len(batch)))
        time.sleep(1.0)
        return Responses.of(Response.ok(d.id) for d in batch)

    def close(self):
        (here / "closed").write_text("closed")

serve(Slow())
"""


@pytest.mark.parametrize("path", ["sink.v1", "batch"])
async def test_sigterm_lets_the_in_flight_batch_finish(sock_dir: Path, path: str) -> None:
    script = Path(sock_dir) / "slow_sink.py"
    script.write_text(SLOW_SINK)
    async with (
        sink_process(script, sock_dir, env={"SINK_DIR": str(sock_dir)}) as sink,
        channel(sink.socket_path) as ch,
    ):
        if path == "batch":
            stream = BatchStream(ch)
            answer = asyncio.create_task(stream.batch(requests(5)))
        else:
            v1 = SinkFnStream(ch)
            await v1.handshake()
            answer = asyncio.create_task(v1.batch(requests(5)))
        await asyncio.to_thread(wait_for_file, f"{sock_dir}/started")
        sink.signal(signal.SIGTERM)
        results = await asyncio.wait_for(answer, 20)
        assert sorted(r.id for r in results) == [f"t:0:{i}" for i in range(5)]
        if path == "sink.v1":
            with pytest.raises(EOFError):  # then the stream ends
                await v1.read()
        assert await sink.wait() == 0, sink.output()
    assert existing(sink.socket_path, sink.server_info_path) == []
    assert read(f"{sock_dir}/closed") == "closed"
    assert "draining" in sink.output()


TEN_LINE_SINK = """
from collections.abc import Iterator

from sink_runtime import Datum, Response, Responses, serve


def sink(datums: Iterator[Datum]) -> Responses:
    return Responses.of(Response.ok(d.id) for d in datums)


serve(sink)
"""


async def test_a_ten_line_sink_is_served_and_answers_a_real_client(sock_dir: Path) -> None:
    script = Path(sock_dir) / "ten_lines.py"
    script.write_text(textwrap.dedent(TEN_LINE_SINK).strip() + "\n")
    assert len(script.read_text().splitlines()) <= 10
    async with sink_process(script, sock_dir) as sink, channel(sink.socket_path) as ch:
        # The server-info file appears only once the server listens: connect at once.
        assert await is_ready(ch)
        stream = SinkFnStream(ch)
        await stream.handshake()
        results = await stream.batch(requests(10))
        assert sorted(r.id for r in results) == sorted(f"t:0:{i}" for i in range(10))
        assert {r.status for r in results} == {sink_pb2.SUCCESS}
        assert len(await BatchStream(ch).batch(requests(10))) == 10


async def test_a_second_stop_with_no_grace_does_not_wait_for_the_batch(
    sock_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def stuck(datums: Iterator[Datum]) -> Responses:
        started.set()
        await release.wait()  # never set: only cancellation ends this batch
        return ok(datums)

    server = SinkServer(stuck, socket_path=f"{sock_dir}/sink.sock", grace_s=60)
    await server.start()
    async with channel(server.socket_path) as ch:
        busy = BatchStream(ch)
        answer = asyncio.create_task(busy.batch(requests(2)))
        await started.wait()
        draining = asyncio.create_task(server.stop())
        await asyncio.sleep(0)
        await asyncio.wait_for(server.stop(grace_s=0), 10)
        await asyncio.wait_for(draining, 10)
        with pytest.raises(grpc.aio.AioRpcError):
            await answer
    assert existing(server.socket_path, server.server_info_path) == []
    [abandoned] = [r for r in caplog.records if "batch abandoned" in r.getMessage()]
    assert abandoned.ids == ["t:0:0", "t:0:1"]  # type: ignore[attr-defined]


async def test_a_socket_that_cannot_be_bound_is_named_and_setup_is_undone(sock_dir: Path) -> None:
    class Tracked(Sinker):
        closed = False

        def handler(self, datums: Iterator[Datum]) -> Responses:
            return ok(datums)

        def close(self) -> None:
            Tracked.closed = True

    touch(f"{sock_dir}/not-a-dir")
    server = SinkServer(Tracked(), socket_path=f"{sock_dir}/not-a-dir/sink.sock")
    with pytest.raises((RuntimeError, OSError), match="not-a-dir"):
        await server.start()
    assert Tracked.closed


FAILING_SETUP_SINK = """
from sink_runtime import Response, Responses, Sinker, serve

class NoDb(Sinker):
    def setup(self):
        raise ConnectionError("db:5432 refused")

    def handler(self, datums):
        return Responses.of(Response.ok(d.id) for d in datums)

serve(NoDb())
"""


async def test_a_sink_whose_setup_fails_exits_non_zero_with_one_clear_line(sock_dir: Path) -> None:
    script = Path(sock_dir) / "no_db.py"
    script.write_text(FAILING_SETUP_SINK)
    sink = SinkProcess(script, sock_dir)
    with pytest.raises(RuntimeError, match=r"exited with 1 before serving"):
        await sink.start()
    lines = [json.loads(line) for line in sink.output().splitlines() if line.startswith("{")]
    [failure] = [x for x in lines if x["level"] == "CRITICAL"]
    assert failure["message"] == "sink server failed: ConnectionError: db:5432 refused"
    assert "Traceback" in failure["exception"]
    assert existing(sink.socket_path, sink.server_info_path) == []
