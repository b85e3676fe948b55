"""KeyHeaderCodec: how a message's key list travels in Kafka headers, and back
(docs/keys-and-headers.md).

Kafka has one record key; our messages have a list of keys. Joining them into the record key
loses the boundaries as soon as a key contains the separator, so the list also travels in
headers, losslessly:

- `split`  : `__key_len` = N, then `__key_0` .. `__key_{N-1}` (Numaflow's layout);
- `single` : one header (default `__keys`) holding a JSON array of strings;
- `none`   : no key headers.

The Kafka sink encodes, the Kafka source decodes; the codec is pure (no Kafka types), so both
sides and the property tests share one definition of "well formed". Decoding reads either
layout (split first), whatever the writer chose.

Precedence when the sink builds a record's headers: the message's own headers (when
propagated), then the static headers, then the key headers. Key headers win over any
same-named header; and when a layout is written, every other header of either layout's names
(`__key_len`, `__key_<digits>`, the keys header) is dropped, so a stale key from an earlier hop
can never be mistaken for one of ours. With `none`, headers pass through untouched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

from sink_runtime.config.constants import (
    DEFAULT_KEY_SEPARATOR,
    DEFAULT_KEYS_HEADER,
    KEY_HEADER_PREFIX,
    KEY_LEN_HEADER,
    KeyHeaderMode,
)


@dataclass(frozen=True, slots=True)
class KeysFound:
    """Well-formed key headers: these are the message's keys (possibly none)."""

    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NoKeyHeaders:
    """The record carries no key headers: its record key (if any) is the single key."""


@dataclass(frozen=True, slots=True)
class MalformedKeyHeaders:
    """Key headers are present but unusable; `reason` names the header and the problem."""

    reason: str


DecodedKeys: TypeAlias = KeysFound | NoKeyHeaders | MalformedKeyHeaders


def key_header_name(index: int) -> str:
    return f"{KEY_HEADER_PREFIX}{index}"


def is_split_key_header(name: str) -> bool:
    """`__key_len` or `__key_<digits>`: the names the split layout owns."""
    if name == KEY_LEN_HEADER:
        return True
    suffix = name.removeprefix(KEY_HEADER_PREFIX)
    return suffix != name and suffix.isascii() and suffix.isdigit()


def record_key(keys: Sequence[str], separator: str = DEFAULT_KEY_SEPARATOR) -> str | None:
    """The Kafka record key for `setKey`: keys joined by `separator`; no keys, no key."""
    return separator.join(keys) if keys else None


@lru_cache(maxsize=4096)
def _owned(mode: KeyHeaderMode, keys_header: str, name: str) -> bool:
    # Cached: asked for every header of every record the Kafka sink writes.
    if mode == "none":
        return False
    return name == keys_header or is_split_key_header(name)


@dataclass(frozen=True, slots=True)
class KeyHeaderCodec:
    mode: KeyHeaderMode = "split"
    keys_header: str = DEFAULT_KEYS_HEADER

    # --- writing ---

    def encode(self, keys: Sequence[str]) -> dict[str, str]:
        """The key headers for `keys` (an empty list is encoded too, so it round-trips)."""
        match self.mode:
            case "split":
                out = {KEY_LEN_HEADER: str(len(keys))}
                out.update((key_header_name(i), k) for i, k in enumerate(keys))
                return out
            case "single":
                return {self.keys_header: json.dumps(list(keys), ensure_ascii=False)}
            case "none":
                return {}

    def owns(self, name: str) -> bool:
        """Whether a header of this name is replaced by (or dropped for) the key headers.

        Writing either layout drops both layouts' names from the other headers, so a record
        carries exactly one key encoding (a stale `__key_len` would otherwise win on decode).
        """
        return _owned(self.mode, self.keys_header, name)

    def record_headers(
        self,
        keys: Sequence[str],
        message_headers: Mapping[str, str],
        *,
        propagate: bool = True,
        static: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """All headers of an outgoing record, in the documented precedence (module doc)."""
        out: dict[str, str] = {}
        if propagate:
            out.update((k, v) for k, v in message_headers.items() if not self.owns(k))
        if static:
            out.update((k, v) for k, v in static.items() if not self.owns(k))
        out.update(self.encode(keys))
        return out

    # --- reading ---

    def decode(self, headers: Mapping[str, str]) -> DecodedKeys:
        """Keys from headers: split layout first, then the single header, else none.

        Never raises: malformed input is reported as MalformedKeyHeaders with the reason.
        """
        if KEY_LEN_HEADER in headers:
            return _decode_split(headers)
        if self.keys_header in headers:
            return _decode_single(self.keys_header, headers[self.keys_header])
        return NoKeyHeaders()


def _decode_split(headers: Mapping[str, str]) -> DecodedKeys:
    raw = headers[KEY_LEN_HEADER]
    # ASCII digits only (str.isdigit accepts other scripts' digits, int() accepts "+1", " 1").
    if not (raw.isascii() and raw.isdigit()):
        return MalformedKeyHeaders(
            f"header {KEY_LEN_HEADER}={raw[:40]!r} is not a non-negative integer"
        )
    count = int(raw)
    # Each key needs its own header: a count beyond the header count cannot be satisfied
    # (and this bounds the work for hostile input).
    if count > len(headers):
        return MalformedKeyHeaders(
            f"header {KEY_LEN_HEADER}={count} but the record has only {len(headers)} headers"
        )
    keys: list[str] = []
    for i in range(count):
        value = headers.get(key_header_name(i))
        if value is None:
            return MalformedKeyHeaders(
                f"header {KEY_LEN_HEADER}={count} but {key_header_name(i)} is missing"
            )
        keys.append(value)
    return KeysFound(tuple(keys))


def _decode_single(name: str, raw: str) -> DecodedKeys:
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError) as err:
        return MalformedKeyHeaders(f"header {name} is not JSON ({err}): {raw[:40]!r}")
    if not isinstance(parsed, list) or not all(isinstance(k, str) for k in parsed):
        return MalformedKeyHeaders(
            f"header {name} must be a JSON array of strings, got {raw[:40]!r}"
        )
    return KeysFound(tuple(parsed))


__all__ = [
    "DecodedKeys",
    "KeyHeaderCodec",
    "KeyHeaderMode",
    "KeysFound",
    "MalformedKeyHeaders",
    "NoKeyHeaders",
    "is_split_key_header",
    "key_header_name",
    "record_key",
]
