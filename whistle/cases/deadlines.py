"""Deadline reminders and escalation, run by ``flask --app app deadlines`` (cron).

For every open case, against the deadline it owes (see ``workflow.owed_deadline``):

* from ``REMINDER_DAYS_BEFORE`` days before the deadline until it passes, the
  assigned reviewers get one content-free reminder;
* once it has passed, the case is escalated exactly once per deadline: it is
  marked overdue, an audit event the reporter sees is recorded
  (``acknowledge_overdue`` / ``feedback_overdue``), and independent reviewers
  and administrators are notified, never one the reporter excluded.

Running it again the same day, or every hour, changes nothing more: the
``reminded_*`` and ``escalated_*`` flags on the case make each step happen once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle import notify
from whistle.cases import audit, notices, sharing, workflow
from whistle.keys import InstanceKeys
from whistle.store.models import Concern, Reviewer


@dataclass
class DeadlineReport:
    reminded: list[str] = field(default_factory=list)  # case refs
    escalated: list[str] = field(default_factory=list)
    overdue: int = 0  # cases overdue after this run


def _flags(kind: str) -> tuple[str, str, str]:
    if kind == workflow.ACKNOWLEDGE:
        return "reminded_ack", "escalated_ack", "acknowledge_overdue"
    return "reminded_feedback", "escalated_feedback", "feedback_overdue"


def _remind(session: Session, concern: Concern) -> int:
    return notices.tell_reviewers(session, concern, "reminder")


def _escalate(session: Session, keys: InstanceKeys, concern: Concern) -> tuple[int, int]:
    """Notify independent reviewers and administrators who are not excluded from the case."""
    people = session.scalars(select(Reviewer).where(
        Reviewer.active.is_(True),
        or_(Reviewer.is_admin.is_(True),
            Reviewer.is_independent.is_(True) & Reviewer.is_reviewer.is_(True))))
    independents = admins = 0
    for person in people:
        if sharing.is_excluded(session, keys, concern.id, person.id):
            continue
        if person.is_independent and person.is_reviewer:
            notify.queue(session, person.email, "escalation")
            independents += 1
        if person.is_admin:
            notify.queue(session, person.email, "admin_attention")
            admins += 1
    return independents, admins


# What deciding needs of each open case: columns, not the entity with its ciphertext.
_OPEN_CASES = select(
    Concern.id, Concern.status, Concern.acknowledge_by, Concern.feedback_by, Concern.overdue,
    Concern.reminded_ack, Concern.escalated_ack, Concern.reminded_feedback,
    Concern.escalated_feedback,
).where(Concern.status.in_(workflow.OPEN_STATUSES)).order_by(Concern.created, Concern.id)
# Counted on the attention list's partial index (``ix_concerns_attention``), whose
# condition the query must repeat to use it: not a scan of every case.
_OVERDUE = select(func.count()).select_from(Concern).where(
    or_(Concern.under_routed.is_(True), Concern.overdue.is_(True)), Concern.overdue.is_(True))


def _due_step(row: Any, today: dt.date, before: dt.timedelta) -> bool:
    """Whether this open case (a row of ``_OPEN_CASES``' columns) needs anything today."""
    owed = workflow.owed(row.status, row.acknowledge_by, row.feedback_by)
    if owed is None:
        return False
    kind, due = owed
    reminded, escalated, _event = _flags(kind)
    overdue = today > due
    return (overdue != row.overdue or (overdue and not getattr(row, escalated))
            or (not overdue and today >= due - before and not getattr(row, reminded)))


def run(session: Session, settings: Settings, keys: InstanceKeys,
        now: dt.datetime) -> DeadlineReport:
    """Send due reminders and escalate newly overdue cases; commit once per case changed.

    The open cases are read as plain columns in one pass; only those with a step due
    today are loaded and changed, each in its own transaction (a crash mid-run leaves
    every case either done or still due, and the next run finishes the rest). At a
    million cases the daily run reads only the open cases' few columns and writes nothing else.
    """
    today = now.date()
    before = dt.timedelta(days=settings.reminder_days_before)
    report = DeadlineReport()
    due = [row.id for row in session.execute(_OPEN_CASES) if _due_step(row, today, before)]
    session.commit()  # end the read before the writes
    for case_ref in due:
        concern = session.get(Concern, case_ref)
        owed = workflow.owed_deadline(concern) if concern is not None else None
        if concern is None or owed is None:  # closed meanwhile
            continue
        kind, due_on = owed
        reminded, escalated, event = _flags(kind)
        workflow.set_overdue(session, concern, today > due_on)
        if concern.overdue and not getattr(concern, escalated):
            setattr(concern, escalated, True)
            independents, admins = _escalate(session, keys, concern)
            audit.record(session, case_ref, event, "system", now,
                         {"due": due_on.isoformat(), "independent_reviewers": independents,
                          "administrators": admins})
            report.escalated.append(case_ref)
        elif not concern.overdue and today >= due_on - before and not getattr(concern, reminded):
            setattr(concern, reminded, True)
            sent = _remind(session, concern)
            audit.record(session, case_ref, "deadline_reminder", "system", now,
                         {"deadline": kind, "due": due_on.isoformat(), "reviewers": sent})
            report.reminded.append(case_ref)
        session.commit()
    report.overdue = session.scalar(_OVERDUE) or 0
    return report
