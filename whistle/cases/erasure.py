"""Erasing manifestly irrelevant personal data (issue 23; GDPR Art. 17): one attachment,
message or internal note, by two assigned reviewers.

One proposes (``whistle.cases.proposals``, type ``erasure``, subject the case, payload the
item); a *different* assigned reviewer approves. Then the item's bytes are deleted and it
is replaced, in place, by a notice naming both reviewers and the day:

- a message or note: its ciphertext is overwritten by the notice sealed under the same key
  and context, so the reporter (for a message) and the reviewers see the notice where the
  text was;
- an attachment: every chunk is deleted, and its sealed description becomes the notice
  (``chunk_count`` 0); downloading it answers 410 ``erased``.

The trail records ``erasure_proposed`` and ``erased`` (the item's kind and id, both
reviewers), never the content. SQLite runs with ``secure_delete`` (whistle.store.db), so
freed pages are zeroed; what backups taken before still hold is said in
docs/referrals-and-checkins.md.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.cases import attachments, audit, notices, proposals
from whistle.cases import keys as casekeys
from whistle.cases.reading import Reader, assigned_case, case_keys
from whistle.errors import InvalidInput, NotFound, Refused
from whistle.store.models import (
    Assignment,
    Attachment,
    AttachmentChunk,
    Change,
    Concern,
    Message,
    Reviewer,
    utcnow,
)

ERASURE = "erasure"
TYPES = (ERASURE,)
ITEMS = ("attachment", "message", "note")
NOTICE = "Erased on %(day)s by %(first)s and %(second)s as manifestly irrelevant personal data."


def _erased(session: Session, case_ref: str) -> set[tuple[Any, Any]]:
    return {(p.get("item"), p.get("id")) for p in (proposals.payload(c) for c in session.scalars(
        select(Change).where(Change.type == ERASURE, Change.subject == case_ref,
                             Change.state == proposals.APPROVED)))}


def _item(session: Session, concern: Concern, item: Any, item_id: Any) -> Attachment | Message:
    if item not in ITEMS:
        raise InvalidInput("item must be attachment, message or note", "item")
    if not isinstance(item_id, str) or len(item_id) > 64:
        raise InvalidInput("id must be the item's id", "id")
    if (item, item_id) in _erased(session, concern.id):
        raise Refused("already_erased", "this item was already erased")
    if item == "attachment":
        att = session.get(Attachment, item_id)
        if att is None or att.concern_id != concern.id:
            raise NotFound("no such attachment on this case")
        return att
    msg = session.get(Message, item_id)
    kinds = ("note",) if item == "note" else ("message", "feedback")
    if msg is None or msg.concern_id != concern.id or msg.kind not in kinds:
        raise NotFound(f"no such {item} on this case")
    return msg


def pending(session: Session, case_ref: str) -> list[Change]:
    return proposals.pending(session, TYPES, subject=case_ref)


def propose(session: Session, signed: Reader, case_ref: Any, data: Any,
            now: dt.datetime | None = None) -> Change:
    """An assigned reviewer proposes erasing one item (commits). 404 unless assigned or the
    item is the case's; 409 ``already_erased``, ``already_proposed``."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    if not isinstance(data, dict):
        raise InvalidInput("the erasure must be a JSON object")
    item, item_id = data.get("item"), data.get("id")
    _item(session, concern, item, item_id)
    if any(proposals.payload(c) == {"item": item, "id": item_id}
           for c in pending(session, concern.id)):
        raise Refused("already_proposed", "erasing this item is already proposed")
    change = proposals.create(session, ERASURE, concern.id, {"item": item, "id": item_id},
                              signed.reviewer_id, now)
    audit.record(session, concern.id, "erasure_proposed", signed.reviewer_id, now,
                 {"erasure": change.id, "item": item, "id": item_id})
    notices.tell_reviewers(session, concern, besides=signed.reviewer_id)
    session.commit()
    return change


