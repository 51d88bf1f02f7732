"""Opening a reporter's identity: one assigned reviewer requests it with a reason, a
*different* assigned reviewer approves (issue 22; the proposal mechanism of
``whistle.cases.proposals``, type ``identity_release``).

The identity key exists only as shares (``whistle.cases.identity``), so opening it needs
two shares in one session:

1. The request: the requester's session unwraps their own share and *deposits* it for
   every other share holder: sealed under a key derived from ``keys/`` (never in the
   database), then HPKE-wrapped for that holder (``IdentityShare`` with ``source`` = the
   requester). A holder's private key and the whole database still open only one share:
   the deposit also needs the server's key material.
2. The approval: the approver's session unwraps their own share and the deposit for them,
   combines the two, checks the key opens the identity, and seals the key under the
   case's thread key (``CaseIdentity.open_ct``): the identity is released to every
   assigned reviewer (and to the reporter's token, whose own identity it is). The shares
   are deleted: they are not needed any more.
3. When the requester or the approver holds no share (they joined the case later), the
   approval is recorded and the release completes in the session of the next share holder
   who opens the case (``advance``): a holder without a deposit deposits their own share,
   a holder with one completes it.

The trail records ``identity_requested``, ``identity_request_approved``,
``identity_released`` (with the request, the requester and the approver) or
``identity_request_rejected``; the reason is sealed under the thread key
(``IdentityRequest``) and shown beside those events to the reviewers, and beside
``identity_released`` on the reporter's timeline (Directive 2019/1937 Art. 16(3)).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from whistle import crypto, validation
from whistle import keys as instancekeys
from whistle.cases import audit, notices, proposals
from whistle.cases import identity as ident
from whistle.cases import keys as casekeys
from whistle.cases.reading import Reader, assigned_case, case_keys
from whistle.config import Settings
from whistle.errors import NotFound, Refused
from whistle.keys import InstanceKeys
from whistle.store.models import (
    Assignment,
    CaseIdentity,
    Change,
    Concern,
    IdentityRequest,
    IdentityShare,
    Reviewer,
    utcnow,
)

REQUEST = "identity_release"
TYPES = (REQUEST,)


def _reason_part(case_ref: str, request_id: str) -> str:
    return casekeys.part(case_ref, f"identity-reason:{request_id}")


def _identity_row(session: Session, case_ref: str, legacy: bytes | None) -> CaseIdentity:
    row = session.get(CaseIdentity, case_ref)
    if row is None:
        if legacy is not None:
            raise Refused("already_released", "the reporter's identity is already open to "
                          "the reviewers of this case")
        raise Refused("no_identity", "the reporter did not give their identity")
    return row


def request(session: Session, signed: Reader, instance: InstanceKeys, settings: Settings,
            case_ref: Any, reason: Any, now: dt.datetime | None = None) -> Change:
    """An assigned reviewer asks to open the identity, with a reason (commits). 404 unless
    assigned; 409 ``no_identity``, ``already_released``, ``already_requested``."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    text = validation.text(reason, "reason", settings.max_details_chars, required=True) or ""
    row = _identity_row(session, concern.id, concern.identity_ct)
    if row.state == ident.RELEASED:
        raise Refused("already_released", "the reporter's identity is already open to the "
                      "reviewers of this case")
    if row.state == ident.REQUESTED:
        raise Refused("already_requested", "opening the identity is already requested: "
                      "another assigned reviewer approves or rejects it")
    concern, ck = case_keys(session, signed, concern.id)  # the requester's own session
    change = proposals.create(session, REQUEST, concern.id, {}, signed.reviewer_id, now)
    session.add(IdentityRequest(id=change.id, concern_id=concern.id, reason_ct=crypto.seal(
        ck.thread, text.encode(), _reason_part(concern.id, change.id))))
    row.state = ident.REQUESTED
    _deposit(session, instance, signed, row.concern_id)
    audit.record(session, concern.id, "identity_requested", signed.reviewer_id, now,
                 {"request": change.id, "requested_by": signed.reviewer_id})
    notices.tell_reviewers(session, concern, besides=signed.reviewer_id)
    session.commit()
    return change


def _open_request(session: Session, case_ref: str, request_id: Any) -> Change:
    change = proposals.open_change(session, request_id, TYPES)
    if change.subject != case_ref:
        raise NotFound("no such request")
    return change


def _assigned_ids(session: Session, case_ref: str) -> set[str]:
    return set(session.scalars(select(Assignment.reviewer_id).join(Reviewer).where(
        Assignment.concern_id == case_ref, Reviewer.active.is_(True))))


