"""How the Kafka source gathers a batch (sources/read_buffer.py), broker-free: the byte
budget, the stash of records consumed beyond a batch, records of ended ownerships dropped
from it. Records are real confluent-kafka Messages built in memory."""

from __future__ import annotations

from typing import Any

import confluent_kafka as ck

from sink_runtime.dataplane.sources.read_buffer import (
    STASH_LIMIT,
    ByteBudget,
    Chunk,
    Gathering,
    Stash,
    within_bytes,
)


def msg(offset: int, size: int = 10, partition: int = 0) -> Any:
    return ck.Message(topic="t", partition=partition, offset=offset, value=b"v" * size)


def offsets(chunks: list[Chunk]) -> list[int]:
    return [m.offset() for c in chunks for m in c.messages]


def test_the_stash_gives_the_oldest_records_first_and_keeps_their_generation() -> None:
    stash = Stash()
    stash.add(Chunk(1, [msg(0), msg(1), msg(2)]))
    stash.add(Chunk(2, []))  # an empty consume adds nothing
    stash.add(Chunk(3, [msg(3)]))
    taken = stash.take(2)
    assert offsets(taken) == [0, 1] and [c.generation for c in taken] == [1]
    stash.put_back(taken)
    taken = stash.take(10)
    assert offsets(taken) == [0, 1, 2, 3] and [c.generation for c in taken] == [1, 1, 3]
    assert not stash


def test_the_stash_forgets_the_records_of_partitions_that_left() -> None:
    stash = Stash()
    stash.add(Chunk(1, [msg(0, partition=0), msg(0, partition=1)]))
    stash.add(Chunk(1, [msg(1, partition=1)]))
    stash.forget([("t", 1)])
    assert [(m.partition(), m.offset()) for c in stash.chunks for m in c.messages] == [(0, 0)]
    assert len(stash.chunks) == 1  # a chunk left empty is gone


def test_serving_events_takes_in_little_once_the_stash_holds_a_batch() -> None:
    stash = Stash()
    assert stash.room(STASH_LIMIT + 5, max_bytes=100) == STASH_LIMIT
    stash.add(Chunk(1, [msg(0, size=60), msg(1, size=60)]))
    assert stash.room(50, max_bytes=1000) == 50
    assert stash.room(50, max_bytes=120) == 1


def test_the_budget_asks_for_what_the_bytes_left_take_at_the_size_seen_last() -> None:
    budget = ByteBudget(1000)
    assert budget.want(500, 0) == 500  # sizes not known yet
    assert budget.seen([msg(0, 100), msg(1, 300)]) == 400
    assert budget.want(500, 0) == 5  # 200 bytes a record
    assert budget.want(500, 900) == 1  # at least one
    assert budget.want(3, 0) == 3


def test_a_batch_closes_at_its_count_or_its_bytes() -> None:
    budget = ByteBudget(100)
    batch = Gathering(3, budget, [])
    batch.add(Chunk(1, [msg(0), msg(1)]))
    assert not batch.full and batch.want() == 1
    batch.add(Chunk(1, [msg(2)]))
    assert batch.full
    batch = Gathering(10, budget, [Chunk(1, [msg(0, 60)])])
    assert batch.count == 1 and batch.size == 60 and not batch.full
    batch.add(Chunk(2, [msg(1, 60)]))
    assert batch.full


def test_what_passes_the_byte_budget_is_read_first_next_time() -> None:
    stash = Stash()
    stash.add(Chunk(9, [msg(10)]))
    batch = Gathering(10, ByteBudget(100), [])
    batch.add(Chunk(1, [msg(0, 40), msg(1, 40)]))
    batch.add(Chunk(2, [msg(2, 40), msg(3, 40)]))
    kept = batch.close(stash)
    assert offsets(kept) == [0, 1]
    assert offsets(stash.take(10)) == [2, 3, 10]


def test_a_record_larger_than_the_budget_is_a_batch_of_one() -> None:
    head, rest = within_bytes([Chunk(1, [msg(0, 500), msg(1, 5)])], 100)
    assert offsets(head) == [0] and offsets(rest) == [1]
    stash = Stash()
    batch = Gathering(10, ByteBudget(100), [])
    batch.add(Chunk(1, [msg(0, 500)]))
    assert offsets(batch.close(stash)) == [0] and not stash


def test_a_batch_within_its_budget_is_left_whole() -> None:
    chunks = [Chunk(1, [msg(0, 50)]), Chunk(2, [msg(1, 50)])]
    assert within_bytes(chunks, 100) == (chunks, [])
