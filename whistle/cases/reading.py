"""Reading a case: the assignment check, the keys, the decrypted case, its files."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Protocol

from sqlalchemy import (
    and_,
    bindparam,
    literal_column,
    select,
)
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.cases import about, audit, oral, workflow
from whistle.cases import keys as casekeys
from whistle.cases.inbox import summary
from whistle.errors import KeysPending, NotFound
from whistle.keys import InstanceKeys
from whistle.store.models import (
    Assignment,
    Attachment,
    AuditEvent,
    CaseIdentity,
    Concern,
    ConcernAbout,
    Message,
    OralReport,
    Reviewer,
    WrappedKey,
    utcnow,
)
from whistle.store.prepared import PreparedQuery


class Reader(Protocol):
    """Whoever reads a case: a signed-in reviewer (``people.sessions.SignedIn``) or anything
    else that knows its reviewer id and can unlock its private key for this request."""

    reviewer_id: str

    def private_key(self) -> bytes: ...


# One round trip for the assignment check and the case row.
_ASSIGNED = select(Concern).join(Assignment, Assignment.concern_id == Concern.id).where(
    Assignment.concern_id == bindparam("case_ref"), Assignment.reviewer_id == bindparam("reviewer"))


def _assignment(session: Session, reviewer_id: str, case_ref: Any) -> Concern:
    if not isinstance(case_ref, str) or len(case_ref) > 64:
        raise NotFound()
    concern = session.scalars(_ASSIGNED, {"case_ref": case_ref, "reviewer": reviewer_id}).first()
    if concern is None:
        raise NotFound()
    return concern


def assigned_case(session: Session, reviewer_id: str, case_ref: Any) -> Concern:
    """The case if it is assigned to this reviewer (no key needed); NotFound otherwise, as
    for a case that does not exist."""
    return _assignment(session, reviewer_id, case_ref)


def case_keys(session: Session, signed: Reader, case_ref: Any) -> tuple[Concern, casekeys.CaseKeys]:
    concern = _assignment(session, signed.reviewer_id, case_ref)
    # One query both tells whether the reviewer holds keys (see holds_keys) and fetches them.
    held = casekeys.held_keys(session, concern.id, "reviewer", signed.reviewer_id)
    if not held:
        raise KeysPending()
    found = casekeys.unwrap_found(held, concern.id, "reviewer", signed.reviewer_id,
                                  signed.private_key())
    return concern, casekeys.CaseKeys(found[casekeys.CASE], found[casekeys.THREAD])


# Reading a case is an audit event too, once per reviewer per window (pages reload often).
OPENED_WINDOW = dt.timedelta(minutes=30)


def _record_opened(session: Session, concern_id: str, reviewer_id: str, now: dt.datetime,
                   trail: list[Any]) -> None:
    """Record "opened" unless this reviewer opened the case within the window; ``trail`` is the
    case's events in order (rows of seq, at, type, actor, data, hash), extended in place."""
    since = now - OPENED_WINDOW
    if any(e.type == "opened" and e.actor == reviewer_id and e.at > since for e in trail):
        return
    last = trail[-1] if trail else None
    event = audit.record(session, concern_id, "opened", reviewer_id, now,
                         after=(last.seq, last.hash) if last is not None else None)
    session.commit()
    trail.append(event)


# Compiled once (whistle.store.prepared): a case view runs four of these.
_TRAIL = PreparedQuery(select(AuditEvent.seq, AuditEvent.at, AuditEvent.type, AuditEvent.actor,
                              AuditEvent.data, AuditEvent.hash).where(
    AuditEvent.concern_id == bindparam("cid")).order_by(AuditEvent.seq))
_MESSAGES = PreparedQuery(select(Message.id, Message.sender, Message.reviewer_id, Message.created,
                                 Message.kind, Message.body_ct).where(
    Message.concern_id == bindparam("cid")).order_by(Message.seq))
_REVIEWERS = PreparedQuery(select(Reviewer.id, Reviewer.name, Reviewer.active).join(
    Assignment, Assignment.reviewer_id == Reviewer.id).where(
    Assignment.concern_id == bindparam("cid")).order_by(Assignment.reviewer_id))


