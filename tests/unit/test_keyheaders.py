"""KeyHeaderCodec codec: exact round trips, precedence, and malformed input never crashing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sink_runtime.dataplane.keyheaders import (
    KeyHeaderCodec,
    KeysFound,
    MalformedKeyHeaders,
    NoKeyHeaders,
    is_split_key_header,
    record_key,
)

# Kafka header values are UTF-8 bytes: any text without lone surrogates can travel.
key_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20)
key_lists = st.lists(
    st.one_of(key_text, st.sampled_from(["", ":", "a:b", "__key_len", '["x"]', "🔑", "\x00"])),
    max_size=12,
)
header_maps = st.dictionaries(key_text, key_text, max_size=8)
LAYOUTS = [KeyHeaderCodec("split"), KeyHeaderCodec("single"), KeyHeaderCodec("single", "x-keys")]


@pytest.mark.parametrize("codec", LAYOUTS, ids=["split", "single", "single-custom"])
@given(keys=key_lists, other=header_maps)
def test_round_trip_is_exact(codec: KeyHeaderCodec, keys: list[str], other: dict[str, str]) -> None:
    headers = codec.record_headers(keys, other)
    assert codec.decode(headers) == KeysFound(tuple(keys))
    # The reader need not know which layout the writer used.
    assert KeyHeaderCodec("split", codec.keys_header).decode(headers) == KeysFound(tuple(keys))


def test_split_layout_is_numaflows() -> None:
    assert KeyHeaderCodec("split").encode(["a", "b:c"]) == {
        "__key_len": "2",
        "__key_0": "a",
        "__key_1": "b:c",
    }


def test_single_layout_is_one_json_array() -> None:
    headers = KeyHeaderCodec("single").encode(["a", "b:c", "ü"])
    assert headers == {"__keys": '["a", "b:c", "ü"]'}
    assert json.loads(headers["__keys"]) == ["a", "b:c", "ü"]


def test_no_keys_round_trips_as_zero_keys() -> None:
    assert KeyHeaderCodec("split").encode([]) == {"__key_len": "0"}
    assert KeyHeaderCodec("split").decode({"__key_len": "0"}) == KeysFound(())
    assert KeyHeaderCodec("single").decode({"__keys": "[]"}) == KeysFound(())


def test_none_layout_writes_nothing_and_passes_headers_through() -> None:
    codec = KeyHeaderCodec("none")
    assert codec.encode(["a"]) == {}
    headers = codec.record_headers(["a"], {"__key_len": "1", "__key_0": "old", "x": "1"})
    assert headers == {"__key_len": "1", "__key_0": "old", "x": "1"}


def test_key_headers_win_and_stale_key_headers_are_dropped() -> None:
    message = {"__key_len": "3", "__key_0": "o0", "__key_2": "o2", "__keys": "[]", "x": "m"}
    headers = KeyHeaderCodec("split").record_headers(
        ["k"], message, static={"x": "s", "__key_0": "static", "team": "t"}
    )
    # static wins over the message's own header; key headers win over both; stale ones go.
    assert headers == {"x": "s", "team": "t", "__key_len": "1", "__key_0": "k"}

    single = KeyHeaderCodec("single").record_headers(["k"], message)
    assert single == {"x": "m", "__keys": '["k"]'}


def test_propagate_false_keeps_only_static_and_key_headers() -> None:
    headers = KeyHeaderCodec("split").record_headers(
        ["k"], {"x": "m"}, propagate=False, static={"s": "1"}
    )
    assert headers == {"s": "1", "__key_len": "1", "__key_0": "k"}


def test_record_key_joins_with_separator() -> None:
    assert record_key(["a", "b"]) == "a:b"
    assert record_key(["a", "b"], "/") == "a/b"
    assert record_key([""]) == ""
    assert record_key([]) is None


def test_absent_key_headers() -> None:
    assert KeyHeaderCodec().decode({"x": "1", "__key_0": "a"}) == NoKeyHeaders()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"__key_len": "two"}, "header __key_len='two' is not a non-negative integer"),
        ({"__key_len": "-1"}, "header __key_len='-1' is not a non-negative integer"),
        ({"__key_len": " 1", "__key_0": "a"}, "is not a non-negative integer"),
        ({"__key_len": "\u0661", "__key_0": "a"}, "is not a non-negative integer"),
        ({"__key_len": "2", "__key_0": "a", "x": "y"}, "__key_len=2 but __key_1 is missing"),
        ({"__key_len": "99999999999999999999"}, "but the record has only 1 headers"),
        ({"__keys": "[1, 2]"}, "header __keys must be a JSON array of strings"),
        ({"__keys": '{"a": 1}'}, "header __keys must be a JSON array of strings"),
        ({"__keys": '["a"'}, "header __keys is not JSON"),
        ({"__keys": "[" * 100_000}, "header __keys is not JSON"),
    ],
)
def test_malformed_key_headers_name_the_header(headers: dict[str, str], reason: str) -> None:
    decoded = KeyHeaderCodec().decode(headers)
    assert isinstance(decoded, MalformedKeyHeaders)
    assert reason in decoded.reason


@given(
    headers=st.dictionaries(
        st.one_of(key_text, st.sampled_from(["__key_len", "__key_0", "__key_1", "__keys"])),
        key_text,
        max_size=10,
    )
)
def test_decode_never_raises(headers: dict[str, str]) -> None:
    decoded = KeyHeaderCodec().decode(headers)
    assert isinstance(decoded, KeysFound | NoKeyHeaders | MalformedKeyHeaders)


@given(
    n=st.integers(min_value=0, max_value=5),
    values=st.lists(key_text, max_size=5),
    raw_len=st.text(max_size=5),
)
def test_split_decode_is_total(n: int, values: list[str], raw_len: str) -> None:
    headers = {f"__key_{i}": v for i, v in enumerate(values[:n])}
    headers["__key_len"] = raw_len
    decoded = KeyHeaderCodec().decode(headers)
    if raw_len.isascii() and raw_len.isdigit() and int(raw_len) <= min(n, len(values)):
        assert decoded == KeysFound(tuple(values[: int(raw_len)]))
    else:
        assert isinstance(decoded, MalformedKeyHeaders)


def test_split_header_names() -> None:
    assert is_split_key_header("__key_len")
    assert is_split_key_header("__key_12")
    assert not is_split_key_header("__key_")
    assert not is_split_key_header("__key_x")
    assert not is_split_key_header("__key_\u0661")
    assert not is_split_key_header("__keys")
