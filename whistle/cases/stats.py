"""Aggregate figures about concerns, safe to show: small counts are never shown.

What a viewer sees is a set of *breakdowns* (per status, per category, per
quarter received, time to acknowledge, time to close). Every count below
``THRESHOLD`` (zero included) is shown only as "fewer than 5". Because every
breakdown adds up to the same total, a single small cell could be worked out
by subtraction; so when a breakdown would suppress exactly one cell, the next
smallest cell is hidden too ("complementary suppression"). Averages are
reported only over at least ``THRESHOLD`` cases, as a median in whole days.

There is no drill-down: nothing here names a case, a date finer than a
quarter, a unit or a reviewer, and no breakdown is crossed with another.

Every viewer sees the same figures, over every case (issue 19, item 7). Figures that
left out the viewer's excluded cases (as before) differed between viewers by exactly
those cases: two colleagues comparing their pages found the exclusion. A figure that is
the same for everyone says nothing about whom a case concerns; small counts stay
suppressed. docs/design.md ("Excluded means invisible") gives the reasoning.

Pure domain code: a SQLAlchemy session in, plain data out; no Flask.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle.cases import workflow
from whistle.store import counts
from whistle.store.models import Concern

THRESHOLD = 5
MAX_QUARTERS = 8

# Why a cell shows no number.
SMALL = "small"  # fewer than THRESHOLD
HIDDEN = "hidden"  # large enough, hidden so that a small neighbour cannot be worked out


@dataclass(frozen=True)
class Cell:
    key: str
    count: int | None  # None: not shown (see ``reason``)
    reason: str | None = None


@dataclass(frozen=True)
class Breakdown:
    cells: tuple[Cell, ...]

    @property
    def shown_max(self) -> int:
        return max((c.count for c in self.cells if c.count is not None), default=0)


@dataclass(frozen=True)
class Duration:
    """Days from receipt to an event, over the cases that reached it."""

    cases: int | None  # None when fewer than THRESHOLD
    median_days: int | None
    within_deadline: Breakdown


@dataclass(frozen=True)
class Overview:
    total: int | None  # None when fewer than THRESHOLD
    by_status: Breakdown
    by_category: Breakdown
    by_quarter: Breakdown
    acknowledge: Duration
    close: Duration


def shown(n: int) -> int | None:
    """A count as it may be shown: the number, or None when it is under the threshold."""
    return n if n >= THRESHOLD else None


def breakdown(counts: Mapping[str, int], keys: Iterable[str] | None = None) -> Breakdown:
    """Suppress small cells, and one more when a single small cell could be worked out.

    ``keys`` fixes the order and includes keys with no cases (shown as small).
    """
    order = list(keys) if keys is not None else sorted(counts)
    order += [k for k in counts if k not in order]
    values = {k: counts.get(k, 0) for k in order}
    small = {k for k, n in values.items() if n < THRESHOLD}
    hidden: set[str] = set()
    if len(small) == 1 and len(values) > 1:
        # The one small cell = total - the others: hide the smallest shown cell as well.
        rest = sorted((n, k) for k, n in values.items() if k not in small)
        hidden.add(rest[0][1])
    cells = []
    for k in order:
        if k in small:
            cells.append(Cell(k, None, SMALL))
        elif k in hidden:
            cells.append(Cell(k, None, HIDDEN))
        else:
            cells.append(Cell(k, values[k]))
    return Breakdown(tuple(cells))


def quarter_of(day: dt.date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def recent_quarters(today: dt.date, first: dt.date | None, limit: int = MAX_QUARTERS
                    ) -> list[str]:
    """Quarters from the first case's (at most ``limit`` back) to today's, oldest first."""
    year, q = today.year, (today.month - 1) // 3 + 1
    out = []
    for _ in range(limit):
        out.append(f"{year}-Q{q}")
        if first is not None and (year, q) <= (first.year, (first.month - 1) // 3 + 1):
            break
        q -= 1
        if q == 0:
            year, q = year - 1, 4
    return list(reversed(out))


def _median(days: Counter[int]) -> int:
    n = sum(days.values())
    middle = (n - 1) // 2
    seen = 0
    for value in sorted(days):
        seen += days[value]
        if seen > middle:
            return value
    return 0  # pragma: no cover - n >= 1 always here


def duration(days: Counter[int], deadline_days: int) -> Duration:
    n = sum(days.values())
    within = sum(c for d, c in days.items() if d <= deadline_days)
    split = breakdown({"within": within, "later": n - within}, ["within", "later"])
    if n < THRESHOLD:
        return Duration(None, None, split)
    return Duration(n, _median(days), split)


# -- reading the database -------------------------------------------------------------------

_COLUMNS = (Concern.status, Concern.category, Concern.created, Concern.acknowledged_on,
            Concern.closed_on)


def _rows(session: Session
          ) -> list[tuple[str, str, dt.date, dt.date | None, dt.date | None, int]]:
    """(status, category, created, acknowledged_on, closed_on, number of cases) groups,
    over every case, grouped in the database (a group per combination, far fewer than
    cases). Nothing here depends on who looks."""
    return [(*r[:5], int(r[5])) for r in session.execute(  # type: ignore[misc]
        select(*_COLUMNS, func.count()).group_by(*_COLUMNS))]


def overview(session: Session, settings: Settings, category_ids: Iterable[str],
             today: dt.date) -> Overview:
    """Every figure the statistics page shows, already suppressed: the same for every
    viewer, so it takes no viewer."""
    by_status: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    by_quarter: Counter[str] = Counter()
    ack_days: Counter[int] = Counter()
    close_days: Counter[int] = Counter()
    first: dt.date | None = None
    for status, category, created, acknowledged_on, closed_on, n in _rows(session):
        by_status[status] += n
        by_category[category] += n
        by_quarter[quarter_of(created)] += n
        first = created if first is None else min(first, created)
        if acknowledged_on is not None:
            ack_days[max(0, (acknowledged_on - created).days)] += n
        if closed_on is not None and status == workflow.CLOSED:
            close_days[max(0, (closed_on - created).days)] += n
    total = sum(by_status.values())
    quarters = recent_quarters(today, first)
    return Overview(
        total=shown(total),
        by_status=breakdown(by_status, workflow.STATUSES),
        by_category=breakdown(by_category, list(category_ids)),
        # Older quarters are summed into one cell so that the breakdown still adds up.
        by_quarter=breakdown(_fold_older(by_quarter, quarters), [*_older_key(by_quarter,
                                                                               quarters), *quarters]),
        acknowledge=duration(ack_days, int(settings.ack_deadline_days)),
        close=duration(close_days, int(settings.feedback_deadline_days)),
    )


OLDER = "older"


def _fold_older(counts: Counter[str], quarters: list[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for key, n in counts.items():
        out[key if key in quarters else OLDER] += n
    return out


def _older_key(counts: Counter[str], quarters: list[str]) -> list[str]:
    return [OLDER] if any(k not in quarters for k in counts) else []


def inbox_counts(session: Session, reviewer_id: str) -> dict[str, int]:
    """The reviewer's own cases per status, plus ``open`` and ``overdue`` (their own inbox:
    exact numbers, nothing aggregated across reviewers, so nothing to suppress)."""
    # From the kept inbox counts: a GROUP BY over the reviewer's assignments and a join
    # to every case grew with the database.
    kept = counts.counts(session, reviewer_id)
    by_status = {status: int(kept.get(status, 0)) for status in workflow.STATUSES}
    by_status["open"] = sum(n for s, n in by_status.items() if s in workflow.OPEN_STATUSES)
    by_status["overdue"] = int(kept.get(counts.OVERDUE, 0))
    by_status["all"] = sum(by_status[s] for s in workflow.STATUSES)
    return by_status
