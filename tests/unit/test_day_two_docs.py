"""docs/operations.md's day-two procedures: every `udsink replay` / `udsink offsets` command
they show is accepted by the command's own parser, and the times they show parse.

The commands' behaviour is tested against the real broker in tests/kafka/test_day_two.py; this
keeps the documented spelling of the flags from drifting away from the parsers.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from udsink_cli import offsets, replay
from udsink_cli.kafkaconn import parse_datetime

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
PARSERS = {"replay": replay.parse_args, "offsets": offsets.parse_args}


def documented_commands() -> list[list[str]]:
    text = OPERATIONS.read_text(encoding="utf-8")
    start = text.index("## Day-two procedures")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else None]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    lines = [line for b in blocks for line in b.splitlines() if line.startswith("udsink ")]
    return [shlex.split(line, comments=True) for line in lines]


def test_the_procedures_show_both_commands() -> None:
    names = {argv[1] for argv in documented_commands()}
    assert names == set(PARSERS)


@pytest.mark.parametrize("argv", documented_commands(), ids=shlex.join)
def test_each_documented_command_parses(argv: list[str]) -> None:
    args = PARSERS[argv[1]](argv[2:])
    for name in ("since", "until", "to_datetime"):
        value = getattr(args, name, None)
        if value is not None:
            assert parse_datetime(f"--{name}", value) > 0
