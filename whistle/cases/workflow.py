"""The case workflow as policy: who may move a case where, and what it records.

    received -> acknowledged -> investigating -> closure_proposed -> closed
                                     ^                  |              |
                                     +---- rejected ----+   reopened --+

* Any assigned reviewer may acknowledge, start investigating, message the
  reporter or propose closure (with an outcome).
* No one closes alone: only a *different* assigned reviewer confirms a
  proposal (``closed``) or rejects it (back to ``investigating``).
* Reopening a closed case needs a written reason.
* Every change is an audit event; feedback for the reporter is sealed with
  the thread key, like a message.
* Feedback proposed with a closure waits, sealed, until the second reviewer
  confirms: two people agree on what the reporter is told, and a rejected
  proposal never reaches them.
* Deadlines: a ``received`` case owes acknowledgement by ``acknowledge_by``;
  an acknowledged, open case owes feedback by ``feedback_by``. A case past the
  deadline it owes is overdue (``deadlines`` escalates it once).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.errors import Refused
from whistle.cases import audit
from whistle.cases import keys as casekeys
from whistle.store.models import Assignment, AuditEvent, Concern, Message, new_id

RECEIVED = "received"
ACKNOWLEDGED = "acknowledged"
INVESTIGATING = "investigating"
CLOSURE_PROPOSED = "closure_proposed"
CLOSED = "closed"
STATUSES = (RECEIVED, ACKNOWLEDGED, INVESTIGATING, CLOSURE_PROPOSED, CLOSED)
OPEN_STATUSES = (RECEIVED, ACKNOWLEDGED, INVESTIGATING, CLOSURE_PROPOSED)
OUTCOMES = ("substantiated", "partially_substantiated", "not_substantiated", "referred",
            "withdrawn")
# What the reporter's timeline shows (types only, dates to the day).
REPORTER_EVENTS = frozenset({
    "received", "acknowledged", "investigating", "closure_proposed", "closure_rejected",
    "closed", "reopened", "reviewer_message", "reporter_message", "feedback",
    "acknowledge_overdue", "feedback_overdue", "token_replaced", "attachment_added",
})


ACKNOWLEDGE = "acknowledge"
FEEDBACK = "feedback"
# Feedback held back until a closure proposal is confirmed (thread key, reviewers only).
PROPOSED_FEEDBACK = "draft_feedback"  # fits Message.kind (16)


def owed_deadline(concern: Concern) -> tuple[str, dt.date] | None:
    """The deadline the case currently owes the reporter: (kind, date), or None once closed."""
    return owed(concern.status, concern.acknowledge_by, concern.feedback_by)


def owed(status: str, acknowledge_by: dt.date, feedback_by: dt.date | None
         ) -> tuple[str, dt.date] | None:
    """``owed_deadline`` from the three columns it depends on."""
    if status == RECEIVED:
        return ACKNOWLEDGE, acknowledge_by
    if status in OPEN_STATUSES and feedback_by is not None:
        return FEEDBACK, feedback_by
    return None


def is_overdue(concern: Concern, today: dt.date) -> bool:
    owed = owed_deadline(concern)
    return owed is not None and today > owed[1]


class WorkflowError(Refused):
    """A move the workflow does not allow (409 unless said otherwise)."""


def add_message(session: Session, concern: Concern, thread_key: bytes, kind: str, sender: str,
                reviewer_id: str | None, body: str, today: dt.date) -> Message:
    seq = (session.scalar(select(func.max(Message.seq)).where(
        Message.concern_id == concern.id)) or 0) + 1
    msg = Message(id=new_id(), concern_id=concern.id, seq=seq, kind=kind, sender=sender,
                  reviewer_id=reviewer_id, created=today, body_ct=b"")
    msg.body_ct = crypto.seal(thread_key, body.encode(),
                              casekeys.part(concern.id, f"{kind}:{msg.id}"))
    session.add(msg)
    return msg


def pending_feedback_id(session: Session, concern_id: str) -> str | None:
    """The id of the feedback proposed with the latest closure proposal, if any."""
    event = session.scalars(select(AuditEvent).where(
        AuditEvent.concern_id == concern_id, AuditEvent.type == "closure_proposed")
        .order_by(AuditEvent.seq.desc()).limit(1)).first()
    if event is None:
        return None
    found: str | None = json.loads(event.data).get("feedback")
    return found


def _release_feedback(session: Session, concern: Concern, thread_key: bytes,
                      today: dt.date) -> Message | None:
    """On confirmation: re-seal the proposal's feedback as a message the reporter can read."""
    draft_id = pending_feedback_id(session, concern.id)
    draft = session.get(Message, draft_id) if draft_id else None
    if draft is None or draft.kind != PROPOSED_FEEDBACK:
        return None
    body = crypto.open_sealed(thread_key, draft.body_ct,
                              casekeys.part(concern.id, f"{draft.kind}:{draft.id}")).decode()
    return add_message(session, concern, thread_key, "feedback", "reviewer", draft.reviewer_id,
                       body, today)


