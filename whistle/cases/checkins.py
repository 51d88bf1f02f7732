"""Detriment check-ins after closure (issue 23; ISO 37002 8.3.2).

Once a case is closed, its reporter's status page asks, at ``CHECKIN_MONTHS`` after the
closure (default 1, 3 and 6 months), whether they have been treated badly since raising
the concern. They may answer at any time after closure.

- "no" is counted per quarter in ``CheckinTally`` and nowhere else: no event, no mail.
- "yes" is counted too and, with details, opens a **new case** in the ``detriment``
  category, routed as a concern whose reporter excluded every reviewer the original case
  ever had (assigned, shared, escalated or holding a withheld copy): none of them is
  assigned, gets a key, or can be added later. It has its own reference, token and
  clocks. The new case's trail records ``detriment_linked`` with the original
  reference; the original case's trail records nothing, so that its reviewers (who may be
  the people the reporter now complains of) are not told.

``Checkin`` keeps only how many prompts were answered and the day of the last answer.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from whistle import validation
from whistle.cases import audit, intake, stats, workflow
from whistle.config import Settings
from whistle.errors import InvalidInput, Refused
from whistle.keys import InstanceKeys
from whistle.store.models import (
    Assignment,
    AuditEvent,
    Checkin,
    CheckinTally,
    Concern,
    Reviewer,
    WrappedKey,
    utcnow,
)

DETRIMENT = "detriment"
ANSWERS = ("yes", "no")
NOT_CLOSED = "the check-in opens once the case is closed"
CHOOSE = "answer must be yes or no"
_NAMED_BY = ("reviewer", "reviewers", "replacements", "awaiting_keys")  # trail data keys


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later (the month's last day where it has fewer days)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise ValueError("no such month")  # pragma: no cover


def prompt(session: Session, case_ref: str, settings: Settings, today: dt.date
           ) -> dict[str, Any] | None:
    """What the status page shows of the check-ins, or None before closure: ``due``
    (ask now), ``answered`` (prompts answered), ``next`` (the next prompt's day)."""
    closed_on = session.scalar(select(Concern.closed_on).where(
        Concern.id == case_ref, Concern.status == workflow.CLOSED))
    if closed_on is None:
        return None
    points = [add_months(closed_on, m) for m in settings.checkin_months]
    reached = sum(1 for p in points if p <= today)
    row = session.get(Checkin, case_ref)
    answered = row.answered_round if row is not None else 0
    upcoming = [p for p in points if p > today]
    return {"due": reached > answered, "answered": answered,
            "next": upcoming[0].isoformat() if upcoming else None,
            "open": True}


def _tally(session: Session, today: dt.date, answer: str) -> None:
    """One more answer in the quarter's count: an atomic increment, or the first row (two
    first answers at once: the one that loses the insert increments)."""
    quarter = stats.quarter_of(today)
    bump = update(CheckinTally).where(CheckinTally.quarter == quarter,
                                      CheckinTally.answer == answer).values(
        n=CheckinTally.n + 1)
    if session.execute(bump).rowcount:  # type: ignore[attr-defined]
        return
    try:
        with session.begin_nested():
            session.add(CheckinTally(quarter=quarter, answer=answer, n=1))
    except IntegrityError:
        session.execute(bump)


def _progress(session: Session, case_ref: str, reached: int, today: dt.date) -> None:
    row = session.get(Checkin, case_ref)
    if row is None:
        try:
            with session.begin_nested():
                session.add(Checkin(concern_id=case_ref, answered_round=reached,
                                    last_answered=today))
            return
        except IntegrityError:  # the same reporter's answer twice at once
            row = session.get_one(Checkin, case_ref, populate_existing=True)
    row.answered_round = max(row.answered_round, reached)
    row.last_answered = today


def original_reviewers(session: Session, case_ref: str) -> list[str]:
    """Everyone who was ever a reviewer of the case: assigned, holding a key (withheld
    escalation copies too), or acting or named in its trail."""
    ids = set(session.scalars(select(Assignment.reviewer_id).where(
        Assignment.concern_id == case_ref)))
    ids |= set(session.scalars(select(WrappedKey.recipient_id).where(
        WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == "reviewer")))
    for actor, data in session.execute(select(AuditEvent.actor, AuditEvent.data).where(
            AuditEvent.concern_id == case_ref)):
        ids.add(actor)
        named = json.loads(data or "{}")
        for key in _NAMED_BY:
            value = named.get(key)
            ids.update(v for v in (value if isinstance(value, list) else [value])
                       if isinstance(v, str))
    return sorted(set(session.scalars(select(Reviewer.id).where(Reviewer.id.in_(ids)))))


def answer(session: Session, keys: InstanceKeys, settings: Settings, case_ref: str,
           data: dict[str, Any], now: dt.datetime | None = None
           ) -> tuple[str, intake.Receipt | None]:
    """Record a check-in answer for a closed case (commits). 409 ``not_closed`` before
    closure. Returns the answer and, when a "yes" came with details, the new detriment
    case's receipt (its reference and token, shown once)."""
    now = now or utcnow()
    today = now.date()
    choice = data.get("answer")
    if choice not in ANSWERS:
        raise InvalidInput(CHOOSE, "answer")
    details = validation.text(data.get("details"), "details", settings.max_details_chars)
    concern = session.get_one(Concern, case_ref)
    if concern.status != workflow.CLOSED:
        raise Refused("not_closed", NOT_CLOSED)
    current = prompt(session, case_ref, settings, today) or {}
    points_reached = current.get("answered", 0) + (1 if current.get("due") else 0)
    _progress(session, case_ref, points_reached, today)
    _tally(session, today, choice)
    if choice == "no" or not details:
        session.commit()
        return choice, None
    return choice, _open_detriment_case(session, keys, settings, concern, details, now)


def _open_detriment_case(session: Session, keys: InstanceKeys, settings: Settings,
                         original: Concern, details: str, now: dt.datetime
                         ) -> intake.Receipt:
    excluded = original_reviewers(session, original.id)
    text = (f"Detriment reported at a check-in after case {original.id} was closed.\n\n"
            + details)
    sub = intake.Submission(category=DETRIMENT, details=text, unit=original.unit,
                            about_senior=original.about_senior,
                            exclude_reviewers=tuple(excluded), roster_sealed=True)
    receipt = intake.submit(session, keys, settings, sub, now=now)  # commits, with the tally
    day = dt.datetime.combine(now.date(), dt.time())
    audit.record(session, receipt.case_ref, "detriment_linked", "system", day,
                 {"case": original.id, "excluded_reviewers": len(excluded)})
    session.commit()
    return receipt


def _totals(session: Session) -> dict[str, int]:
    totals = {a: 0 for a in ANSWERS}
    for row in session.scalars(select(CheckinTally)):
        totals[row.answer] = totals.get(row.answer, 0) + row.n
    return totals


def breakdown(session: Session) -> stats.Breakdown:
    """Check-in answers per answer, over all time, small counts suppressed (the statistics
    page's rule, whistle.cases.stats)."""
    return stats.breakdown(_totals(session), list(ANSWERS))


def figures(session: Session) -> dict[str, Any]:
    """``breakdown`` as JSON, with the total (None under the threshold)."""
    totals = _totals(session)
    split = stats.breakdown(totals, list(ANSWERS))
    return {"answers": [{"answer": c.key, "count": c.count, "suppressed": c.reason}
                        for c in split.cells],
            "total": stats.shown(sum(totals.values()))}
