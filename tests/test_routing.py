"""Routing policy (whistle.routing.route): a pure function, tested without a database."""

from __future__ import annotations

import random
from dataclasses import replace

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.support.factories import make_reviewer, submit_concern
from whistle.routing import NO_INDEPENDENT, SENIOR_OF_UNIT, Candidate, Need, route
from whistle.store import db
from whistle.store.models import Assignment, Concern, WrappedKey


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


# -- a concern about a senior person stays away from its unit's senior reviewers ----------

UNITS = ["Education", "Health", "Housing"]


@st.composite
def rosters(draw: st.DrawFn) -> tuple[list[Candidate], Need, int, int]:
    """A roster of reviewers (any mix of units, seniority, independence, admin, load and
    categories), a concern about a senior person (with or without a unit, some reviewers
    excluded), ``min_reviewers`` and the seed of the routing's random tie-break."""
    n = draw(st.integers(0, 9))
    roster = [Candidate(
        id=f"r{i}",
        units=frozenset(draw(st.sets(st.sampled_from(UNITS), max_size=2))),
        categories=frozenset(draw(st.sets(st.sampled_from(["conduct", "fraud"]), max_size=1))),
        independent=draw(st.booleans()), senior=draw(st.booleans()),
        admin=draw(st.integers(0, 4)) == 0, open_load=draw(st.integers(0, 3)),
    ) for i in range(n)]
    excluded = frozenset(f"r{i}" for i in draw(st.sets(st.integers(0, 9), max_size=3)))
    need = Need("conduct", draw(st.none() | st.sampled_from(UNITS)), True, excluded)
    return roster, need, draw(st.integers(2, 4)), draw(st.integers(0, 2**32 - 1))


def of_the_unit(need: Need, c: Candidate) -> bool:
    """The test's own statement of whom a concern about a senior avoids: the senior reviewers
    of its unit, and every senior reviewer when it has no unit."""
    return c.senior and (need.unit is None or need.unit in c.units)


@given(rosters())
@settings(max_examples=400)
def test_a_senior_concern_avoids_its_units_senior_reviewers_while_others_suffice(
        case: tuple[list[Candidate], Need, int, int]) -> None:
    """Mutations caught: an excluded reviewer chosen; a senior of the unit chosen although
    enough others are eligible (``senior`` ignored, the avoided pool not set aside, or the
    no-unit concern treating no senior as its unit's); a senior of the unit chosen without
    ``under_routed`` and its reason; more of them chosen than the shortfall needs; the
    shortfall not topped up from them (fewer reviewers than are eligible); the reason given
    when none of them was chosen; ``under_routed`` without a reason or a reason without it."""
    roster, need, minimum, seed = case
    result = route(need, roster, minimum, random.Random(seed))
    chosen = set(result.reviewer_ids)
    eligible = [c for c in roster if c.id not in need.excluded]
    avoided = {c.id for c in eligible if of_the_unit(need, c)}
    others = [c for c in eligible if c.id not in avoided]
    assert not chosen & need.excluded
    assert len(chosen) == len(result.reviewer_ids) == min(minimum, len(eligible))
    assert result.under_routed == bool(result.reasons)
    if len(others) >= minimum:
        assert not chosen & avoided
        assert SENIOR_OF_UNIT not in result.reasons
    else:
        assert len(chosen & avoided) == min(minimum, len(eligible)) - len(others)
    if chosen & avoided:
        assert result.under_routed and SENIOR_OF_UNIT in result.reasons
    else:
        assert SENIOR_OF_UNIT not in result.reasons


@given(rosters())
@settings(max_examples=400)
def test_a_senior_concern_gets_an_independent_reviewer_whenever_one_is_eligible(
        case: tuple[list[Candidate], Need, int, int]) -> None:
    """Mutations caught: the independent-first step removed or applied only to the avoided
    seniors; an independent senior of the unit chosen to satisfy independence while others
    suffice (it must not be); no independent taken from the unit's seniors when they are
    needed anyway and no other independent exists; the missing-independent reason dropped
    or given although an independent reviewer was chosen."""
    roster, need, minimum, seed = case
    result = route(need, roster, minimum, random.Random(seed))
    by_id = {c.id: c for c in roster}
    eligible = [c for c in roster if c.id not in need.excluded]
    others = [c for c in eligible if not of_the_unit(need, c)]
    # Independent reviewers the concern may have: the others, and the unit's seniors only
    # when they are taken anyway (too few others).
    usable = others if len(others) >= minimum else eligible
    has_independent = any(by_id[i].independent for i in result.reviewer_ids)
    if any(c.independent for c in usable):
        assert has_independent
    assert (NO_INDEPENDENT in result.reasons) == (not has_independent)
    if not has_independent:
        assert result.under_routed


