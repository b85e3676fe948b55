"""A sink that writes datums into SQLite: idempotent, and honest about a locked database.

- Idempotent: rows are upserted by datum id. The id is stable across redeliveries
  (`<topic>:<partition>:<offset>` for Kafka), so a batch delivered twice (after a crash, or
  a retry) leaves one row per message, not two.
- One transaction per batch: the batch is the unit of acknowledgement anyway.
- A locked database is a transient failure: every datum of the batch is answered FAILURE
  with the reason, and the data plane retries it with backoff. Any other error raises: the
  stream ends with the error and the batch is sent again.
- The connection is opened in setup() and closed in close(), once per process (also on
  SIGTERM). Sync hooks and the handler run on the same worker thread, which SQLite requires.

Environment: SQLITE_SINK_PATH (default `sink.db`), SQLITE_SINK_LOCK_TIMEOUT_S (default 5).
"""

import json
import os
import sqlite3
from collections.abc import Iterator

from sink_runtime import Datum, Response, Responses, Sinker, serve

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    keys TEXT NOT NULL,
    value BLOB NOT NULL,
    event_time TEXT NOT NULL,
    headers TEXT NOT NULL
)
"""
UPSERT = """
INSERT INTO messages (id, keys, value, event_time, headers) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    keys = excluded.keys, value = excluded.value,
    event_time = excluded.event_time, headers = excluded.headers
"""


class SqliteSink(Sinker):
    def __init__(self, path: str, lock_timeout_s: float) -> None:
        self.path = path
        self.lock_timeout_s = lock_timeout_s
        self.db: sqlite3.Connection | None = None

    def setup(self) -> None:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per batch.
        self.db = sqlite3.connect(self.path, timeout=self.lock_timeout_s, isolation_level=None)
        self.db.execute(SCHEMA)

    def handler(self, datums: Iterator[Datum]) -> Responses:
        assert self.db is not None, "setup() opens the database"
        batch = list(datums)
        rows = [
            (
                d.id,
                json.dumps(d.keys),
                d.value,
                d.event_time.isoformat(),
                json.dumps(dict(d.headers)),
            )
            for d in batch
        ]
        try:
            self.db.execute("BEGIN IMMEDIATE")  # take the write lock now, or fail now
            self.db.executemany(UPSERT, rows)
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            reason = f"sqlite database {self.path} is locked: {e}"
            return Responses.of(Response.failure(d.id, reason) for d in batch)
        return Responses.of(Response.ok(d.id) for d in batch)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


if __name__ == "__main__":
    serve(
        SqliteSink(
            os.environ.get("SQLITE_SINK_PATH", "sink.db"),
            float(os.environ.get("SQLITE_SINK_LOCK_TIMEOUT_S", "5")),
        )
    )
