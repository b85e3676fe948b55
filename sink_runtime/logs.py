"""Structured logging for the SDK server and the data plane: one line per event, with fields.

Separate so both processes log alike: a line about a batch carries `batch_size` and the ids
involved (a truncated list), so "what happened to message X" can be answered by searching the
logs of either container for its id. JSON (one object per line) is the default when the
output is not a terminal, as in a pod; text is the default on a terminal.

Fields are passed the standard way, `log.info("...", extra=batch_fields(ids))`, so a sink
author's own logging setup keeps working; this module only supplies formatters and a default
configuration.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any, get_args

from sink_runtime.config import constants

LogFormat = constants.LogFormat
LOG_FORMATS: tuple[LogFormat, ...] = get_args(constants.LogFormat)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SHOWN_IDS = 10

# Attributes every LogRecord has; anything else on a record came in through `extra`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def shown_ids(ids: Sequence[str], limit: int = SHOWN_IDS) -> list[str]:
    """The first `limit` ids, plus a last entry saying how many were left out."""
    if len(ids) <= limit:
        return list(ids)
    return [*ids[:limit], f"... {len(ids) - limit} more"]


def ids_text(ids: Sequence[str], *, quoted: bool = False, limit: int = SHOWN_IDS) -> str:
    """The first `limit` ids for a message: `a, b, c and 7 more`; `quoted` shows each as a
    Python literal (for ids a sink made up, which may be empty or hold commas)."""
    more = len(ids) - limit
    shown = [repr(i) for i in ids[:limit]] if quoted else ids[:limit]
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def batch_fields(ids: Sequence[str], **more: object) -> dict[str, object]:
    """The `extra` of a log line about a batch: its size and (some of) its ids."""
    return {"batch_size": len(ids), "ids": shown_ids(ids), **more}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# Between a text line's message and its fields: a message may end in any text a sink wrote
# (its error), so the fields are set apart where a person sees them.
TEXT_FIELDS_SEPARATOR = " | "


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message | key=value ...`, for terminals."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if fields:
            line += TEXT_FIELDS_SEPARATOR + fields
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _level(level: str | int | None) -> int:
    if isinstance(level, int):
        return level
    source = "log_level" if level is not None else constants.LOG_LEVEL_ENV
    value = level if level is not None else os.environ.get(source, "") or "INFO"
    if value.upper() not in LOG_LEVELS:
        raise ValueError(
            f"{source}={value!r} is not a log level; accepted: {', '.join(LOG_LEVELS)}"
        )
    return logging.getLevelNamesMapping()[value.upper()]


def _format(fmt: str | None, stream: IO[str]) -> LogFormat:
    source = "log_format" if fmt is not None else constants.LOG_FORMAT_ENV
    value = fmt if fmt is not None else os.environ.get(source, "")
    if not value:
        return "text" if stream.isatty() else "json"
    if value in LOG_FORMATS:
        return value
    raise ValueError(f"{source}={value!r} is not a log format; accepted: {', '.join(LOG_FORMATS)}")


def formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure_logging(
    level: str | int | None = None,
    fmt: str | None = None,
    *,
    stream: IO[str] | None = None,
) -> None:
    """Set up logging for a sink server or the data plane.

    `level` and `fmt` default to UDSINK_LOG_LEVEL (INFO) and UDSINK_LOG_FORMAT. The root
    logger gets a handler only when it has none, so a program that configured logging itself
    keeps its setup; the level of udsink's own loggers (`sink_runtime.*`) is always set.
    """
    out = stream if stream is not None else sys.stderr
    lvl = _level(level)
    chosen = _format(fmt, out)  # checked even when unused: a typo should not go unnoticed
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(out)
        handler.setFormatter(formatter(chosen))
        root.addHandler(handler)
        root.setLevel(lvl)
    logging.getLogger("sink_runtime").setLevel(lvl)
