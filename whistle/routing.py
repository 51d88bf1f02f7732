"""Choosing reviewers for a concern. A pure function: no database, no clock.

Policy, in order:
1. Excluded reviewers are never candidates (nor inactive ones: the caller
   passes only active reviewers).
2. A concern about a senior person needs at least one ``independent``
   reviewer (outside the line-management chain); the most suitable
   independent reviewer is chosen first. It goes to no senior reviewer of
   the concern's own unit (a ``senior`` candidate whose units include the
   concern's unit) unless fewer than ``min_reviewers`` could be chosen
   without them; then as many of them as needed are taken (an independent
   one first if no independent reviewer was chosen yet) and the route is
   under-routed, with a reason saying so. Senior reviewers of other units
   are eligible as usual. A concern about a senior person with no unit
   treats *every* senior reviewer as one of its unit: the unit is unknown,
   so any senior could be in the subject's line of management. An
   independent reviewer who is a senior of the concern's unit does not
   satisfy the independence rule while others can be chosen (the route is
   then under-routed for want of an independent reviewer instead).
3. Administrators who also review are chosen only when no one else is
   eligible (administration and case access stay apart where possible).
   The rest are preferred by covering the concern's unit, then its category,
   then the lightest open-case load; ties are broken at random.
4. If fewer than ``min_reviewers`` are eligible (or no independent reviewer
   exists for a senior concern), the result is marked under-routed: the
   caller still stores the concern, sealed for whoever was chosen and the
   recovery key, and alerts administrators.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    id: str
    units: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()  # empty: every category
    independent: bool = False
    open_load: int = 0
    admin: bool = False
    senior: bool = False


@dataclass(frozen=True)
class Need:
    category: str
    unit: str | None = None
    about_senior: bool = False
    excluded: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Route:
    reviewer_ids: list[str]
    under_routed: bool
    reasons: list[str] = field(default_factory=list)


NO_INDEPENDENT = "no independent reviewer for a concern about a senior person"
SENIOR_OF_UNIT = ("a senior reviewer of the concern's unit was chosen for a concern about a "
                  "senior person: too few other reviewers are eligible")


def _preference(need: Need, c: Candidate, tiebreak: float) -> tuple[bool, int, int, int, float]:
    covers_unit = 1 if need.unit and need.unit in c.units else 0
    covers_category = 1 if not c.categories or need.category in c.categories else 0
    return (c.admin, -covers_unit, -covers_category, c.open_load, tiebreak)


def senior_of_unit(need: Need, c: Candidate) -> bool:
    """Whether ``c`` is a senior reviewer of the unit of ``need`` (a concern about a senior
    person), to be avoided unless no one else is eligible. With no unit, every senior is."""
    return need.about_senior and c.senior and (need.unit is None or need.unit in c.units)


def _fill(chosen: list[Candidate], ranked: list[Candidate], need: Need,
          min_reviewers: int) -> None:
    """Add reviewers from ``ranked`` (best first) to ``chosen`` up to ``min_reviewers``, the
    best independent one first when the concern is about a senior and none is chosen yet."""
    if need.about_senior and not any(c.independent for c in chosen):
        independent = [c for c in ranked if c.independent]
        if independent and len(chosen) < min_reviewers:
            chosen.append(independent[0])
    for c in ranked:
        if len(chosen) >= min_reviewers:
            break
        if c not in chosen:
            chosen.append(c)


def route(need: Need, candidates: Iterable[Candidate], min_reviewers: int,
          rng: random.Random | None = None) -> Route:
    """Choose ``min_reviewers`` reviewers for ``need`` from ``candidates``.

    Never returns an excluded reviewer. Returns fewer than ``min_reviewers``
    ids only when fewer are eligible, and then ``under_routed`` is True. A
    senior reviewer of the concern's unit is chosen for a concern about a
    senior person only when the others are too few, and then ``under_routed``
    is True too.
    """
    rng = rng or random.SystemRandom()
    eligible = [c for c in candidates if c.id not in need.excluded]
    ranked = sorted(eligible, key=lambda c: _preference(need, c, rng.random()))
    chosen: list[Candidate] = []
    reasons: list[str] = []
    _fill(chosen, [c for c in ranked if not senior_of_unit(need, c)], need, min_reviewers)
    if len(chosen) < min_reviewers:
        before = len(chosen)
        _fill(chosen, [c for c in ranked if senior_of_unit(need, c)], need, min_reviewers)
        if len(chosen) > before:
            reasons.append(SENIOR_OF_UNIT)
    if need.about_senior and not any(c.independent for c in chosen):
        reasons.append(NO_INDEPENDENT)
    if len(chosen) < min_reviewers:
        reasons.append(f"only {len(chosen)} eligible reviewers, {min_reviewers} required")
    return Route([c.id for c in chosen], bool(reasons), reasons)


def replacements(need: Need, staying: Iterable[Candidate], candidates: Iterable[Candidate],
                 wanted: int, preferred: frozenset[str] = frozenset(),
                 rng: random.Random | None = None) -> list[str]:
    """Up to ``wanted`` reviewers to join ``staying`` on a case (when one recuses), by the
    same rules: never an excluded one nor one already staying; not a senior of the unit of
    a concern about a senior person while anyone else will do; an independent one while
    none stays on such a concern; then ``preferred`` (the case's escalation reviewers),
    then as ``route`` prefers. Fewer only when fewer are eligible."""
    rng = rng or random.SystemRandom()
    chosen = list(staying)
    taken = {c.id for c in chosen} | set(need.excluded)
    left = [c for c in candidates if c.id not in taken]
    picked: list[str] = []
    while left and len(picked) < wanted:
        want_independent = need.about_senior and not any(c.independent for c in chosen)

        def rank(c: Candidate) -> tuple[bool, bool, bool, bool, int, int, int, float]:
            return (senior_of_unit(need, c), want_independent and not c.independent,
                    c.id not in preferred, *_preference(need, c, rng.random()))

        best = min(left, key=rank)
        chosen.append(best)
        picked.append(best.id)
        left.remove(best)
    return picked


def escalation_reviewers(need: Need, candidates: Iterable[Candidate], chosen: Iterable[str],
                         count: int, rng: random.Random | None = None) -> list[str]:
    """Up to ``count`` independent reviewers who get withheld copies of the concern's keys,
    released if it escalates (whistle.cases.escalation): never excluded, never one of the
    ``chosen`` reviewers, never a senior of the concern's unit for a concern about a senior
    person (no exception here: escalation is the way around that desk). Preferred as
    routing prefers: not administrators, covering the unit and the category, lightest load."""
    if count <= 0:
        return []
    rng = rng or random.SystemRandom()
    taken = set(chosen)
    eligible = [c for c in candidates if c.independent and c.id not in need.excluded
                and c.id not in taken and not senior_of_unit(need, c)]
    ranked = sorted(eligible, key=lambda c: _preference(need, c, rng.random()))
    return [c.id for c in ranked[:count]]
