"""Which datums of a Kafka batch may still be delivered (sources/ownership.py, the check
`KafkaSource.still_owned` makes with the owner thread's published tenures) and when lag is
refreshed (sources/lag.py), broker-free, with the real offset ledger."""

from __future__ import annotations

from sink_runtime.dataplane.sources.lag import LagSchedule, partition_lag
from sink_runtime.dataplane.sources.offset_ledger import OffsetLedger, ReadToken
from sink_runtime.dataplane.sources.ownership import kept_owned, kept_unrefused, ranges
from sink_runtime.testing import datum
from sink_runtime.types import Datum

A, B = ("t", 0), ("t", 1)


def datums(*ids: str) -> list[Datum]:
    return [datum(i, b"v") for i in ids]


def read(ledger: OffsetLedger) -> ReadToken:
    token, refused = ledger.read([(ledger.generation, {A: (12, 2), B: (6, 1)})])
    assert token is not None and refused == [set()]
    return token


def test_a_batch_whose_partitions_stayed_is_delivered_whole() -> None:
    ledger = OffsetLedger()
    ledger.assign([A, B])
    token = read(ledger)
    batch = datums("t:0:10", "t:0:11", "t:1:5")
    kept, dropped = kept_owned(batch, token, ledger.owned())
    assert kept is batch and dropped == []


def test_datums_of_a_revoked_partition_are_not_delivered() -> None:
    ledger = OffsetLedger()
    ledger.assign([A, B])
    token = read(ledger)
    ledger.end([B])
    kept, dropped = kept_owned(datums("t:0:10", "t:1:5", "t:0:11"), token, ledger.owned())
    assert [d.id for d in kept] == ["t:0:10", "t:0:11"] and dropped == ["t:1:5"]


def test_a_partition_that_came_back_is_another_tenure() -> None:
    # Revoked and assigned again while the batch was delivered: its records are read again
    # from the committed offset, so this batch's copy is not delivered.
    ledger = OffsetLedger()
    ledger.assign([A, B])
    token = read(ledger)
    ledger.end([A, B])
    ledger.assign([A, B])
    kept, dropped = kept_owned(datums("t:0:10", "t:1:5"), token, ledger.owned())
    assert kept == [] and dropped == ["t:0:10", "t:1:5"]


def test_refused_chunks_drop_only_their_partitions() -> None:
    batch = datums("t:0:1", "t:1:1", "t:0:2", "t:1:2")
    kept, dropped = kept_unrefused(batch, [(0, 2), (2, 4)], [{B}, set()])
    assert [d.id for d in kept] == ["t:0:1", "t:0:2", "t:1:2"] and dropped == ["t:1:1"]


def test_dropped_ids_are_logged_as_ranges() -> None:
    assert ranges(["t:1:7", "t:0:100", "t:0:199", "t:0:150"]) == "t[0] 100..199, t[1] 7"


def test_lag_is_refreshed_on_schedule_while_owned_and_connected() -> None:
    lag = LagSchedule(refresh_s=5.0)
    assert not lag.take(10.0, owned=False, connected=True)
    assert not lag.take(10.0, owned=True, connected=False)
    assert lag.take(10.0, owned=True, connected=True)
    assert not lag.take(14.9, owned=True, connected=True)
    lag.soon()  # an assignment: the new partitions' lag at the next chance
    assert lag.take(11.0, owned=True, connected=True)
    assert lag.take(16.0, owned=True, connected=True)


def test_partition_lag_is_the_high_watermark_minus_the_committed_offset() -> None:
    assert partition_lag(low=3, high=10, committed=7) == 3
    assert partition_lag(low=3, high=10, committed=None) == 7  # nothing committed yet
    assert partition_lag(low=0, high=5, committed=9) == 0
    assert partition_lag(low=0, high=-1001, committed=None) is None  # no such partition
    assert partition_lag(low=0, high=None, committed=None) is None
