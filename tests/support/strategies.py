"""Hypothesis strategies shared by the property tests: wire-safe text and whole Datums."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from sink_runtime.types import Datum

# Text a protobuf string field can carry (valid UTF-8, no lone surrogates), kept short.
wire_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
# The whole datetime range: the earliest and latest times have the longest wire encoding.
any_utc_time = st.datetimes(timezones=st.just(UTC))


def datums(
    *, value_size: int = 300, times: st.SearchStrategy[datetime] = any_utc_time
) -> st.SearchStrategy[Datum]:
    """Datums with any id, value, up to 3 keys and 3 headers, and times from `times`."""
    return st.builds(
        Datum,
        id=wire_text,
        value=st.binary(max_size=value_size),
        keys=st.lists(wire_text, max_size=3).map(tuple),
        event_time=times,
        watermark=times,
        headers=st.dictionaries(wire_text, wire_text, max_size=3),
    )