def set_overdue(session: Session, concern: Concern, overdue: bool) -> None:
    """Mark the case overdue or not, with the copy its assignments keep for the inbox."""
    if concern.overdue == overdue:
        return
    concern.overdue = overdue
    # Through the ORM, so that the inbox counts (whistle.store.counts) see each change.
    for a in session.scalars(select(Assignment).where(Assignment.concern_id == concern.id)):
        a.overdue = overdue


def _set_status(session: Session, concern: Concern, status: str) -> None:
    concern.status = status
    for a in session.scalars(select(Assignment).where(Assignment.concern_id == concern.id)):
        a.status = status


def transition(session: Session, concern: Concern, actor_id: str, to: str,
               keys: casekeys.CaseKeys, config: Mapping[str, Any], now: dt.datetime,
               note: str | None = None, outcome: str | None = None,
               feedback: str | None = None) -> str:
    """Apply one requested move; returns the new status or raises WorkflowError."""
    current = concern.status
    data: dict[str, Any] = {"from": current}
    today = now.date()
    if to == ACKNOWLEDGED:
        if current != RECEIVED:
            raise WorkflowError("invalid_transition", f"cannot acknowledge a case that is {current}")
        new, event = ACKNOWLEDGED, "acknowledged"
        concern.acknowledged_on = today
        concern.feedback_by = today + dt.timedelta(days=config["FEEDBACK_DEADLINE_DAYS"])
    elif to == INVESTIGATING:
        if current in (RECEIVED, ACKNOWLEDGED):
            new, event = INVESTIGATING, "investigating"
            if concern.acknowledged_on is None:
                concern.acknowledged_on = today
                concern.feedback_by = today + dt.timedelta(days=config["FEEDBACK_DEADLINE_DAYS"])
        elif current == CLOSURE_PROPOSED:
            if concern.proposed_by == actor_id:
                raise WorkflowError("second_reviewer_required",
                                    "another assigned reviewer must reject or confirm the proposal")
            new, event = INVESTIGATING, "closure_rejected"
            data["proposed_by"] = concern.proposed_by
            concern.proposed_by = concern.proposed_outcome = None
        elif current == CLOSED:
            if not note:
                raise WorkflowError("reason_required", "reopening a case needs a written reason",
                                    400)
            new, event = INVESTIGATING, "reopened"
            concern.closed_on = concern.outcome = None
            concern.proposed_by = concern.proposed_outcome = None
        else:
            raise WorkflowError("invalid_transition", f"the case is already {current}")
    elif to == CLOSED:
        if current == CLOSURE_PROPOSED:
            if concern.proposed_by == actor_id:
                raise WorkflowError("second_reviewer_required",
                                    "a different assigned reviewer must confirm the closure")
            new, event = CLOSED, "closed"
            data["proposed_by"] = concern.proposed_by
            concern.outcome, concern.closed_on = concern.proposed_outcome, today
            data["outcome"] = concern.outcome
            released = _release_feedback(session, concern, keys.thread, today)
            if released is not None:
                data["released_feedback"] = released.id
        elif current in (RECEIVED, ACKNOWLEDGED, INVESTIGATING):
            if outcome not in OUTCOMES:
                raise WorkflowError("outcome_required",
                                    "proposing closure needs an outcome: " + ", ".join(OUTCOMES),
                                    400)
            new, event = CLOSURE_PROPOSED, "closure_proposed"
            concern.proposed_by, concern.proposed_outcome = actor_id, outcome
            data["outcome"] = outcome
        else:
            raise WorkflowError("invalid_transition", f"the case is already {current}")
    else:
        raise WorkflowError("invalid_transition", f"unknown status {to!r}", 400)
    _set_status(session, concern, new)
    if concern.overdue and not is_overdue(concern, today):
        set_overdue(session, concern, False)  # the owed step was taken; the trail keeps it
    if note:
        msg = add_message(session, concern, keys.case, "note", "reviewer", actor_id, note, today)
        data["note"] = msg.id
    if feedback:
        # With a proposal the feedback waits for the second reviewer; otherwise it goes now.
        kind = PROPOSED_FEEDBACK if new == CLOSURE_PROPOSED else "feedback"
        msg = add_message(session, concern, keys.thread, kind, "reviewer", actor_id, feedback,
                          today)
        data["feedback"] = msg.id
    audit.record(session, concern.id, event, actor_id, now, data)
    return new
