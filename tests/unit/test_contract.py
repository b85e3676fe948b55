"""check_results: every kind of violation, its message, and what stays routable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sink_runtime import Response, Status
from sink_runtime.contract import ALL_STATUSES, check_results

IDS = ["t:0:1", "t:0:2", "t:0:3"]


def test_a_correct_answer_in_any_order_is_ok() -> None:
    results = [Response.ok("t:0:3"), Response.failure("t:0:1", "e"), Response.ok("t:0:2")]
    checked = check_results(IDS, results)
    assert checked.ok
    assert checked.violations == () and checked.affected == ()
    assert set(checked.valid) == set(IDS)
    assert checked.valid["t:0:1"].status is Status.FAILURE


def test_a_missing_result_is_a_count_and_missing_id_violation() -> None:
    checked = check_results(IDS, [Response.ok("t:0:1"), Response.ok("t:0:2")])
    assert not checked.ok
    kinds = {v.kind for v in checked.violations}
    assert kinds == {"count", "missing-id"}
    assert "batch of 3 datums got 2 results" in checked.describe()
    assert "no result for ids 't:0:3'" in checked.describe()
    assert checked.affected == ("t:0:3",)
    assert set(checked.valid) == {"t:0:1", "t:0:2"}


def test_an_unknown_id_is_named() -> None:
    checked = check_results(IDS, [Response.ok("t:0:1"), Response.ok("t:0:2"), Response.ok("x")])
    assert [v.kind for v in checked.violations] == ["unknown-id", "missing-id"]
    assert "results for unknown ids 'x'" in checked.describe()
    assert checked.affected == ("t:0:3",)


def test_a_duplicate_id_makes_that_datum_affected() -> None:
    results = [Response.ok("t:0:1"), Response.ok("t:0:1"), Response.ok("t:0:2")]
    checked = check_results(IDS, results)
    kinds = [v.kind for v in checked.violations]
    assert "duplicate-id" in kinds and "missing-id" in kinds
    assert "more than one result for ids 't:0:1'" in checked.describe()
    assert set(checked.affected) == {"t:0:1", "t:0:3"}
    assert set(checked.valid) == {"t:0:2"}


def test_a_status_not_allowed_names_the_status_the_reason_and_the_ids() -> None:
    allowed = ALL_STATUSES - {Status.FALLBACK}
    results = [Response.ok("t:0:1"), Response.fallback("t:0:2"), Response.fallback("t:0:3")]
    checked = check_results(IDS, results, allowed, why_not_allowed="no fallback sink configured")
    assert [v.kind for v in checked.violations] == ["status-not-allowed"]
    text = checked.describe()
    assert "status FALLBACK not allowed here (no fallback sink configured)" in text
    assert "'t:0:2', 't:0:3'" in text
    assert checked.affected == ("t:0:2", "t:0:3")


def test_long_id_lists_are_truncated() -> None:
    ids = [f"t:0:{i}" for i in range(25)]
    checked = check_results(ids, [])
    assert "and 15 more" in checked.describe()


def test_an_empty_batch_with_no_results_is_ok() -> None:
    assert check_results([], []).ok


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=6),
    st.lists(st.sampled_from(list(Status)), max_size=6),
    st.frozensets(st.sampled_from(list(Status)), min_size=1),
)
def test_ok_exactly_when_one_allowed_result_per_request(
    answer_ids: list[str], statuses: list[Status], allowed: frozenset[Status]
) -> None:
    request_ids = ["a", "b", "c"]
    results = [Response(i, s) for i, s in zip(answer_ids, statuses, strict=False)]
    checked = check_results(request_ids, results, allowed)
    one_each = sorted(r.id for r in results) == request_ids
    assert checked.ok == (one_each and all(r.status in allowed for r in results))
    # Whatever happened, every request is either routable or affected, never both.
    assert set(checked.valid) | set(checked.affected) == set(request_ids)
    assert not set(checked.valid) & set(checked.affected)
