"""The rules a sink's answer to a batch must follow, checked in one place.

Both ends use this: the SDK server checks its handler's answer before it goes on the wire (so a
sink author sees the mistake in their own log), and the data plane checks every sink's answer
before routing it (so a misbehaving sink cannot make it commit an unhandled message).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from sink_runtime.logs import ids_text
from sink_runtime.types import Response, Status

# "protocol": the sink broke sink.v1's stream rules (a message between batches, a flood, a
# malformed frame or header); the data plane's sink client detects it and resets the stream.
ViolationKind = Literal[
    "count", "unknown-id", "duplicate-id", "missing-id", "status-not-allowed", "protocol"
]
ALL_STATUSES: frozenset[Status] = frozenset(Status)


@dataclass(frozen=True, slots=True)
class Violation:
    kind: ViolationKind
    ids: tuple[str, ...]
    detail: str

    def __str__(self) -> str:
        return f"contract violation ({self.kind}): {self.detail}"


@dataclass(frozen=True, slots=True)
class CheckedResults:
    """Results that may be routed, keyed by id, and what was wrong with the rest."""

    valid: dict[str, Response]
    violations: tuple[Violation, ...]
    # Request ids without a usable result: they must be treated as FAILURE.
    affected: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def describe(self) -> str:
        return "; ".join(str(v) for v in self.violations)


def check_results(
    request_ids: Sequence[str],
    results: Iterable[Response],
    allowed: frozenset[Status] = ALL_STATUSES,
    *,
    why_not_allowed: str = "",
) -> CheckedResults:
    """Check one batch's results against its request ids.

    Rules: exactly one result per request, echoing its id; statuses within `allowed`
    (e.g. no FALLBACK when no fallback sink is configured; `why_not_allowed` explains it).
    """
    results = list(results)
    wanted = set(request_ids)
    # Fast path for the usual case, a correct answer (it runs for every batch of both the SDK
    # server and the data plane): index once, compare the id sets, check statuses if limited.
    if len(results) == len(request_ids):
        by_id = {r.id: r for r in results}
        if (
            len(by_id) == len(results)
            and by_id.keys() == wanted
            and (allowed is ALL_STATUSES or all(r.status in allowed for r in results))
        ):
            return CheckedResults(valid=by_id, violations=(), affected=())
    counts = Counter(r.id for r in results)
    violations: list[Violation] = []

    if len(results) != len(request_ids):
        violations.append(
            Violation(
                "count",
                (),
                f"batch of {len(request_ids)} datums got {len(results)} results",
            )
        )
    unknown = [i for i in counts if i not in wanted]
    if unknown:
        violations.append(
            Violation(
                "unknown-id",
                tuple(unknown),
                f"results for unknown ids {ids_text(unknown, quoted=True)}",
            )
        )
    duplicated = [i for i, n in counts.items() if n > 1 and i in wanted]
    if duplicated:
        violations.append(
            Violation(
                "duplicate-id",
                tuple(duplicated),
                f"more than one result for ids {ids_text(duplicated, quoted=True)}",
            )
        )
    missing = [i for i in request_ids if i not in counts]
    if missing:
        violations.append(
            Violation(
                "missing-id", tuple(missing), f"no result for ids {ids_text(missing, quoted=True)}"
            )
        )
    bad_status = [
        r for r in results if r.id in wanted and counts[r.id] == 1 and r.status not in allowed
    ]
    if bad_status:
        by_status = ", ".join(sorted({f"{r.status.name}" for r in bad_status}))
        reason = f" ({why_not_allowed})" if why_not_allowed else ""
        violations.append(
            Violation(
                "status-not-allowed",
                tuple(r.id for r in bad_status),
                f"status {by_status} not allowed here{reason} for ids "
                f"{ids_text([r.id for r in bad_status], quoted=True)}",
            )
        )

    bad = set(duplicated) | {r.id for r in bad_status}
    valid = {r.id: r for r in results if r.id in wanted and r.id not in bad}
    affected = tuple(i for i in request_ids if i not in valid)
    return CheckedResults(valid=valid, violations=tuple(violations), affected=affected)
