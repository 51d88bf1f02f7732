"""Deadline reminders and escalation, run by ``flask --app app deadlines`` (cron).

Every open case owes feedback by ``feedback_by`` (from submission: received + the
acknowledgement window + the feedback window; moved on acknowledgement), and a received
case owes acknowledgement by ``acknowledge_by`` first. For each of them:

* from ``REMINDER_DAYS_BEFORE`` days before the deadline it owes until it passes, the
  assigned reviewers get one content-free reminder;
* once a deadline has passed (the day after it; on the day itself for the acknowledgement
  of a working-day clock, whistle.cases.clocks), it is recorded exactly once (``acknowledge_overdue`` /
  ``feedback_overdue``, which the reporter sees), the case is marked overdue, and the
  case escalates *with access* (whistle.cases.escalation): tier 1 the first time, tier 2
  when nobody acted within ``ESCALATION_DAYS`` after that; a later deadline passing tells
  the case's reviewers again and starts that wait again.

No mail goes to anyone the reporter excluded. Running it again the same day, or every
hour, changes nothing more: the ``reminded_*`` and ``escalated_*`` flags and the tier on
the case make each step happen once. ``now`` may be a day ahead (``deadlines --as-of``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle.cases import audit, clocks, escalation, workflow
from whistle.keys import InstanceKeys
from whistle.store.models import Concern


@dataclass
class DeadlineReport:
    reminded: list[str] = field(default_factory=list)  # case refs
    escalated: list[str] = field(default_factory=list)
    overdue: int = 0  # cases overdue after this run


def _flags(kind: str) -> tuple[str, str, str]:
    if kind == workflow.ACKNOWLEDGE:
        return "reminded_ack", "escalated_ack", "acknowledge_overdue"
    return "reminded_feedback", "escalated_feedback", "feedback_overdue"


def owed_deadlines(status: str, acknowledge_by: dt.date, feedback_by: dt.date | None
                   ) -> list[tuple[str, dt.date]]:
    """Every deadline an open case owes, earliest first: a received case owes acknowledgement
    and, already, feedback (Art. 9(1)(f)); any other open case owes feedback."""
    if status not in workflow.OPEN_STATUSES:
        return []
    owed = [(workflow.ACKNOWLEDGE, acknowledge_by)] if status == workflow.RECEIVED else []
    if feedback_by is not None:
        owed.append((workflow.FEEDBACK, feedback_by))
    return owed


def _remind(session: Session, keys: InstanceKeys, concern: Concern) -> int:
    return escalation.tell(session, keys, concern.id,
                           [a.reviewer for a in concern.assignments], "reminder")


# What deciding needs of each open case: columns, not the entity with its ciphertext.
_OPEN_CASES = select(
    Concern.id, Concern.status, Concern.acknowledge_by, Concern.feedback_by, Concern.overdue,
    Concern.reminded_ack, Concern.escalated_ack, Concern.reminded_feedback,
    Concern.escalated_feedback, Concern.escalation_tier, Concern.escalated_on,
    Concern.ack_clock,
).where(Concern.status.in_(workflow.OPEN_STATUSES)).order_by(Concern.created, Concern.id)
# Counted on the attention list's partial index (``ix_concerns_attention``), whose
# condition the query must repeat to use it: not a scan of every case.
_OVERDUE = select(func.count()).select_from(Concern).where(
    or_(Concern.under_routed.is_(True), Concern.overdue.is_(True)), Concern.overdue.is_(True))


def _due_step(row: Any, today: dt.date, settings: Settings) -> bool:
    """Whether this open case (a row of ``_OPEN_CASES``' columns) needs anything today."""
    if row.status == workflow.RECEIVED and row.feedback_by is None:
        return True  # a case stored before feedback was owed from submission
    owed = workflow.owed(row.status, row.acknowledge_by, row.feedback_by)
    if owed is None:
        return False
    kind, due = owed
    overdue = clocks.passed(kind, due, today, row.ack_clock)  # the category's clock
    newly = any(clocks.passed(k, on, today, row.ack_clock) and not getattr(row, _flags(k)[1])
                for k, on in owed_deadlines(row.status, row.acknowledge_by, row.feedback_by))
    before = dt.timedelta(days=settings.reminder_days_before)
    next_tier = (row.escalation_tier == 1 and row.escalated_on is not None
                 and today > row.escalated_on + dt.timedelta(days=settings.escalation_days))
    return (overdue != row.overdue or newly or (overdue and row.escalation_tier == 0)
            or (overdue and next_tier)
            or (not overdue and today >= due - before and not getattr(row, _flags(kind)[0])))


def run(session: Session, settings: Settings, keys: InstanceKeys,
        now: dt.datetime) -> DeadlineReport:
    """Send due reminders and escalate overdue cases; commit once per case changed.

    The open cases are read as plain columns in one pass; only those with a step due
    today are loaded and changed, each in its own transaction (a crash mid-run leaves
    every case either done or still due, and the next run finishes the rest). At a
    million cases the daily run reads only the open cases' few columns and writes nothing else.
    """
    report = DeadlineReport()
    due = [row.id for row in session.execute(_OPEN_CASES) if _due_step(row, now.date(), settings)]
    session.commit()  # end the read before the writes
    for case_ref in due:
        concern = session.get(Concern, case_ref)
        if concern is not None and concern.status in workflow.OPEN_STATUSES:  # not closed since
            _step(session, settings, keys, concern, now, report)
        session.commit()
    report.overdue = session.scalar(_OVERDUE) or 0
    return report


def _step(session: Session, settings: Settings, keys: InstanceKeys, concern: Concern,
          now: dt.datetime, report: DeadlineReport) -> None:
    """Whatever one open case needs today (caller's transaction)."""
    today = now.date()
    if concern.feedback_by is None:  # owed from submission, also by cases stored before
        concern.feedback_by = concern.acknowledge_by + dt.timedelta(
            days=settings.feedback_deadline_days)
    kind, due_on = workflow.owed_deadline(concern) or (workflow.FEEDBACK, concern.feedback_by)
    workflow.set_overdue(session, concern,
                         clocks.passed(kind, due_on, today, concern.ack_clock))
    newly = [(k, on) for k, on in owed_deadlines(concern.status, concern.acknowledge_by,
                                                  concern.feedback_by)
             if clocks.passed(k, on, today, concern.ack_clock)
             and not getattr(concern, _flags(k)[1])]
    for k, _on in newly:
        setattr(concern, _flags(k)[1], True)
    if concern.overdue and concern.escalation_tier == 0:
        _record_passed(session, concern, newly, now, {})
        escalation.tier_one(session, keys, concern, now, (newly[-1] if newly else (kind,))[0])
        report.escalated.append(concern.id)
    elif newly:
        _record_passed(session, concern, newly, now, escalation.again(session, keys, concern, now))
        report.escalated.append(concern.id)
    elif escalation.tier_two_due(session, settings, concern, today):
        escalation.tier_two(session, keys, concern, now)
        report.escalated.append(concern.id)
    elif (not concern.overdue and not getattr(concern, _flags(kind)[0])
          and today >= due_on - dt.timedelta(days=settings.reminder_days_before)):
        setattr(concern, _flags(kind)[0], True)
        sent = _remind(session, keys, concern)
        audit.record(session, concern.id, "deadline_reminder", "system", now,
                     {"deadline": kind, "due": due_on.isoformat(), "reviewers": sent})
        report.reminded.append(concern.id)


def _record_passed(session: Session, concern: Concern, passed: list[tuple[str, dt.date]],
                   now: dt.datetime, data: dict[str, Any]) -> None:
    """The trail (and the reporter's timeline) says which deadlines passed, once each."""
    for kind, on in passed:
        audit.record(session, concern.id, _flags(kind)[2], "system", now,
                     {"due": on.isoformat()} | data)