def approve(session: Session, signed: Reader, instance: InstanceKeys, case_ref: Any,
            request_id: Any, now: dt.datetime | None = None) -> str:
    """A different assigned reviewer approves (commits): returns the identity's state
    (``released``, or ``requested`` while the release waits for a second share holder's
    session). 404 unless assigned and the request is the case's; 409
    ``second_person_required`` from the requester, ``already_decided``."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    change = _open_request(session, concern.id, request_id)
    proposals.guard(change, signed.reviewer_id, [], _assigned_ids(session, concern.id))
    concern, ck = case_keys(session, signed, concern.id)  # the approver's own session
    row = _identity_row(session, concern.id, concern.identity_ct)
    proposals.decide(change, proposals.APPROVED, signed.reviewer_id, now)
    row.approved_request = change.id
    audit.record(session, concern.id, "identity_request_approved", signed.reviewer_id, now,
                 {"request": change.id, "requested_by": change.proposed_by,
                  "approved_by": signed.reviewer_id})
    _advance(session, instance, signed, row, ck, now)
    session.commit()
    return row.state


def reject(session: Session, signed: Reader, case_ref: Any, request_id: Any,
           now: dt.datetime | None = None) -> Change:
    """Any assigned reviewer rejects a pending request, the requester withdrawing it
    included (commits): the deposited shares are deleted."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    change = _open_request(session, concern.id, request_id)
    end(session, change, signed.reviewer_id, now, withdrawn=signed.reviewer_id == change.proposed_by)
    session.commit()
    return change


def end(session: Session, change: Change, decider: str, now: dt.datetime,
        withdrawn: bool = False) -> None:
    """Reject a pending request (caller's transaction)."""
    case_ref = change.subject or ""
    proposals.decide(change, proposals.REJECTED, decider, now)
    session.execute(delete(IdentityShare).where(IdentityShare.concern_id == case_ref,
                                                IdentityShare.source != IdentityShare.holder))
    row = session.get(CaseIdentity, case_ref)
    if row is not None and row.state == ident.REQUESTED:
        row.state = ident.SEALED
    data: dict[str, Any] = {"request": change.id, "requested_by": change.proposed_by,
                            "rejected_by": decider}
    if withdrawn:
        data["withdrawn"] = True
    audit.record(session, case_ref, "identity_request_rejected", decider, now, data)


def leaving(session: Session, case_ref: str, reviewer_id: str, now: dt.datetime) -> None:
    """A reviewer steps off a case (recusal): their pending request ends, and their share
    and the deposits to and from them go (caller's transaction)."""
    for change in proposals.pending(session, TYPES, subject=case_ref):
        if change.proposed_by == reviewer_id:
            end(session, change, reviewer_id, now, withdrawn=True)
    ident.forget_holder(session, reviewer_id, case_ref)


# -- shares in one session ----------------------------------------------------------------


def _my_shares(session: Session, instance: InstanceKeys, me: str, private: bytes,
               case_ref: str) -> tuple[bytes | None, list[bytes]]:
    """(my own share, the shares deposited for me), unwrapped; any that do not open are
    left out."""
    own, deposited = None, []
    for row in session.scalars(select(IdentityShare).where(
            IdentityShare.concern_id == case_ref, IdentityShare.holder == me)):
        context = ident.share_context(case_ref, me, row.source)
        try:
            if row.source == me:
                own = crypto.unwrap_key(row.blob, private, context, crypto.SHARE_SIZE)
            else:
                sealed = crypto.unwrap_key(row.blob, private, context, ident.DEPOSIT_SIZE)
                deposited.append(crypto.open_sealed(ident.deposit_key(instance), sealed,
                                                    "identity-deposit:" + context))
        except crypto.CryptoError:
            continue
    return own, deposited


def _deposit(session: Session, instance: InstanceKeys, signed: Reader, case_ref: str) -> int:
    """Deposit my share for every other holder (the holder's key and keys/ both needed)."""
    me = signed.reviewer_id
    own, _ = _my_shares(session, instance, me, signed.private_key(), case_ref)
    if own is None:
        return 0
    others = session.scalars(select(IdentityShare.holder).where(
        IdentityShare.concern_id == case_ref, IdentityShare.source == IdentityShare.holder,
        IdentityShare.holder != me)).all()
    made = 0
    for holder in others:
        person = session.get(Reviewer, holder)
        if person is None or not instancekeys.may_receive(person, instance.signing_public):
            continue
        context = ident.share_context(case_ref, holder, me)
        sealed = crypto.seal(ident.deposit_key(instance), own, "identity-deposit:" + context)
        session.merge(IdentityShare(concern_id=case_ref, holder=holder, source=me,
                                    blob=crypto.wrap_key(sealed, bytes(person.public_key),
                                                         context)))
        made += 1
    return made