def _open(session: Session, concern: Concern, erasure_id: Any) -> Change:
    change = proposals.open_change(session, erasure_id, TYPES)
    if change.subject != concern.id:
        raise NotFound("no such erasure")
    session.refresh(change, with_for_update=True)  # two decisions at once: one wins
    if change.state != proposals.PENDING:
        raise Refused("already_decided", f"this change was already {change.state}")
    return change


def approve(session: Session, signed: Reader, case_ref: Any, erasure_id: Any,
            now: dt.datetime | None = None) -> Change:
    """A different assigned reviewer approves: the bytes go, the notice takes their place
    (commits). 409 ``second_person_required`` from the proposer."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    change = _open(session, concern, erasure_id)
    assigned = set(session.scalars(select(Assignment.reviewer_id).join(Reviewer).where(
        Assignment.concern_id == concern.id, Reviewer.active.is_(True))))
    proposals.guard(change, signed.reviewer_id, [], assigned)
    plan = proposals.payload(change)
    target = _item(session, concern, plan["item"], plan["id"])
    concern, ck = case_keys(session, signed, concern.id)  # the approver's own session
    names = {r.id: r.name for r in session.scalars(select(Reviewer).where(
        Reviewer.id.in_([change.proposed_by, signed.reviewer_id])))}
    notice = NOTICE % {"day": now.date().isoformat(),
                       "first": names.get(change.proposed_by, change.proposed_by),
                       "second": names.get(signed.reviewer_id, signed.reviewer_id)}
    if isinstance(target, Message):
        key = ck.case if target.kind == "note" else ck.thread
        target.body_ct = crypto.seal(key, notice.encode(),
                                     casekeys.part(concern.id, f"{target.kind}:{target.id}"))
    else:
        _erase_attachment(session, concern.id, target, ck, notice, now.date())
    proposals.decide(change, proposals.APPROVED, signed.reviewer_id, now)
    audit.record(session, concern.id, "erased", signed.reviewer_id, now,
                 {"erasure": change.id, "item": plan["item"], "id": plan["id"],
                  "proposed_by": change.proposed_by})
    notices.tell_reviewers(session, concern, besides=signed.reviewer_id)
    session.commit()
    return change


def _erase_attachment(session: Session, case_ref: str, att: Attachment,
                      ck: casekeys.CaseKeys, notice: str, day: dt.date) -> None:
    session.execute(delete(AttachmentChunk).where(AttachmentChunk.attachment_id == att.id))
    meta = {"filename": notice, "size": 0, "content_type": None, "erased": day.isoformat()}
    # Sealed as before (the case key, or the thread key for a file the reporter added later
    # and may list), so whoever listed the file sees the notice in its place.
    kind = bytes(att.meta_ct[:1]).decode("ascii", "replace")
    key = ck.thread if kind == attachments.KIND_THREAD else ck.case
    kind = attachments.KIND_THREAD if kind == attachments.KIND_THREAD else attachments.KIND_CASE
    att.meta_ct = kind.encode() + crypto.seal(
        key, json.dumps(meta).encode(), attachments.meta_context(case_ref, att.id, kind))
    att.chunk_count = 0


def reject(session: Session, signed: Reader, case_ref: Any, erasure_id: Any,
           now: dt.datetime | None = None) -> Change:
    """Any assigned reviewer (the proposer withdrawing it included) ends a proposed
    erasure (commits)."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    change = _open(session, concern, erasure_id)
    proposals.decide(change, proposals.REJECTED, signed.reviewer_id, now)
    audit.record(session, concern.id, "erasure_rejected", signed.reviewer_id, now,
                 {"erasure": change.id, "proposed_by": change.proposed_by})
    session.commit()
    return change


def refuse_if_erased(session: Session, att: Attachment) -> None:
    """410 ``erased`` for an attachment two reviewers erased (its bytes are gone)."""
    if att.chunk_count == 0 and ("attachment", att.id) in _erased(session, att.concern_id):
        raise Refused("erased", "this file was erased by two reviewers", 410)
