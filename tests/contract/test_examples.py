"""Each example sink runs as `python examples/sinks/<file>.py` and does what its README says."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sink_runtime import Status
from sink_runtime.testing import connect, datum, datums
from tests.support.sink_process import sink_process

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sinks"


async def test_log_sink_logs_and_acknowledges(sock_dir: Path) -> None:
    async with (
        sink_process(EXAMPLES / "log_sink.py", sock_dir) as sink,
        connect(sink.socket_path) as client,
    ):
        (await client.write([datum("orders:0:7", b"hello", keys=["k"])])).assert_all_ok()
    assert "datum orders:0:7 keys=['k'] value=b'hello'" in sink.output()


def rows(db: Path) -> dict[str, tuple[str, bytes]]:
    with sqlite3.connect(db) as conn:
        return {i: (k, v) for i, k, v in conn.execute("SELECT id, keys, value FROM messages")}


async def test_sqlite_sink_upserts_by_id_and_fails_on_a_locked_database(sock_dir: Path) -> None:
    db = Path(sock_dir) / "sink.db"
    env = {"SQLITE_SINK_PATH": str(db), "SQLITE_SINK_LOCK_TIMEOUT_S": "0.2"}
    async with (
        sink_process(EXAMPLES / "sqlite_sink.py", sock_dir, env=env) as sink,
        connect(sink.socket_path) as client,
    ):
        batch = datums("v0", "v1", "v2", topic="orders", keys=["a", "b"])
        (await client.write(batch, path="batch")).assert_all_ok()
        assert rows(db)["orders:0:1"] == (json.dumps(["a", "b"]), b"v1")

        # Redelivery of the same batch (as after a crash): still one row per id.
        redelivered = [*batch, datum("orders:0:3", b"v3")]
        assert len(await client.write(redelivered, path="batch")) == 4
        assert sorted(rows(db)) == [f"orders:0:{i}" for i in range(4)]

        # Another writer holds the database: every datum of the batch is a FAILURE, with why.
        locker = sqlite3.connect(db, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            failed = await client.write([datum("orders:0:9", b"v9")])
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert failed.ids(Status.FAILURE) == ("orders:0:9",)
        assert f"sqlite database {db} is locked" in failed["orders:0:9"].err
        assert "orders:0:9" not in rows(db)
        # The retry, once the lock is gone, succeeds.
        (await client.write([datum("orders:0:9", b"v9")])).assert_all_ok()
        assert rows(db)["orders:0:9"][1] == b"v9"


async def test_on_success_sink_sends_a_message_with_headers(sock_dir: Path) -> None:
    sent = datum("orders:2:5", b"paid", keys=["cust-1", "eu"], headers={"trace": "t-1"})
    async with (
        sink_process(EXAMPLES / "on_success_sink.py", sock_dir) as sink,
        connect(sink.socket_path) as client,
    ):
        results = await client.write([sent])
    r = results["orders:2:5"]
    assert r.status == Status.ON_SUCCESS
    msg = r.message
    assert msg is not None and (msg.value, msg.keys) == (b"paid", ("cust-1", "eu"))
    assert dict(msg.headers) == {
        "trace": "t-1",
        "x-stored-by": "on-success-example",
        "x-source-id": "orders:2:5",
    }


async def test_json_sink_sends_json_on_and_dead_letters_the_rest(sock_dir: Path) -> None:
    async with (
        sink_process(EXAMPLES / "json_sink.py", sock_dir) as sink,
        connect(sink.socket_path) as client,
    ):
        results = await client.write(
            [datum("orders:0:1", b'{"order": 1}'), datum("orders:0:2", b"order 2")]
        )
    good, bad = results["orders:0:1"], results["orders:0:2"]
    assert good.status == Status.ON_SUCCESS and good.message is None
    assert bad.status == Status.FALLBACK
    assert bad.err.startswith("not JSON: ")


async def test_examples_readme_names_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for script in EXAMPLES.glob("*.py"):
        assert script.name in readme


async def test_sdk_image_example_sink_prints_and_acknowledges(sock_dir: Path) -> None:
    sink_py = EXAMPLES.parent / "06-sdk-image" / "sink.py"
    async with sink_process(sink_py, sock_dir) as sink, connect(sink.socket_path) as client:
        sent = datum("orders:1:4", b"12345", keys=["eu", "c1"])
        (await client.write([sent], path="batch")).assert_all_ok()
    assert "orders:1:4 key=eu/c1 bytes=5" in sink.output()
