"""The Kafka source's offset ledger: per partition, what was read, handled and committed.

Pure bookkeeping, no Kafka client: the source's consumer thread (its only user) tells it what
happened (assignments, reads, handled batches, commit answers) and asks it what may be
committed. The rule it keeps: a commit never covers an offset that was read and not handled.

Tenures. A tenure is one uninterrupted ownership of a partition by this member, from the
assignment that gives it to the revocation or loss that takes it. librdkafka reads a newly
assigned partition from the group's committed offset, and below that offset everything was
handled by some member (that is what a commit says). So:
- Every chunk of records comes with the `generation` (the count of assignment changes) at
  which the consumer returned it. A chunk's records of a partition that has no tenure now, or
  whose tenure began after the chunk was returned, were read under an older ownership: they
  are refused (not delivered, never counted) and are read again from the committed offset by
  whoever owns the partition next, this member included. Records returned by the very call
  that served an assignment belong to the new tenure: librdkafka (>= 2.0.2) purges the older
  ones from such a call (its version barrier).
- Within a tenure records arrive in offset order, and each batch adds one span per partition:
  the offset after its last record and how many records it holds.
- The committable offset of a partition is the end of the longest run of handled spans from
  its tenure's first read: never past the first record read in the tenure and not handled.
  Nothing read in an ended tenure is ever counted for a later one.
- Each commit names the tenure it was made for: a late answer (a commit made at a revocation,
  answered after the partition came back) never moves a newer tenure. A commit the broker
  accepted confirms the handled records it covers, each counted once (`commit_answered`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

Partition: TypeAlias = tuple[str, int]
# One chunk's records by partition: (offset after the last record, record count).
Spans: TypeAlias = Mapping[Partition, tuple[int, int]]


@dataclass(slots=True, eq=False)
class _Span:
    end: int
    count: int
    handled: bool = False


@dataclass(slots=True, eq=False)
class _Tenure:
    id: int
    started: int  # the generation that made it
    reading: deque[_Span] = field(default_factory=deque)  # from the first span not handled
    handled: deque[_Span] = field(default_factory=deque)  # the handled run, not confirmed
    prefix_end: int = -1  # end of the handled run from the first read (-1: none yet)
    sent: int = -1  # highest offset of a commit awaiting its answer
    confirmed: int = -1  # highest offset the broker accepted in this tenure

    def read_to(self) -> int:
        return self.reading[-1].end if self.reading else self.prefix_end


@dataclass(frozen=True, slots=True)
class ReadToken:
    """One batch as the ledger knows it: by partition, the tenure it was read in (`tenures`,
    what `still_owned` compares with `OffsetLedger.owned()`) and its span."""

    seq: int
    tenures: Mapping[Partition, int]
    _spans: Mapping[Partition, _Span]


@dataclass(frozen=True, slots=True)
class Ended:
    """What a partition had in flight when its tenure ended: read up to `read_to` (exclusive),
    confirmed committed up to `committed` (-1: nothing committed in that tenure)."""

    read_to: int
    committed: int


class OffsetLedger:
    """See the module doc. Partitions are (topic, partition) pairs."""

    def __init__(self) -> None:
        self.generation = 0
        self._tenures: dict[Partition, _Tenure] = {}
        self._last_tenure = 0
        self._seq = 0
        # Commits awaiting their answer: id -> partition -> (tenure, offset).
        self._commits: dict[int, dict[Partition, tuple[_Tenure, int]]] = {}
        self._last_commit = 0
        # The group's committed offset as last seen (our accepted commits, look-ups).
        self._committed: dict[Partition, int] = {}

    # --- ownership ---

    def assign(self, partitions: Iterable[Partition]) -> None:
        """The consumer was given `partitions`: each starts a tenure."""
        self.generation += 1
        for p in partitions:
            self._last_tenure += 1
            self._tenures[p] = _Tenure(self._last_tenure, self.generation)

    def end(self, partitions: Iterable[Partition]) -> dict[Partition, Ended]:
        """`partitions` were revoked or lost: their tenures end, and what they read and did not
        commit is left to whoever reads them next (from the group's committed offset)."""
        self.generation += 1
        out: dict[Partition, Ended] = {}
        for p in partitions:
            tenure = self._tenures.pop(p, None)
            self._committed.pop(p, None)
            if tenure is not None and tenure.read_to() > max(tenure.confirmed, -1):
                out[p] = Ended(tenure.read_to(), tenure.confirmed)
        return out

    def owned(self) -> dict[Partition, int]:
        """The partitions owned now, with their tenure ids (a fresh dict: a snapshot)."""
        return {p: t.id for p, t in self._tenures.items()}

    # --- reads and handling ---

    def read(
        self, chunks: Iterable[tuple[int, Spans]]
    ) -> tuple[ReadToken | None, list[set[Partition]]]:
        """Record one batch made of `chunks` ((generation returned at, spans), in read order).

        Returns its token (None when nothing was accepted) and, per chunk, the partitions
        refused: read under an ownership that has ended since (module doc).
        """
        merged: dict[Partition, tuple[int, int]] = {}
        refused: list[set[Partition]] = []
        for generation, spans in chunks:
            gone: set[Partition] = set()
            for p, (end, count) in spans.items():
                tenure = self._tenures.get(p)
                if tenure is None or tenure.started > generation:
                    gone.add(p)
                    continue
                seen_end, seen_count = merged.get(p, (end, 0))
                merged[p] = (max(end, seen_end), seen_count + count)
            refused.append(gone)
        if not merged:
            return None, refused
        self._seq += 1
        tenures: dict[Partition, int] = {}
        spans_of: dict[Partition, _Span] = {}
        for p, (end, count) in merged.items():
            tenure = self._tenures[p]
            span = _Span(end, count)
            tenure.reading.append(span)
            tenures[p] = tenure.id
            spans_of[p] = span
        return ReadToken(self._seq, tenures, spans_of), refused

    def handled(self, token: ReadToken) -> None:
        """Every record of the batch reached a terminal outcome. Only partitions still in the
        tenure they were read in count: the others' records were not delivered here."""
        for p, tenure_id in token.tenures.items():
            tenure = self._tenures.get(p)
            if tenure is None or tenure.id != tenure_id:
                continue
            token._spans[p].handled = True
            while tenure.reading and tenure.reading[0].handled:
                done = tenure.reading.popleft()
                tenure.handled.append(done)
                tenure.prefix_end = done.end

    def next_ends(self, token: ReadToken) -> dict[Partition, int]:
        """For each partition of `token` still in its tenure: the offset after the batch's
        records, where every record read before them in the tenure is confirmed committed
        (what a commit made together with handling the batch may carry). A partition whose
        earlier records are not all committed yet is left out, as is one whose tenure ended."""
        out: dict[Partition, int] = {}
        for p, tenure_id in token.tenures.items():
            tenure = self._tenures.get(p)
            if tenure is None or tenure.id != tenure_id:
                continue
            if tenure.reading and tenure.reading[0] is token._spans[p] and not tenure.handled:
                out[p] = token._spans[p].end
        return out

    # --- commits ---

    def committable(self, partitions: Collection[Partition] | None = None) -> dict[Partition, int]:
        """Offsets a commit may carry now (of `partitions`, default all owned): the end of each
        tenure's handled run, where no commit sent or accepted covers it already."""
        out: dict[Partition, int] = {}
        for p, tenure in self._tenures.items():
            if partitions is not None and p not in partitions:
                continue
            if tenure.prefix_end > max(tenure.sent, tenure.confirmed):
                out[p] = tenure.prefix_end
        return out

    def commit_sent(self, offsets: Mapping[Partition, int]) -> int:
        """A commit of `offsets` (from `committable`) was handed to the consumer; its id."""
        self._last_commit += 1
        entry: dict[Partition, tuple[_Tenure, int]] = {}
        for p, offset in offsets.items():
            tenure = self._tenures[p]
            tenure.sent = max(tenure.sent, offset)
            entry[p] = (tenure, offset)
        self._commits[self._last_commit] = entry
        return self._last_commit

    def commit_offsets(self, commit_id: int) -> dict[Partition, int]:
        """What commit `commit_id` carries (empty once answered)."""
        return {p: offset for p, (_, offset) in self._commits.get(commit_id, {}).items()}

    def commit_answered(self, commit_id: int, failed: Collection[Partition] = ()) -> int:
        """The broker answered commit `commit_id`: accepted except for `failed` (an unknown or
        already answered id is ignored). Returns how many handled records it confirmed."""
        entry = self._commits.pop(commit_id, None)
        if entry is None:
            return 0
        confirmed = 0
        for p, (tenure, offset) in entry.items():
            if p in failed:
                if tenure.sent == offset:
                    tenure.sent = -1  # offered again by `committable`
                continue
            tenure.confirmed = max(tenure.confirmed, offset)
            while tenure.handled and tenure.handled[0].end <= offset:
                confirmed += tenure.handled.popleft().count
            if self._tenures.get(p) is tenure:
                self._committed[p] = offset
        return confirmed

    @property
    def commits_waiting(self) -> int:
        return len(self._commits)

    # --- the group's committed offsets (for lag) ---

    def committed(self, p: Partition) -> int | None:
        return self._committed.get(p)

    def learn_committed(self, p: Partition, offset: int) -> None:
        """The group's committed offset of an owned partition, looked up from the broker."""
        if p in self._tenures:
            self._committed.setdefault(p, offset)


def still_owned(token: ReadToken, owned: Mapping[Partition, int]) -> set[Partition]:
    """The partitions of `token` still in the tenure they were read in, by `owned` (a
    snapshot of `OffsetLedger.owned()`): only their records may still be delivered."""
    return {p for p, tenure_id in token.tenures.items() if owned.get(p) == tenure_id}


__all__ = ["Ended", "OffsetLedger", "Partition", "ReadToken", "Spans", "still_owned"]
