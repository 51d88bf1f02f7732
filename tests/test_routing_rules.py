"""The routing rules one by one (whistle.routing): preference order, replacements after a
recusal, and the withheld escalation reviewers. Pure functions, no database: fast enough for
mutation testing to run them for every mutant of routing.py (scripts/mutate)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from whistle.routing import Candidate, Need, escalation_reviewers, replacements, route


class Rigged(random.Random):
    """A random source that returns the given numbers in turn (ties broken as the test says)."""

    def __init__(self, numbers: Sequence[float]) -> None:
        super().__init__(0)
        self.numbers = list(numbers)

    def random(self) -> float:
        return self.numbers.pop(0)


def ids(found: list[str]) -> set[str]:
    return set(found)


# -- route: the order of preference -----------------------------------------------------------


def test_covering_the_category_outranks_a_lighter_load() -> None:
    """Unit coverage equal (none), the category decides before the load: one reviewer for
    another category only, one for this category, one for every category (empty set)."""
    cands = [Candidate(id="finance-only", categories=frozenset({"finance"}), open_load=0),
             Candidate(id="conduct", categories=frozenset({"conduct"}), open_load=3),
             Candidate(id="every", open_load=5)]
    for _ in range(10):
        assert ids(route(Need("conduct"), cands, 2).reviewer_ids) == {"conduct", "every"}
    # A reviewer for another category is still taken when no one else is left.
    assert ids(route(Need("conduct"), cands, 3).reviewer_ids) == {
        "finance-only", "conduct", "every"}


def test_covering_the_unit_outranks_the_category_and_the_load() -> None:
    cands = [Candidate(id="unit", units=frozenset({"Care"}), categories=frozenset({"finance"}),
                       open_load=9),
             Candidate(id="category", categories=frozenset({"conduct"}), open_load=0)]
    assert route(Need("conduct", unit="Care"), cands, 1).reviewer_ids == ["unit"]
    assert route(Need("conduct", unit="Other"), cands, 1).reviewer_ids == ["category"]


def test_an_independent_reviewer_is_not_put_first_for_an_ordinary_concern() -> None:
    cands = [Candidate(id="independent", independent=True, open_load=9),
             Candidate(id="a", open_load=0), Candidate(id="b", open_load=1)]
    for _ in range(10):
        assert route(Need("conduct"), cands, 2).reviewer_ids == ["a", "b"]
    # For a concern about a senior person the independent one comes first.
    assert route(Need("conduct", about_senior=True), cands, 2).reviewer_ids == [
        "independent", "a"]


@pytest.mark.parametrize("minimum", [0, 1, 2, 3])
def test_never_more_reviewers_than_the_minimum(minimum: int) -> None:
    cands = [Candidate(id=f"r{i}", independent=i == 0, senior=i == 1, units=frozenset({"U"}))
             for i in range(5)]
    for senior in (False, True):
        chosen = route(Need("conduct", unit="U", about_senior=senior), cands, minimum)
        assert len(chosen.reviewer_ids) == minimum, (senior, chosen)


def test_ties_are_broken_by_the_random_source_given() -> None:
    cands = [Candidate(id="a"), Candidate(id="b"), Candidate(id="c")]
    assert route(Need("conduct"), cands, 1, Rigged([0.9, 0.1, 0.5])).reviewer_ids == ["b"]
    assert route(Need("conduct"), cands, 1, Rigged([0.2, 0.7, 0.9])).reviewer_ids == ["a"]
    assert route(Need("conduct"), cands, 2, Rigged([0.9, 0.8, 0.1])).reviewer_ids == ["c", "b"]


# -- replacements (a reviewer recused) ----------------------------------------------------------


def test_replacements_are_never_excluded_or_already_on_the_case_and_never_repeat() -> None:
    staying = [Candidate(id="stays")]
    cands = staying + [Candidate(id=f"r{i}", open_load=i) for i in range(4)]
    need = Need("conduct", excluded=frozenset({"r0"}))
    picked = replacements(need, staying, cands, 2)
    assert picked == ["r1", "r2"]
    assert replacements(need, staying, cands, 9) == ["r1", "r2", "r3"]  # fewer: none left
    assert replacements(need, staying, cands, 0) == []
    assert replacements(need, staying, staying, 2) == []


def test_replacements_prefer_as_routing_does() -> None:
    cands = [Candidate(id="admin", admin=True, units=frozenset({"U"})),
             Candidate(id="light", open_load=0),
             Candidate(id="category", categories=frozenset({"conduct"}), open_load=4),
             Candidate(id="other-category", categories=frozenset({"finance"}), open_load=1),
             Candidate(id="unit", units=frozenset({"U"}), open_load=8)]
    picked = replacements(Need("conduct", unit="U"), [], cands, 5)
    # Covering the unit first; "light" (every category) before "category" by load; the
    # other category after them; the administrator last although they cover the unit.
    assert picked == ["unit", "light", "category", "other-category", "admin"]


def test_replacements_for_a_senior_concern_take_an_independent_first_then_as_usual() -> None:
    cands = [Candidate(id="ind-1", independent=True, open_load=5),
             Candidate(id="ind-2", independent=True, open_load=6),
             Candidate(id="light", open_load=0)]
    need = Need("conduct", about_senior=True)
    # No independent stays: the lightest independent first, then no longer needed.
    assert replacements(need, [Candidate(id="stays")], cands, 2) == ["ind-1", "light"]
    # An independent stays: the lightest reviewer, independent or not.
    assert replacements(need, [Candidate(id="ind-stays", independent=True)], cands, 1) == [
        "light"]
    # An ordinary concern asks for no independent reviewer.
    assert replacements(Need("conduct"), [Candidate(id="stays")], cands, 1) == ["light"]


def test_replacements_avoid_the_units_seniors_of_a_senior_concern_while_others_will_do() -> None:
    cands = [Candidate(id="senior-here", senior=True, units=frozenset({"U"}), open_load=0),
             Candidate(id="senior-elsewhere", senior=True, units=frozenset({"V"}), open_load=3),
             Candidate(id="plain", open_load=7)]
    need = Need("conduct", unit="U", about_senior=True)
    assert replacements(need, [Candidate(id="ind", independent=True)], cands, 2) == [
        "senior-elsewhere", "plain"]
    # Only when no one else is left.
    assert replacements(need, [Candidate(id="ind", independent=True)], cands, 3)[-1] == \
        "senior-here"
    # For an ordinary concern a senior of the unit is like anyone (lightest first).
    assert replacements(Need("conduct", unit="U"), [], cands, 1) == ["senior-here"]


def test_replacements_put_the_cases_escalation_reviewers_first() -> None:
    cands = [Candidate(id="light", open_load=0), Candidate(id="escalation", open_load=9)]
    assert replacements(Need("conduct"), [], cands, 1,
                        preferred=frozenset({"escalation"})) == ["escalation"]
    assert replacements(Need("conduct"), [], cands, 1) == ["light"]


def test_replacement_ties_are_broken_by_the_random_source_given() -> None:
    cands = [Candidate(id="a"), Candidate(id="b")]
    # rank() draws one number per candidate per pick: [a, b].
    assert replacements(Need("conduct"), [], cands, 1, rng=Rigged([0.9, 0.1])) == ["b"]
    assert replacements(Need("conduct"), [], cands, 1, rng=Rigged([0.1, 0.9])) == ["a"]


# -- escalation reviewers (withheld copies of the keys) ---------------------------------------


def test_escalation_reviewers_are_independent_and_never_excluded_chosen_or_the_units_senior(
        ) -> None:
    cands = [Candidate(id="plain", open_load=0),
             Candidate(id="ind-excluded", independent=True),
             Candidate(id="ind-chosen", independent=True),
             Candidate(id="ind-senior-here", independent=True, senior=True,
                       units=frozenset({"U"})),
             Candidate(id="ind-ok", independent=True, open_load=4),
             Candidate(id="ind-senior-elsewhere", independent=True, senior=True,
                       units=frozenset({"V"}), open_load=6)]
    need = Need("conduct", unit="U", about_senior=True, excluded=frozenset({"ind-excluded"}))
    found = escalation_reviewers(need, cands, ["ind-chosen"], 9)
    assert found == ["ind-ok", "ind-senior-elsewhere"]
    # An ordinary concern: a senior of the unit is eligible like anyone.
    found = escalation_reviewers(Need("conduct", unit="U"), cands, ["ind-chosen"], 9)
    assert set(found) == {"ind-excluded", "ind-senior-here", "ind-ok",
                          "ind-senior-elsewhere"}


def test_escalation_reviewers_count_and_order() -> None:
    cands = [Candidate(id="admin", independent=True, admin=True, units=frozenset({"U"})),
             Candidate(id="unit", independent=True, units=frozenset({"U"}), open_load=9),
             Candidate(id="category", independent=True, categories=frozenset({"conduct"}),
                       open_load=5),
             Candidate(id="other", independent=True, categories=frozenset({"finance"}),
                       open_load=0)]
    need = Need("conduct", unit="U")
    assert escalation_reviewers(need, cands, [], 4) == ["unit", "category", "other", "admin"]
    assert escalation_reviewers(need, cands, [], 1) == ["unit"]
    assert escalation_reviewers(need, cands, [], 2) == ["unit", "category"]
    assert escalation_reviewers(need, cands, [], 0) == []
    assert escalation_reviewers(need, cands, [], -1) == []


def test_escalation_ties_are_broken_by_the_random_source_given() -> None:
    cands = [Candidate(id="a", independent=True), Candidate(id="b", independent=True)]
    assert escalation_reviewers(Need("conduct"), cands, [], 1, Rigged([0.9, 0.1])) == ["b"]
    assert escalation_reviewers(Need("conduct"), cands, [], 1, Rigged([0.1, 0.9])) == ["a"]
    # Without a source given, a system one is used (and the call still works).
    assert escalation_reviewers(Need("conduct"), cands, [], 1)[0] in {"a", "b"}
    assert replacements(Need("conduct"), [], cands, 1)[0] in {"a", "b"}


def test_too_few_eligible_reviewers_is_said_with_the_numbers() -> None:
    found = route(Need("conduct", excluded=frozenset({"b"})),
                  [Candidate(id="a"), Candidate(id="b")], 2)
    assert found.reviewer_ids == ["a"] and found.under_routed
    assert found.reasons == ["only 1 eligible reviewers, 2 required"]
    assert route(Need("conduct"), [Candidate(id="a"), Candidate(id="b")], 2).reasons == []
