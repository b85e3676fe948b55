"""The JSON-lines file source: replay exact cases (keys, headers, values) through the data plane.

One object per line: `{"value": "text"}` or `{"valueBase64": "..."}`, optional `"keys": [...]`,
`"headers": {...}` and `"eventTime"` (ISO 8601); blank lines are skipped. The whole file is
checked at start-up, so a typo fails before anything is sent, with the line number and field.
Datum ids are `file:0:<line number>` (one partition; the offset is the 1-based line number).
The source records what was acknowledged (`acked_ids`, `committed`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sink_runtime.config import FileSourceConfig
from sink_runtime.dataplane.protocols import SourceBatch
from sink_runtime.types import Datum

ID_PREFIX = "file"
FIELDS = ("value", "valueBase64", "keys", "headers", "eventTime")


class FileSourceError(ValueError):
    """The file cannot be replayed; the message names the file, line and field."""


def _fail(path: Path, line_no: int, what: str) -> FileSourceError:
    return FileSourceError(f"{path}:{line_no}: {what}")


def _value(obj: Mapping[str, Any], path: Path, line_no: int) -> bytes:
    has_text, has_b64 = "value" in obj, "valueBase64" in obj
    if has_text == has_b64:
        raise _fail(path, line_no, 'exactly one of "value" or "valueBase64" is required')
    if has_text:
        text = obj["value"]
        if not isinstance(text, str):
            raise _fail(path, line_no, f'field "value" must be a string, got {text!r:.60}')
        return text.encode()
    encoded = obj["valueBase64"]
    if not isinstance(encoded, str):
        raise _fail(path, line_no, f'field "valueBase64" must be a string, got {encoded!r:.60}')
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(
            path, line_no, f'field "valueBase64" is not valid base64: {encoded!r:.60}'
        ) from None


def _keys(obj: Mapping[str, Any], path: Path, line_no: int) -> tuple[str, ...]:
    keys = obj.get("keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _fail(path, line_no, f'field "keys" must be a list of strings, got {keys!r:.60}')
    return tuple(keys)


def _headers(obj: Mapping[str, Any], path: Path, line_no: int) -> dict[str, str]:
    headers = obj.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise _fail(
            path, line_no, f'field "headers" must map strings to strings, got {headers!r:.60}'
        )
    return headers


def _event_time(obj: Mapping[str, Any], path: Path, line_no: int) -> datetime | None:
    raw = obj.get("eventTime")
    if raw is None:
        return None
    try:
        stamp = datetime.fromisoformat(str(raw))
    except ValueError:
        raise _fail(
            path, line_no, f'field "eventTime" is not an ISO 8601 time: {raw!r:.60}'
        ) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def parse_line(text: str, path: Path, line_no: int) -> Datum:
    """One line -> one Datum, or FileSourceError naming the line and the field."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise _fail(path, line_no, f"not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(obj, dict):
        raise _fail(path, line_no, f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise _fail(
            path, line_no, f"unknown field {unknown[0]!r}; accepted fields: {', '.join(FIELDS)}"
        )
    event_time = _event_time(obj, path, line_no)
    return Datum(
        id=f"{ID_PREFIX}:0:{line_no}",
        value=_value(obj, path, line_no),
        keys=_keys(obj, path, line_no),
        headers=_headers(obj, path, line_no),
        event_time=event_time or datetime.now(UTC),
    )


def parse_file(path: Path) -> list[Datum]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise FileSourceError(f"cannot read source file {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise FileSourceError(f"source file {path} is not UTF-8: {err.reason}") from None
    return [parse_line(t, path, n) for n, t in enumerate(lines, start=1) if t.strip()]


class FileSource:
    def __init__(self, config: FileSourceConfig) -> None:
        self.path = Path(config.path)
        self._datums: list[Datum] = []
        self._next = 0
        self._started = False
        self._closed = False
        self.acked_ids: list[str] = []
        # partition -> next offset, like a Kafka commit (here: last acked line number + 1).
        self.committed: dict[int, int] = {}

    async def start(self) -> None:
        self._datums = parse_file(self.path)
        self._started = True

    async def read(self, max_messages: int, timeout_s: float) -> SourceBatch:
        if self._closed:
            return SourceBatch(datums=[])
        chunk = self._datums[self._next : self._next + max_messages]
        self._next += len(chunk)
        return SourceBatch(datums=chunk, token=None)

    async def ack(self, batch: SourceBatch) -> int:
        self.acked_ids.extend(d.id for d in batch.datums)
        for d in batch.datums:
            line = int(d.id.rsplit(":", 1)[1])
            if line + 1 > self.committed.get(0, 0):
                self.committed[0] = line + 1
        return len(batch.datums)

    async def still_owned(self, datums: list[Datum], batch: SourceBatch) -> list[Datum]:
        return datums

    @property
    def exhausted(self) -> bool:
        return self._started and self._next >= len(self._datums)

    def is_ready(self) -> bool:
        return self._started and not self._closed

    async def close(self) -> None:
        self._closed = True