def _advance(session: Session, instance: InstanceKeys, signed: Reader, row: CaseIdentity,
             ck: casekeys.CaseKeys, now: dt.datetime) -> bool:
    """Complete an approved release with the shares this session can open: True when
    released; otherwise this holder's share is deposited for the others (caller's
    transaction)."""
    if row.state == ident.RELEASED or row.approved_request is None:
        return False
    own, deposited = _my_shares(session, instance, signed.reviewer_id, signed.private_key(),
                                row.concern_id)
    shares = ([own] if own is not None else []) + deposited
    try:
        key = crypto.combine_key(shares)
        crypto.open_sealed(key, row.identity_ct, ident.identity_part(row.concern_id))
    except crypto.CryptoError:
        if own is not None:
            _deposit(session, instance, signed, row.concern_id)
        return False
    row.open_ct = crypto.seal(ck.thread, key, ident.open_part(row.concern_id))
    row.state = ident.RELEASED
    session.execute(delete(IdentityShare).where(IdentityShare.concern_id == row.concern_id))
    change = session.get(Change, row.approved_request)
    audit.record(session, row.concern_id, "identity_released", signed.reviewer_id, now,
                 {"request": row.approved_request,
                  "requested_by": change.proposed_by if change else None,
                  "approved_by": change.decided_by if change else None})
    concern = session.get(Concern, row.concern_id)
    if concern is not None:
        notices.tell_reviewers(session, concern, besides=signed.reviewer_id)
    return True


def advance_on_reading(session: Session, instance: InstanceKeys, signed: Reader,
                       case_ref: str, ck: casekeys.CaseKeys,
                       row: CaseIdentity | None = None) -> bool:
    """A case opened by an assigned reviewer while an approved release waits for a second
    share: try to complete it, in a transaction of its own (commits). True if released.
    ``row``: the case's identity row if the caller has read it."""
    if row is None:
        row = session.get(CaseIdentity, case_ref)
    if row is None or row.state == ident.RELEASED or row.approved_request is None:
        return False
    session.commit()  # the reads end here
    with Session(bind=session.get_bind(), expire_on_commit=False) as own:
        mine = own.get(CaseIdentity, case_ref)
        if mine is None:
            return False
        done = _advance(own, instance, signed, mine, ck, utcnow())
        own.commit()
    return done


# -- what readers see -----------------------------------------------------------------------


def requests_for(session: Session, case_ref: str, thread_key: bytes,
                 names: dict[str, str]) -> list[dict[str, Any]]:
    """The case's identity requests, oldest first, reasons decrypted (for its readers)."""
    out = []
    rows = session.execute(select(IdentityRequest, Change).join(
        Change, Change.id == IdentityRequest.id).where(IdentityRequest.concern_id == case_ref)
        .order_by(Change.proposed_at, Change.id)).all()
    for req, change in rows:
        out.append({
            "id": req.id, "state": change.state, "at": change.proposed_at.isoformat(),
            "reason": crypto.open_sealed(thread_key, req.reason_ct,
                                         _reason_part(case_ref, req.id)).decode(),
            "requested_by": change.proposed_by,
            "requested_by_name": names.get(change.proposed_by, change.proposed_by),
            "decided_by": change.decided_by,
            "decided_by_name": names.get(change.decided_by or "", change.decided_by)})
    return out


_EVENTS = ("identity_requested", "identity_request_approved", "identity_released",
           "identity_request_rejected")


def _names(session: Session, ids: set[str]) -> dict[str, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(session.execute(select(Reviewer.id, Reviewer.name).where(
        Reviewer.id.in_(sorted(ids)))).tuples().all())


def reader_part(session: Session, instance: InstanceKeys | None, signed: Reader,
                case_ref: str, keys: casekeys.CaseKeys, legacy_ct: bytes | None,
                case: dict[str, Any], has_row: bool = True) -> dict[str, Any]:
    """What ``GET /api/v1/cases/<ref>`` adds: ``identity`` (None until released),
    ``identity_provided``, ``identity_state``, ``identity_release``, ``identity_requests``;
    the identity events of ``case["events"]`` get their request's reason and both names. With
    ``instance``, an approved release waiting for a second share completes here if this
    reader's session holds it. ``has_row=False``: the caller knows no identity is sealed
    apart for the case (then none can be requested, and nothing is read)."""
    if not has_row:
        return ident.view_without_row(case_ref, keys, legacy_ct) | {"identity_requests": []}
    row = session.get(CaseIdentity, case_ref)
    if (instance is not None and row is not None
            and advance_on_reading(session, instance, signed, case_ref, keys, row)):
        row = session.get(CaseIdentity, case_ref, populate_existing=True)  # now released
    out = ident.view(session, case_ref, keys, legacy_ct, row)
    ids = session.execute(select(Change.proposed_by, Change.decided_by).join(
        IdentityRequest, IdentityRequest.id == Change.id).where(
        IdentityRequest.concern_id == case_ref)).tuples().all()
    names = _names(session, {i for pair in ids for i in pair if i})
    requests = requests_for(session, case_ref, keys.thread, names) if ids else []
    out["identity_requests"] = requests
    by_id = {r["id"]: r for r in requests}
    for event in case["events"]:
        found = by_id.get((event.get("data") or {}).get("request"))
        if event["type"] in _EVENTS and found is not None:
            event["reason"] = found["reason"]
            event["requested_by_name"] = found["requested_by_name"]
            if found["decided_by"]:
                event["decided_by_name"] = found["decided_by_name"]
    return out
