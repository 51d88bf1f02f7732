"""Choosing reviewers for a concern. A pure function: no database, no clock.

Policy, in order:
1. Excluded reviewers are never candidates (nor inactive ones: the caller
   passes only active reviewers).
2. A concern about a senior person needs at least one ``independent``
   reviewer (outside the line-management chain); the most suitable
   independent reviewer is chosen first.
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


def _preference(need: Need, c: Candidate, tiebreak: float) -> tuple[bool, int, int, int, float]:
    covers_unit = 1 if need.unit and need.unit in c.units else 0
    covers_category = 1 if not c.categories or need.category in c.categories else 0
    return (c.admin, -covers_unit, -covers_category, c.open_load, tiebreak)


def route(need: Need, candidates: Iterable[Candidate], min_reviewers: int,
          rng: random.Random | None = None) -> Route:
    """Choose ``min_reviewers`` reviewers for ``need`` from ``candidates``.

    Never returns an excluded reviewer. Returns fewer than ``min_reviewers``
    ids only when fewer are eligible, and then ``under_routed`` is True.
    """
    rng = rng or random.SystemRandom()
    eligible = [c for c in candidates if c.id not in need.excluded]
    ranked = sorted(eligible, key=lambda c: _preference(need, c, rng.random()))
    chosen: list[Candidate] = []
    reasons: list[str] = []
    if need.about_senior:
        independent = [c for c in ranked if c.independent]
        if independent:
            chosen.append(independent[0])
        else:
            reasons.append("no independent reviewer for a concern about a senior person")
    for c in ranked:
        if len(chosen) >= min_reviewers:
            break
        if c not in chosen:
            chosen.append(c)
    if len(chosen) < min_reviewers:
        reasons.append(f"only {len(chosen)} eligible reviewers, {min_reviewers} required")
    return Route([c.id for c in chosen], bool(reasons), reasons)
