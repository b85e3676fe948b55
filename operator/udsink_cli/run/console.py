"""What a person watching `udsink run` sees: the live progress line, stalled writes, every
sink's output prefixed by its role, a built-in log sink's lines, and the summary at the end."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from sink_runtime.dataplane.metrics import ATTEMPT_COUNTS, COUNT_MEANINGS, MESSAGE_COUNTS, Counts
from sink_runtime.logs import SHOWN_IDS, ids_text

if TYPE_CHECKING:
    from rich.console import Console

STALL_SHOWN_AFTER_S = 2.0  # a write waiting this long is shown under the progress line


def progress_line(c: Counts, elapsed_s: float) -> str:
    """The live line: message counts, then the attempt counts that are not zero."""
    rate = c.read / elapsed_s if elapsed_s > 0 else 0.0
    parts = [f"read {c.read:,} ({rate:,.0f}/s)"]
    parts += [f"{name} {c[name]:,}" for name in MESSAGE_COUNTS[1:]]
    parts += [f"{name} {c[name]:,}" for name in ATTEMPT_COUNTS if c[name]]
    return "  ".join(parts)


def stall_lines(writing: Mapping[str, tuple[float, int]], now: float) -> list[str]:
    """One line per sink role whose current write has waited STALL_SHOWN_AFTER_S or more."""
    return [
        f"{role} sink: no answer for {now - since:.0f}s to a write of {n:,} messages"
        for role, (since, n) in sorted(writing.items())
        if now - since >= STALL_SHOWN_AFTER_S
    ]


def headline(summary: Mapping[str, Any]) -> str:
    """The summary's first line: how the run ended, and any message not delivered."""
    m = summary["messages"]
    # No name when the UDSink could not be read.
    name, outcome = summary["name"] or "udsink run", summary["outcome"]
    if outcome == "completed":
        line = f"{name}: completed: {m['read']:,} messages read, {m['acked']:,} acked"
    elif outcome == "gave-up":
        ids = [e["id"] for e in summary["never_succeeded"]]
        line = (
            f"{name}: gave up: {len(ids):,} messages never succeeded within the retry "
            f"budget: {ids_text(ids)}"
        )
    else:
        reason = summary["reason"].splitlines()[0]
        line = f"{name}: {reason if reason.startswith(outcome) else f'{outcome}: {reason}'}"
    if m["dropped"]:
        line += f"; {m['dropped']:,} messages DROPPED (the log names each)"
    if summary["abandoned"]:
        line += f"; {summary['abandoned']:,} in flight left uncommitted"
    return line


def render_summary(summary: Mapping[str, Any], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, highlight=False)
    # Whole lines, never wrapped by us: the first line is what a script or a person greps.
    console.print(Text(headline(summary)), soft_wrap=True)
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("name")
    table.add_column("count", justify="right")
    table.add_column("what it counts")
    for group in ("messages", "attempts"):
        for name, value in summary[group].items():
            table.add_row(name, f"{value:,}", COUNT_MEANINGS[name])
        table.add_section()
    table.add_row("abandoned", f"{summary['abandoned']:,}", "in flight at the end, not committed")
    table.add_row("elapsed", f"{summary['elapsed_s']:.2f}s", f"{summary['rate_per_s']:,.0f}/s read")
    console.print(table)
    if summary.get("consumer_group"):
        console.print(Text(f"consumer group: {summary['consumer_group']}"), soft_wrap=True)
    for entry in summary["never_succeeded"][:SHOWN_IDS]:
        console.print(Text(f"never succeeded: {entry['id']}: {entry['last']}"), soft_wrap=True)


class Output:
    """Where the run's own lines, its log lines and its sinks' lines go, without colliding.

    On a terminal everything is printed through one rich Console, which draws the live
    progress display below the lines; elsewhere each line is written whole under a lock.
    """

    def __init__(self, stream: TextIO, console: Console | None) -> None:
        self.stream = stream
        self.console = console
        self._lock = threading.Lock()

    def line(self, text: str, *, prefix: str = "") -> None:
        if self.console is not None:
            from rich.text import Text

            self.console.print(
                Text.assemble((prefix, "cyan"), text), soft_wrap=True, highlight=False
            )
            return
        with self._lock:
            self.stream.write(f"{prefix}{text}\n")
            self.stream.flush()

    def sink_line(self, role: str, text: str) -> None:
        self.line(text, prefix=f"{role} | ")


class LogSinkLines(logging.Handler):
    """The built-in log sink's lines, shown like a sink's own output (`primary | id=...`)."""

    def __init__(self, output: Output) -> None:
        super().__init__(logging.INFO)
        self.output = output

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        role, _, rest = message.partition("] ")
        if role.startswith("[") and rest:
            self.output.sink_line(role[1:], rest)
        else:
            self.output.line(message)