# Reading a case, in one round trip: the assignment check, the case's columns and the
# reviewer's wrapped keys (two rows, one per key; none after a password reset).
_OPEN = PreparedQuery(select(
    Concern.id, Concern.status, Concern.category, Concern.unit, Concern.about_senior,
    Concern.created, Concern.acknowledge_by, Concern.feedback_by, Concern.overdue,
    Concern.under_routed, Concern.acknowledged_on, Concern.closed_on, Concern.outcome,
    Concern.proposed_outcome, Concern.proposed_by, Concern.details_ct, Concern.identity_ct,
    Concern.handover_due, WrappedKey.key_kind, WrappedKey.blob,
    # Most cases have no messages or files yet: then their queries are skipped.
    select(Message.id).where(Message.concern_id == Concern.id).exists().label("has_messages"),
    select(Attachment.id).where(Attachment.concern_id == Concern.id).exists().label("has_files"),
    # Most cases were sent online, name no one and carry no identity sealed apart: then the
    # reads of the oral record (issue 24), the person concerned (issue 25) and the identity's
    # state and requests (issue 22) are skipped too.
    select(OralReport.concern_id).where(OralReport.concern_id == Concern.id).exists()
    .label("is_oral"),
    select(ConcernAbout.concern_id).where(ConcernAbout.concern_id == Concern.id).exists()
    .label("has_about"),
    select(CaseIdentity.concern_id).where(CaseIdentity.concern_id == Concern.id).exists()
    .label("has_identity_row"),
).select_from(Assignment).join(Concern, Concern.id == Assignment.concern_id).outerjoin(
    WrappedKey, and_(WrappedKey.concern_id == Assignment.concern_id,
                     WrappedKey.recipient_kind == literal_column("'reviewer'"),
                     WrappedKey.recipient_id == Assignment.reviewer_id)).where(
    Assignment.concern_id == bindparam("case_ref"),
    Assignment.reviewer_id == bindparam("reviewer")))


def _open_keys(session: Session, signed: Reader, case_ref: Any
               ) -> tuple[Any, casekeys.CaseKeys]:
    """``case_keys`` for reading: the case as a row of ``_OPEN``'s columns."""
    if not isinstance(case_ref, str) or len(case_ref) > 64:
        raise NotFound()
    rows = _OPEN.all(session.connection(), {"case_ref": case_ref, "reviewer": signed.reviewer_id})
    if not rows:
        raise NotFound()
    held = {r.key_kind: r.blob for r in rows if r.key_kind is not None}
    if not held:
        raise KeysPending()
    concern = rows[0]
    found = casekeys.unwrap_found(held, concern.id, "reviewer", signed.reviewer_id,
                                  signed.private_key())
    return concern, casekeys.CaseKeys(found[casekeys.CASE], found[casekeys.THREAD])


def open_case(session: Session, signed: Reader, case_ref: Any,
              now: dt.datetime | None = None, instance: InstanceKeys | None = None
              ) -> dict[str, Any]:
    """The whole case, decrypted for this reviewer, and recorded as read by them.

    NotFound unless assigned to them. Feedback waiting on a closure proposal
    is under ``closure.feedback``, not among the messages the reporter has seen.
    With ``instance``, a case that escalated and waits for a key holder
    (``Concern.handover_due``) has its keys handed over by this reader's session
    (whistle.cases.escalation.hand_over).
    """
    concern, keys = _open_keys(session, signed, case_ref)
    case_ref = concern.id
    conn = session.connection()
    trail: list[Any] = _TRAIL.all(conn, {"cid": case_ref})
    _record_opened(session, case_ref, signed.reviewer_id, now or utcnow(), trail)
    details = crypto.open_sealed(keys.case, concern.details_ct, casekeys.part(case_ref, "details"))
    identity = (json.loads(crypto.open_sealed(keys.case, concern.identity_ct,
                                              casekeys.part(case_ref, "identity")))
                if concern.identity_ct else None)
    messages, notes, drafts = _conversation(session, case_ref, keys, concern.has_messages)
    reviewers = [{"id": rid, "name": name, "active": active}
                 for rid, name, active in _REVIEWERS.all(session.connection(), {"cid": case_ref})]
    from whistle.cases import attachments

    data: dict[str, Any] = summary(concern) | {
        "details": details.decode(), "identity": identity,
        "attachments": attachments.listing(session, case_ref, keys) if concern.has_files else [],
        "messages": messages, "notes": notes,
        "events": [{"at": e.at.isoformat(), "type": e.type, "actor": e.actor,
                    "data": json.loads(e.data)} for e in trail],
        "reviewers": reviewers,
        "acknowledged_on": concern.acknowledged_on.isoformat() if concern.acknowledged_on
        else None,
    }
    # channel, record (issue 24); the person concerned (issue 25)
    data |= oral.reviewer_part(session, case_ref, keys.thread, present=concern.is_oral)
    data |= about.case_view(session, signed.reviewer_id, case_ref, keys.case,
                            present=concern.has_about,
                            index_pepper=instance.index_pepper if instance else None)
    from whistle.cases.identity_release import reader_part  # opened by two (issue 22)
    data |= reader_part(session, instance, signed, case_ref, keys, concern.identity_ct, data,
                        has_row=concern.has_identity_row)
    if concern.status in (workflow.CLOSURE_PROPOSED, workflow.CLOSED):
        data["closure"] = _closure(concern, trail, drafts)
    if instance is not None and concern.handover_due:
        _hand_over(session, instance, case_ref, keys, signed.reviewer_id, now or utcnow())
    return data


