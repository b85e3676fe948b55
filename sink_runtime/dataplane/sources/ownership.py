"""Which datums of a Kafka batch this member may still deliver, and how they are named in logs.

Pure: a datum's partition comes from its id (`<topic>:<partition>:<offset>`), ownership from
the offset ledger's tenures. The event loop asks with a snapshot of the owner thread's tenures
(`kept_owned`); the owner thread asks when a batch is made (`kept_unrefused`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sink_runtime.dataplane.sources.offset_ledger import (
    Ended,
    Partition,
    ReadToken,
    still_owned,
)
from sink_runtime.types import Datum


def coordinates(datum_id: str) -> tuple[str, int, int]:
    topic, partition, offset = datum_id.rsplit(":", 2)
    return topic, int(partition), int(offset)


def partition_of(datum_id: str) -> Partition:
    topic, partition, _ = coordinates(datum_id)
    return topic, partition


def kept_owned(
    datums: list[Datum], token: ReadToken, owned: Mapping[Partition, int]
) -> tuple[list[Datum], list[str]]:
    """`datums` (of the batch `token` names) split into those whose partition is still in the
    tenure it was read in, by `owned` (tenure ids), and the ids of the others."""
    keep = still_owned(token, owned)
    if len(keep) == len(token.tenures):
        return datums, []
    kept: list[Datum] = []
    dropped: list[str] = []
    for d in datums:
        if partition_of(d.id) in keep:
            kept.append(d)
        else:
            dropped.append(d.id)
    return kept, dropped


def kept_unrefused(
    datums: list[Datum], bounds: list[tuple[int, int]], refused: list[set[Partition]]
) -> tuple[list[Datum], list[str]]:
    """`datums` without those of the partitions the ledger refused in each chunk (`bounds`:
    each chunk's datums), and the ids of those."""
    kept: list[Datum] = []
    dropped: list[str] = []
    for (start, end), gone in zip(bounds, refused, strict=True):
        for d in datums[start:end]:
            if gone and partition_of(d.id) in gone:
                dropped.append(d.id)
            else:
                kept.append(d)
    return kept, dropped


def ranges(ids: Iterable[str]) -> str:
    """`t[0] 100..199, t[1] 5` for datum ids: each partition's lowest and highest offset."""
    spans: dict[Partition, tuple[int, int]] = {}
    for i in ids:
        topic, partition, offset = coordinates(i)
        low, high = spans.get((topic, partition), (offset, offset))
        spans[(topic, partition)] = (min(low, offset), max(high, offset))
    return ", ".join(
        f"{t}[{p}] {lo}" if lo == hi else f"{t}[{p}] {lo}..{hi}"
        for (t, p), (lo, hi) in sorted(spans.items())
    )


def offsets_text(offsets: Mapping[Partition, int]) -> str:
    return ", ".join(f"{t}[{p}] at {o}" for (t, p), o in sorted(offsets.items()))


def ended_text(ended: Mapping[Partition, Ended]) -> str:
    return ", ".join(
        f"{t}[{p}] read to {e.read_to}, "
        + (f"committed to {e.committed}" if e.committed >= 0 else "nothing committed")
        for (t, p), e in sorted(ended.items())
    )


__all__ = [
    "coordinates",
    "ended_text",
    "kept_owned",
    "kept_unrefused",
    "offsets_text",
    "partition_of",
    "ranges",
]
