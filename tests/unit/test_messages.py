"""The message table: a template gives the operator's text and the CRD's CEL messageExpression,
and both say the same words for the same values (evaluated by cel-python)."""

from __future__ import annotations

import celpy
import pytest
from udsink_operator import messages
from udsink_operator.messages import Message, cel_quoted, cel_string


def evaluate(expression: str, value: str = "") -> str:
    env = celpy.Environment()
    program = env.program(env.compile(expression))
    return str(program.evaluate({"self": celpy.celtypes.StringType(value)}))


@pytest.mark.parametrize(
    "text", ["plain", "it's", 'say "hi"', "back\\slash", "{braces}", "", "ünïcode"]
)
def test_cel_string_round_trips(text: str) -> None:
    assert evaluate(cel_string(text)) == text


@pytest.mark.parametrize("value", ["kafka", "it's", "a\\b", ""])
def test_a_pattern_message_says_the_same_in_both_homes(value: str) -> None:
    message = messages.BROKER
    expected = message.text(got=f'"{value}"')
    assert expected == f'must be host:port, for example kafka:9092 (got "{value}")'
    assert evaluate(message.cel(got=cel_quoted("self")), value) == expected


def test_slots_take_any_cel_string_expression() -> None:
    message = Message("cap ({cap}) must be at least interval ({interval})")
    expression = message.cel(cap="self", interval=cel_string("200ms"))
    assert evaluate(expression, "100ms") == message.text(cap="100ms", interval="200ms")


def test_accepted_text_with_braces_is_not_a_slot() -> None:
    message = messages.must_be("one of {a, b}")
    assert message.text(got='"c"') == 'must be one of {a, b} (got "c")'
    assert evaluate(message.cel(got=cel_quoted("self")), "c") == message.text(got='"c"')