@given(rosters(), st.booleans())
@settings(max_examples=300)
def test_seniors_of_other_units_are_routed_like_anyone_else(
        case: tuple[list[Candidate], Need, int, int], about_senior: bool) -> None:
    """Clearing ``senior`` on everyone the rule does not avoid (seniors of other units; every
    senior when the concern is not about a senior) leaves the route unchanged, seed for seed.
    Mutations caught: all seniors avoided whatever their unit; seniors avoided (or ranked
    differently) on concerns not about a senior; a concern with a known unit avoiding the
    seniors of every unit."""
    roster, need, minimum, seed = case
    need = replace(need, about_senior=about_senior)
    plain = [c if about_senior and of_the_unit(need, c) else replace(c, senior=False)
             for c in roster]
    assert route(need, roster, minimum, random.Random(seed)) == \
        route(need, plain, minimum, random.Random(seed))


def test_a_senior_concern_without_a_unit_avoids_every_senior_reviewer() -> None:
    """Mutation caught: a concern with no unit treating no senior reviewer as its unit's (the
    decision is the opposite: the unit is unknown, so every senior is avoided)."""
    cands = [Candidate(id="boss", senior=True, independent=True, units=frozenset({"Health"})),
             Candidate(id="ind", independent=True, open_load=9), Candidate(id="a", open_load=9)]
    for seed in range(20):
        result = route(Need("conduct", about_senior=True), cands, 2, random.Random(seed))
        assert set(result.reviewer_ids) == {"ind", "a"} and not result.under_routed
    result = route(Need("conduct", about_senior=True), cands[:2], 2, random.Random(0))
    assert set(result.reviewer_ids) == {"boss", "ind"}
    assert result.under_routed and result.reasons == [SENIOR_OF_UNIT]


def _assigned_and_keyed(app: Flask, case_ref: str) -> tuple[set[str], set[str], bool]:
    with db.new_session(app) as s:
        assigned = set(s.scalars(select(Assignment.reviewer_id)
                                 .where(Assignment.concern_id == case_ref)))
        keyed = set(s.scalars(select(WrappedKey.recipient_id).where(
            WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == "reviewer")))
        concern = s.get(Concern, case_ref)
        assert concern is not None
        return assigned, keyed, concern.under_routed


def test_a_senior_concern_is_not_sealed_for_its_units_senior_reviewer(
        app: Flask, client: FlaskClient) -> None:
    """Through the app, on the suite's database: the unit's senior reviewer (independent,
    covering the unit, so the first choice if seniority were ignored) gets no assignment and no
    wrapped key while two others can review. Mutations caught: intake not reading
    ``Reviewer.is_senior`` or not passing ``senior=`` to the router; the router ignoring it."""
    boss = make_reviewer(app, units=["Education"], senior=True, independent=True)
    ind = make_reviewer(app, units=["Health"], independent=True)
    other = make_reviewer(app, units=["Health"])
    receipt = submit_concern(client, about_senior=True, unit="Education")
    assert "under_routed" not in receipt and receipt["reviewer_count"] == 2
    assigned, keyed, under_routed = _assigned_and_keyed(app, receipt["case_ref"])
    assert assigned == keyed == {ind["id"], other["id"]} and boss["id"] not in keyed
    assert not under_routed


def test_a_senior_concern_reaches_its_units_senior_only_when_no_one_else_can(
        app: Flask, client: FlaskClient) -> None:
    """With one other reviewer the unit's senior is taken, sealed for, and the case is
    under-routed. Mutations caught: the senior never taken (the concern left with one
    reviewer) or taken without marking the case under-routed."""
    boss = make_reviewer(app, units=["Education"], senior=True)
    ind = make_reviewer(app, units=["Health"], independent=True)
    receipt = submit_concern(client, about_senior=True, unit="Education")
    assert receipt.get("under_routed") is True and receipt["reviewer_count"] == 2
    assigned, keyed, under_routed = _assigned_and_keyed(app, receipt["case_ref"])
    assert assigned == keyed == {boss["id"], ind["id"]} and under_routed
