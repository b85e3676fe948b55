"""Structured log lines: fields from `extra`, JSON and text, and clear configuration errors."""

from __future__ import annotations

import io
import json
import logging

import pytest

from sink_runtime.logs import (
    JsonFormatter,
    TextFormatter,
    batch_fields,
    configure_logging,
    shown_ids,
)


def record(**extra: object) -> logging.LogRecord:
    r = logging.makeLogRecord({"name": "sink_runtime.server", "levelname": "ERROR", "msg": "m %s"})
    r.args = ("x",)
    r.__dict__.update(extra)
    return r


def test_ids_are_truncated_with_a_count() -> None:
    ids = [str(i) for i in range(13)]
    assert shown_ids(ids) == [*ids[:10], "... 3 more"]
    assert batch_fields(ids, stream="s") == {"batch_size": 13, "ids": shown_ids(ids), "stream": "s"}


def test_json_lines_carry_the_batch_fields() -> None:
    line = json.loads(JsonFormatter().format(record(**batch_fields(["a", "b"]))))
    assert line["message"] == "m x" and line["level"] == "ERROR"
    assert line["batch_size"] == 2 and line["ids"] == ["a", "b"]
    assert line["logger"] == "sink_runtime.server" and line["time"].endswith("+00:00")


def test_text_lines_carry_the_batch_fields() -> None:
    line = TextFormatter().format(record(batch_size=1, ids=["a"]))
    assert line.endswith("ERROR sink_runtime.server: m x | batch_size=1 ids=['a']")


def test_text_lines_set_the_fields_apart_from_a_message_ending_in_a_sinks_words() -> None:
    # A FAILURE's error text is the sink's own and ends the message.
    r = logging.makeLogRecord({"name": "f", "levelname": "WARNING", "msg": "FAILED: %s"})
    r.args = ("every 10th",)
    r.__dict__.update(batch_fields(["file:0:10"]))
    line = TextFormatter().format(r)
    message, fields = line.split(": ", 1)[1].split(" | ")
    assert message == "FAILED: every 10th"
    assert fields == "batch_size=1 ids=['file:0:10']"
    assert " | " not in TextFormatter().format(record())  # no fields, no separator


def test_bad_level_or_format_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"log_level='loud' is not a log level; accepted: DEBUG"):
        configure_logging("loud")
    monkeypatch.setenv("UDSINK_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match=r"UDSINK_LOG_FORMAT='xml' is not a log format"):
        configure_logging("INFO", stream=io.StringIO())


def test_configure_sets_the_level_of_our_loggers() -> None:
    before = logging.getLogger("sink_runtime").level
    try:
        configure_logging("DEBUG", "json", stream=io.StringIO())
        assert logging.getLogger("sink_runtime").level == logging.DEBUG
    finally:
        logging.getLogger("sink_runtime").setLevel(before)
