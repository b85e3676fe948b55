"""sink_runtime.testing.served: the SDK's real server on a private socket, driven over the wire."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from sink_runtime import Datum, Message, Response, Responses, Sinker, Status
from sink_runtime.testing import (
    WIRE_PATHS,
    StreamError,
    WirePath,
    datum,
    datums,
    served,
)


class Recording(Sinker):
    """Answers by the value (b"fail", b"next" or SUCCESS) and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[Datum] = []
        self.events: list[str] = []

    def setup(self) -> None:
        self.events.append("setup")

    def handler(self, batch: Iterator[Datum]) -> Responses:
        out = Responses()
        for d in batch:
            self.seen.append(d)
            if d.value == b"fail":
                out.append(Response.failure(d.id, "told to"))
            elif d.value == b"next":
                out.append(Response.on_success(d.id, Message(b"n", ("k",)).add_headers(h="1")))
            else:
                out.append(Response.ok(d.id))
        return out

    def close(self) -> None:
        self.events.append("close")


def exists(path: str | Path) -> bool:
    return os.path.exists(path)


@pytest.mark.parametrize("path", WIRE_PATHS)
async def test_a_served_sink_answers_over_the_wire(path: WirePath) -> None:
    sink = Recording()
    sent = datum("orders:3:9", b"next", keys=["a", "b"], headers={"x": "1"})
    async with served(sink) as client:
        assert await client.is_ready()
        directory = os.path.dirname(client.socket_path)
        results = await client.write([sent, *datums("ok", "fail", offset=1)], path=path)
        again = await client.write(datums("ok", offset=7), path=path)  # a second batch
    assert not exists(directory)  # the private directory is gone
    assert sink.events == ["setup", "close"]
    assert sink.seen[0] == sent  # every field of the datum crossed the wire
    assert results.by_status() == {
        Status.ON_SUCCESS: ("orders:3:9",),
        Status.SUCCESS: ("test:0:1",),
        Status.FAILURE: ("test:0:2",),
    }
    assert results["test:0:2"].err == "told to"
    message = results["orders:3:9"].message
    assert message is not None and dict(message.headers) == {"h": "1"}
    again.assert_all_ok()


def drops_the_last(batch: Iterator[Datum]) -> Responses:
    return Responses.of([Response.ok(d.id) for d in batch][:-1])


@pytest.mark.parametrize("path", WIRE_PATHS)
async def test_a_broken_handler_ends_the_stream_with_the_servers_message(path: WirePath) -> None:
    async with served(drops_the_last) as client:
        with pytest.raises(StreamError) as e:
            await client.write(datums("a", "b"), path=path)
        # The client opens a new stream after an error, as the data plane does.
        with pytest.raises(StreamError):
            await client.write(datums("c", "d", offset=2), path=path)
    assert e.value.code == grpc.StatusCode.INTERNAL
    assert str(e.value) == (
        f"the sink ended the {path} stream with INTERNAL: sink handler drops_the_last broke "
        "the sink contract on a batch of 2 datums: contract violation (count): batch of 2 "
        "datums got 1 results; contract violation (missing-id): no result for ids 'test:0:1'"
    )


async def test_served_in_a_given_directory_leaves_the_directory(sock_dir: Path) -> None:
    async with served(Recording(), directory=sock_dir) as client:
        assert client.socket_path == f"{sock_dir}/sink.sock"
        assert exists(sock_dir / "sinker-server-info")
        with pytest.raises(ValueError, match=r"path='grpc': expected one of sink.v1, batch"):
            await client.write(datums("a"), path="grpc")  # type: ignore[arg-type]
    assert exists(sock_dir) and not exists(sock_dir / "sink.sock")


SDK_DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def test_the_first_test_in_the_sdk_docs_passes_as_written(tmp_path: Path) -> None:
    # docs/sdk.md, "A first test": the file as printed, run by pytest in a directory of its own.
    text = SDK_DOC.read_text(encoding="utf-8")
    section = text[text.index("### A first test") : text.index("### The whole path")]
    (code,) = re.findall(r"^`test_sink\.py`.*?\n```python\n(.*?)```", section, flags=re.M | re.S)
    (tmp_path / "test_sink.py").write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_sink.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout, done.stdout
