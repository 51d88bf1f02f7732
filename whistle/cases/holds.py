"""Legal holds (issue 23): two assigned reviewers place a hold on a case, and two lift it.

A hold (legal proceedings, an inquiry, a subject access request in progress) keeps a case
from being deleted when its retention ends (whistle.cases.retention). Placing and lifting
are proposals (``whistle.cases.proposals``, types ``hold`` and ``hold_lift``, subject the
case): an assigned reviewer proposes, a *different* assigned reviewer approves (the proposer
gets 409 ``second_person_required``); any assigned reviewer may reject (the proposer
withdrawing). The reason is sealed like an internal note (the other reviewers read it); the
trail records ``hold_proposed`` / ``hold_lift_proposed``, then ``hold_placed`` /
``hold_lifted`` or ``hold_rejected``, with both names. One hold proposal at a time per case.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import validation
from whistle.cases import audit, notices, proposals, retention, workflow
from whistle.cases.reading import Reader, assigned_case, case_keys
from whistle.config import Settings
from whistle.errors import NotFound, Refused
from whistle.store.models import Assignment, Change, Reviewer, utcnow

HOLD, LIFT = "hold", "hold_lift"
TYPES = (HOLD, LIFT)
_EVENTS = {HOLD: ("hold_proposed", "hold_placed"), LIFT: ("hold_lift_proposed", "hold_lifted")}


def pending(session: Session, case_ref: str) -> Change | None:
    found = proposals.pending(session, TYPES, subject=case_ref)
    return found[0] if found else None


def propose(session: Session, signed: Reader, settings: Settings, case_ref: Any, reason: Any,
            lift: bool = False, now: dt.datetime | None = None) -> Change:
    """An assigned reviewer proposes placing (or lifting) a hold (commits). 400 without a
    reason to place one; 409 ``already_on_hold``, ``not_on_hold``, ``already_proposed``."""
    text = validation.text(reason, "reason", settings.max_details_chars, required=not lift)
    concern, ck = case_keys(session, signed, case_ref)  # 404 unless theirs; their session
    now, me = now or utcnow(), signed.reviewer_id
    row = retention.state(session, concern.id)
    on_hold = row is not None and row.on_hold
    if lift and not on_hold:
        raise Refused("not_on_hold", "this case is not on hold")
    if not lift and on_hold:
        raise Refused("already_on_hold", "this case is already on hold")
    if pending(session, concern.id) is not None:
        raise Refused("already_proposed", "a hold on this case is already proposed: another "
                      "assigned reviewer approves or rejects it")
    data: dict[str, Any] = {}
    if text:
        data["note"] = workflow.add_message(session, concern, ck.case, "note", "reviewer", me,
                                            text, now.date()).id
    kind = LIFT if lift else HOLD
    change = proposals.create(session, kind, concern.id, data, me, now)
    audit.record(session, concern.id, _EVENTS[kind][0], me, now, data | {"change": change.id})
    notices.tell_reviewers(session, concern, besides=me)
    session.commit()
    return change


def _assigned_ids(session: Session, case_ref: str) -> set[str]:
    return set(session.scalars(select(Assignment.reviewer_id).join(Reviewer).where(
        Assignment.concern_id == case_ref, Reviewer.active.is_(True))))


def _waiting(session: Session, signed: Reader, case_ref: Any) -> tuple[Any, Change]:
    concern = assigned_case(session, signed.reviewer_id, case_ref)  # 404 unless theirs
    change = pending(session, concern.id)
    if change is None:
        raise NotFound("no hold on this case is waiting for approval")
    return concern, change


def approve(session: Session, signed: Reader, case_ref: Any,
            now: dt.datetime | None = None) -> Change:
    """A different assigned reviewer approves the pending hold proposal (commits)."""
    now, me = now or utcnow(), signed.reviewer_id
    concern, change = _waiting(session, signed, case_ref)
    proposals.guard(change, me, (), _assigned_ids(session, concern.id))
    proposals.decide(change, proposals.APPROVED, me, now)
    row = retention.ensure_state(session, concern.id)
    row.on_hold = change.type == HOLD
    row.hold_since = now.date() if row.on_hold else None
    audit.record(session, concern.id, _EVENTS[change.type][1], me, now,
                 {"change": change.id, "proposed_by": change.proposed_by})
    notices.tell_reviewers(session, concern, besides=me)
    session.commit()
    return change


def reject(session: Session, signed: Reader, case_ref: Any,
           now: dt.datetime | None = None) -> Change:
    """Any assigned reviewer rejects the pending hold proposal, the proposer included
    (withdrawing it) (commits)."""
    now, me = now or utcnow(), signed.reviewer_id
    concern, change = _waiting(session, signed, case_ref)
    proposals.decide(change, proposals.REJECTED, me, now)
    audit.record(session, concern.id, "hold_rejected", me, now,
                 {"change": change.id, "proposed_by": change.proposed_by,
                  "lift": change.type == LIFT})
    session.commit()
    return change


def describe(session: Session, signed: Reader, settings: Settings, case_ref: Any
             ) -> dict[str, Any]:
    """The case's hold and retention, for its assigned reviewers."""
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    row = retention.state(session, concern.id)
    waiting = pending(session, concern.id)
    expires = None
    if concern.status == workflow.CLOSED and concern.closed_on is not None:
        from whistle.store import options

        days = retention.retention_days(settings, options.categories(session),
                                        concern.category, concern.outcome)
        expires = (concern.closed_on + dt.timedelta(days=days)).isoformat()
    return {
        "case_ref": concern.id, "on_hold": bool(row and row.on_hold),
        "since": row.hold_since.isoformat() if row and row.hold_since else None,
        "pending": None if waiting is None else {
            "change_id": waiting.id, "action": "lift" if waiting.type == LIFT else "place",
            "proposed_by": waiting.proposed_by, "at": waiting.proposed_at.date().isoformat()},
        "retained_until": expires,
    }
