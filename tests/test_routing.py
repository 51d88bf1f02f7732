"""Routing policy (whistle.routing.route): a pure function, tested without a database."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from whistle.routing import Candidate, Need, route


def people(n: int, **kw: object) -> list[Candidate]:
    return [Candidate(id=f"r{i}", **kw) for i in range(n)]  # type: ignore[arg-type]


def test_routes_to_the_minimum_number_of_reviewers() -> None:
    result = route(Need("conduct"), people(5), 2)
    assert len(result.reviewer_ids) == 2 and not result.under_routed


@given(st.integers(0, 8), st.sets(st.integers(0, 7)), st.booleans(), st.integers(2, 4))
@settings(max_examples=200)
def test_excluded_reviewers_are_never_chosen(n: int, excluded: set[int], senior: bool,
                                              minimum: int) -> None:
    cands = [Candidate(id=f"r{i}", independent=i % 3 == 0) for i in range(n)]
    ex = frozenset(f"r{i}" for i in excluded)
    result = route(Need("conduct", about_senior=senior, excluded=ex), cands, minimum)
    assert not set(result.reviewer_ids) & ex
    eligible = n - len([i for i in excluded if i < n])
    assert len(result.reviewer_ids) == min(minimum, eligible)
    assert len(set(result.reviewer_ids)) == len(result.reviewer_ids)
    if eligible < minimum:
        assert result.under_routed


def test_concern_about_a_senior_gets_an_independent_reviewer() -> None:
    cands = people(6) + [Candidate(id="ind", independent=True, open_load=50)]
    for _ in range(20):
        result = route(Need("conduct", about_senior=True), cands, 2)
        assert "ind" in result.reviewer_ids


def test_senior_concern_without_independent_reviewer_is_under_routed_but_routed() -> None:
    result = route(Need("conduct", about_senior=True), people(3), 2)
    assert len(result.reviewer_ids) == 2 and result.under_routed


def test_unit_coverage_then_load_decide() -> None:
    cands = [Candidate(id="busy-edu", units=frozenset({"Education"}), open_load=9),
             Candidate(id="idle", open_load=0), Candidate(id="mid", open_load=3)]
    result = route(Need("conduct", unit="Education"), cands, 2, random.Random(1))
    assert result.reviewer_ids == ["busy-edu", "idle"]


def test_load_is_balanced_across_equal_reviewers() -> None:
    loads = {f"r{i}": 0 for i in range(4)}
    for _ in range(40):
        cands = [Candidate(id=i, open_load=n) for i, n in loads.items()]
        for rid in route(Need("conduct"), cands, 2).reviewer_ids:
            loads[rid] += 1
    assert max(loads.values()) - min(loads.values()) <= 1


def test_admins_review_only_when_needed() -> None:
    cands = [Candidate(id="admin", admin=True), Candidate(id="a"), Candidate(id="b")]
    assert set(route(Need("conduct"), cands, 2).reviewer_ids) == {"a", "b"}
    assert set(route(Need("conduct"), cands[:2], 2).reviewer_ids) == {"admin", "a"}
