"""Clocks in working days, per category (issue 23).

A category may carry its own acknowledgement clock: ``ack_working_days`` (working days:
Monday to Friday, less the bank holidays of ``HOLIDAY_CALENDAR``, England and Wales by
default) or ``ack_days`` (calendar days). A category without one uses the statutory EU
clock, ``ACK_DEADLINE_DAYS`` calendar days (Directive 2019/1937 Art. 9(1)(b)). The
feedback clock stays ``FEEDBACK_DEADLINE_DAYS`` calendar days (Art. 9(1)(f)), counted
from the acknowledgement deadline until the case is acknowledged.

The clock a case was filed under is kept on the case (``Concern.ack_clock``: ``1wd`` or
``7d``), so an administrator changing a category later never moves an existing deadline.

A working-day clock is a statutory short clock (the LADO consultation "within one working
day"): its case escalates *on* its due day when it is still unacknowledged, so that the
escalation reviewers have that working day to meet it; a calendar-day clock escalates the
day after its due day, as before (``passed``).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any

import holidays
from sqlalchemy.orm import Session

from whistle.config import Settings, holiday_calendar_parts
from whistle.errors import InvalidInput
from whistle.store import options

ACKNOWLEDGE = "acknowledge"  # workflow.ACKNOWLEDGE (workflow imports nothing of this)
_MAX_DAYS = 366
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


@dataclass(frozen=True)
class Clock:
    days: int
    working: bool

    @property
    def code(self) -> str:
        """What ``Concern.ack_clock`` keeps: ``1wd`` or ``7d``."""
        return f"{self.days}{'wd' if self.working else 'd'}"

    def json(self) -> dict[str, int]:
        return {"ack_working_days": self.days} if self.working else {"ack_days": self.days}


def parse_code(code: str | None) -> Clock | None:
    found = re.fullmatch(r"(\d{1,3})(wd|d)", code or "")
    return Clock(int(found.group(1)), found.group(2) == "wd") if found else None


def of_category(category: dict[str, Any] | None, settings: Settings) -> Clock:
    """The category's own acknowledgement clock, or the EU default in calendar days."""
    category = category or {}
    if isinstance(category.get("ack_working_days"), int):
        return Clock(category["ack_working_days"], True)
    if isinstance(category.get("ack_days"), int):
        return Clock(category["ack_days"], False)
    return Clock(settings.ack_deadline_days, False)


def with_clocks(categories: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """The categories as ``GET /api/v1/intake`` lists them: each with ``ack_working_days``
    or ``ack_days`` (the default spelled out where a category has none)."""
    out = []
    for c in categories:
        entry = {k: v for k, v in c.items() if k not in ("ack_working_days", "ack_days")}
        out.append(entry | of_category(c, settings).json())
    return out


@functools.lru_cache(maxsize=8)
def _calendar(name: str) -> Any:
    parts = holiday_calendar_parts(name)
    if parts is None:
        return {}
    # Years are filled in as dates are asked about (the package expands on lookup).
    return holidays.country_holidays(parts[0], subdiv=parts[1])


def is_working_day(day: dt.date, calendar: str) -> bool:
    return day.weekday() < 5 and day not in _calendar(calendar)


def add(start: dt.date, clock: Clock, calendar: str) -> dt.date:
    """``start`` plus the clock: N calendar days, or the Nth working day after ``start``
    (a concern received on a Friday with a one-working-day clock is due on Monday, or on
    Tuesday when Monday is a bank holiday)."""
    if not clock.working:
        return start + dt.timedelta(days=clock.days)
    day, left = start, clock.days
    while left > 0:
        day += dt.timedelta(days=1)
        if is_working_day(day, calendar):
            left -= 1
    return day


def deadlines_at_intake(session: Session, settings: Settings, category_id: str,
                        today: dt.date) -> dict[str, Any]:
    """The new case's ``acknowledge_by``, ``feedback_by`` (owed from submission: from the
    acknowledgement deadline, Art. 9(1)(f)) and ``ack_clock`` columns."""
    found = next((c for c in options.categories(session) if c.get("id") == category_id), None)
    clock = of_category(found, settings)
    ack_by = add(today, clock, settings.holiday_calendar)
    return {"acknowledge_by": ack_by, "ack_clock": clock.code,
            "feedback_by": ack_by + dt.timedelta(days=settings.feedback_deadline_days)}


def passed(kind: str, due: dt.date, today: dt.date, ack_clock: str | None) -> bool:
    """Whether a deadline counts as passed today: the day after it, or on the day itself
    for the acknowledgement of a working-day clock (see the module's docstring)."""
    clock = parse_code(ack_clock)
    if kind == ACKNOWLEDGE and clock is not None and clock.working:
        return today >= due
    return today > due


def in_words(day: dt.date | None) -> str | None:
    """``Tuesday 1 June 2027`` (English, for the JSON API; pages say it in their language)."""
    if day is None:
        return None
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def describe(ack_clock: str | None, settings: Settings) -> dict[str, int]:
    """A case's acknowledgement clock as the API spells it."""
    return (parse_code(ack_clock) or Clock(settings.ack_deadline_days, False)).json()


# -- administrators set the clock per category ----------------------------------------------

_FIELD = re.compile(r"(ack_working_days|ack_days|retention_days)\s*=\s*(\d{1,5})")


def parse_category_fields(fields: list[str], line: int) -> dict[str, int]:
    """The optional fields after a category's label on the settings page:
    ``ack_working_days=1``, ``ack_days=7``, ``retention_days=27394``."""
    out: dict[str, int] = {}
    for raw in fields:
        found = _FIELD.fullmatch(raw.strip())
        if not found:
            raise InvalidInput(f"line {line}: after the label write ack_working_days=N, "
                               "ack_days=N or retention_days=N", "categories")
        key, value = found.group(1), int(found.group(2))
        limit = 100 * 366 if key == "retention_days" else _MAX_DAYS
        if not 1 <= value <= limit or key in out:
            raise InvalidInput(f"line {line}: {key} must be given once, from 1 to {limit}",
                               "categories")
        out[key] = value
    if "ack_working_days" in out and "ack_days" in out:
        raise InvalidInput(f"line {line}: give ack_working_days or ack_days, not both",
                           "categories")
    return out


def category_line(category: dict[str, Any]) -> str:
    """A category as the settings page shows it: ``id | label`` and its own fields."""
    extra = [f"{k}={category[k]}" for k in ("ack_working_days", "ack_days", "retention_days")
             if isinstance(category.get(k), int)]
    return " | ".join([str(category.get("id")), str(category.get("label")), *extra])


def words(data: dict[str, Any]) -> dict[str, str | None]:
    """``acknowledge_by_words`` and ``feedback_by_words`` for a JSON answer that holds
    ``acknowledge_by`` and ``feedback_by`` as ISO dates."""
    out: dict[str, str | None] = {}
    for key in ("acknowledge_by", "feedback_by"):
        if key in data:
            value = data[key]
            out[key + "_words"] = in_words(dt.date.fromisoformat(value) if value else None)
    return out