def _conversation(session: Session, case_ref: str, keys: Any, has_messages: bool
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """The case's messages, its internal notes (under the case key, which the token never
    opens) and the feedback drafts of closure proposals, decrypted."""
    messages: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    drafts: dict[str, str] = {}
    rows = _MESSAGES.all(session.connection(), {"cid": case_ref}) if has_messages else []
    for mid, sender, reviewer_id, created, kind, body_ct in rows:
        key = keys.case if kind == "note" else keys.thread
        body = crypto.open_sealed(key, body_ct, casekeys.part(case_ref, f"{kind}:{mid}")).decode()
        entry = {"id": mid, "from": sender, "reviewer_id": reviewer_id,
                 "at": created.isoformat(), "kind": kind, "body": body}
        if kind == workflow.PROPOSED_FEEDBACK:
            drafts[mid] = body
        else:
            (notes if kind == "note" else messages).append(entry)
    return messages, notes, drafts


def _closure(concern: Any, trail: list[Any], drafts: dict[str, str]) -> dict[str, Any]:
    closure = {"proposed_by": concern.proposed_by,
               "outcome": concern.outcome or concern.proposed_outcome,
               "closed_on": concern.closed_on.isoformat() if concern.closed_on else None}
    if concern.status == workflow.CLOSURE_PROPOSED:
        # As workflow.pending_feedback_id, from the trail already read.
        proposals = [e for e in trail if e.type == "closure_proposed"]
        pending = json.loads(proposals[-1].data).get("feedback") if proposals else None
        closure["feedback"] = drafts.get(pending) if pending else None
    return closure


def _hand_over(session: Session, instance: InstanceKeys, case_ref: str,
               keys: casekeys.CaseKeys, reviewer_id: str, now: dt.datetime) -> None:
    from whistle.cases import escalation

    session.commit()  # the reads end here: the hand-over is a transaction of its own
    escalation.hand_over(session, instance, case_ref, keys, reviewer_id, now)


def attachment_for(session: Session, signed: Reader, case_ref: Any, attachment_id: Any
                   ) -> tuple[Attachment, casekeys.CaseKeys]:
    """An attachment of a case assigned to this reviewer, with the case's keys to open it."""
    concern, keys = case_keys(session, signed, case_ref)
    att = session.get(Attachment, attachment_id) if isinstance(attachment_id, str) else None
    if att is None or att.concern_id != concern.id:
        raise NotFound()
    return att, keys


def record_download(session: Session, signed: Reader, att: Attachment,
                    now: dt.datetime | None = None) -> None:
    """A reviewer takes a file of the case away: an ``attachment_downloaded`` event in the
    case's trail (who, when, which file), committed before any byte of it is sent. Every
    download counts, not one per window as ``opened`` does: a copy leaving the system is
    what a chain of custody must show."""
    audit.record(session, att.concern_id, "attachment_downloaded", signed.reviewer_id,
                 now or utcnow(), {"attachment": att.id})
    session.commit()


