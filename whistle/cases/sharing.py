"""Giving a case to another reviewer: exclusions, wrapping the keys again, candidates.

No one alone adds a reader: a share is a proposal (``whistle.cases.proposals``, type
``share``, subject the case, payload the reviewer) that takes effect only when a
*different* assigned reviewer approves it; the approver unwraps the case keys in their own
session and wraps them for the new reviewer (``add_to_case``). The trail records
``share_proposed``, then ``share_approved`` or ``share_rejected``. The offline recovery
key (``whistle.cases.recovery``) is a separate control and shares directly.

No key is wrapped for an account whose row does not match its signed roster entry
(``whistle.keys.may_receive``): ``check_may_receive`` refuses with 409 ``unverified_key``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.orm import Session

from whistle import notify
from whistle.cases import audit, notices, proposals
from whistle.cases import keys as casekeys
from whistle.cases.reading import Reader, assigned_case, case_keys
from whistle.errors import NotFound, Refused
from whistle import keys as instancekeys
from whistle.keys import InstanceKeys
from whistle.store.models import (
    Assignment,
    AuditEvent,
    Change,
    Concern,
    Reviewer,
    WrappedKey,
    utcnow,
)




def check_may_receive(target: Reviewer, instance: InstanceKeys) -> None:
    """Refuse (409 ``unverified_key``) to wrap for an account whose stored public key, roles
    or state do not match the entry the instance signing key signed."""
    if not instancekeys.may_receive(target, instance.signing_public):
        raise Refused("unverified_key", "this reviewer's key does not match their signed "
                      "roster entry: nothing is shared with them (see `flask --app app "
                      "roster verify`)")


def rewrap_for(session: Session, concern: Concern, ck: casekeys.CaseKeys, target: Reviewer,
               actor: str, now: dt.datetime, *, instance: InstanceKeys,
               data: dict[str, Any] | None = None) -> None:
    """Give an assigned reviewer who holds no key (after a reset) the case's keys again."""
    check_may_receive(target, instance)
    casekeys.wrap(session, concern.id, ck, "reviewer", target.id, target.public_key)
    audit.record(session, concern.id, "rewrapped", actor, now,
                 (data or {}) | {"reviewer": target.id})
    notify.queue(session, target.email, "activity")


def holds_keys(session: Session, case_ref: str, reviewer_id: str) -> bool:
    return session.scalars(select(WrappedKey.key_kind).where(
        WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == "reviewer",
        WrappedKey.recipient_id == reviewer_id).limit(1)).first() is not None


is_excluded = notices.excluded


def recused_from(session: Session, case_ref: str) -> set[str]:
    """Who declared a conflict on this case (``recused`` in its trail): never given it again
    by a share or as a replacement."""
    return set(session.scalars(select(AuditEvent.actor).where(
        AuditEvent.concern_id == case_ref, AuditEvent.type == "recused")))


def _target(session: Session, instance: InstanceKeys, case_ref: str, target_id: Any
            ) -> Reviewer:
    """The reviewer a case may be given to: 404 unless active, 409 ``excluded`` if the
    reporter excluded them, 409 ``recused`` if they declared a conflict on it."""
    target = session.get(Reviewer, target_id) if isinstance(target_id, str) else None
    if target is None or not target.active or not target.is_reviewer:
        raise Refused("not_found", "no such active reviewer", 404)
    if is_excluded(session, instance, case_ref, target.id):
        raise Refused("excluded", "the reporter excluded this reviewer from the case")
    if target.id in recused_from(session, case_ref):
        raise Refused("recused", "this reviewer declared a conflict of interest on the case")
    return target


def add_to_case(session: Session, instance: InstanceKeys, concern: Concern,
                ck: casekeys.CaseKeys, target_id: Any, actor: str, now: dt.datetime,
                min_reviewers: int = 2, event: str = "shared",
                data: dict[str, Any] | None = None) -> Reviewer:
    """Give another reviewer the case: wrap both keys for them, assign, audit (``event``,
    with ``data`` besides the reviewer), notify."""
    target = _target(session, instance, concern.id, target_id)
    if session.get(Assignment, (concern.id, target.id)) is not None:
        if holds_keys(session, concern.id, target.id):
            raise Refused("already_assigned", "this reviewer already has the case")
        rewrap_for(session, concern, ck, target, actor, now,  # back after a password reset
                   instance=instance, data=data)
        return target
    check_may_receive(target, instance)
    casekeys.wrap(session, concern.id, ck, "reviewer", target.id, target.public_key)
    casekeys.drop_withheld(session, concern.id, target.id)
    session.add(Assignment(concern_id=concern.id, reviewer_id=target.id, status=concern.status,
                           created=concern.created, overdue=concern.overdue))
    audit.record(session, concern.id, event, actor, now, (data or {}) | {"reviewer": target.id})
    notify.queue(session, target.email, "activity")
    if concern.under_routed:
        active = session.scalar(select(func.count()).select_from(Assignment).join(Reviewer).where(
            Assignment.concern_id == concern.id, Reviewer.active.is_(True))) or 0
        if active >= min_reviewers:
            concern.under_routed = False
    return target


# -- sharing is a proposal a second assigned reviewer approves ---------------------------

SHARE = "share"
SHARE_TYPES = (SHARE,)


def pending_shares(session: Session, case_ref: str) -> list[Change]:
    """The case's shares waiting for a second reviewer, oldest first."""
    return proposals.pending(session, SHARE_TYPES, subject=case_ref)


def _pending_share(session: Session, case_ref: str, reviewer_id: Any) -> Change | None:
    return next((c for c in pending_shares(session, case_ref)
                 if proposals.payload(c).get("reviewer") == reviewer_id), None)


def propose_share(session: Session, signed: Reader, instance: InstanceKeys, case_ref: Any,
                  reviewer_id: Any, now: dt.datetime | None = None) -> Change:
    """An assigned reviewer proposes giving the case to another reviewer (commits). Refused
    as the share itself would be: 404 no such active reviewer, 409 ``excluded``,
    ``recused``, ``already_assigned``, ``unverified_key``; 409 ``already_proposed``."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    target = _target(session, instance, concern.id, reviewer_id)
    if session.get(Assignment, (concern.id, target.id)) is not None and \
            holds_keys(session, concern.id, target.id):
        raise Refused("already_assigned", "this reviewer already has the case")
    check_may_receive(target, instance)
    if _pending_share(session, concern.id, target.id) is not None:
        raise Refused("already_proposed", "sharing with this reviewer is already proposed: "
                      "another assigned reviewer approves or rejects it")
    change = proposals.create(session, SHARE, concern.id, {"reviewer": target.id},
                              signed.reviewer_id, now)
    audit.record(session, concern.id, "share_proposed", signed.reviewer_id, now,
                 {"reviewer": target.id, "change": change.id})
    notices.tell_reviewers(session, concern, besides=signed.reviewer_id)
    session.commit()
    return change


def _assigned_ids(session: Session, case_ref: str) -> set[str]:
    return set(session.scalars(select(Assignment.reviewer_id).join(Reviewer).where(
        Assignment.concern_id == case_ref, Reviewer.active.is_(True))))


def approve_share(session: Session, signed: Reader, instance: InstanceKeys, case_ref: Any,
                  reviewer_id: Any, now: dt.datetime | None = None, min_reviewers: int = 2
                  ) -> tuple[Change, Reviewer]:
    """A different assigned reviewer approves a proposed share: the case keys are unwrapped
    in the approver's session and wrapped for the new reviewer (commits). 404 unless the
    approver is assigned and the share is pending; 409 ``second_person_required`` from the
    proposer or the reviewer concerned."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    change = _pending_share(session, concern.id, reviewer_id)
    if change is None:
        raise NotFound("no share with this reviewer is waiting for approval")
    proposals.guard(change, signed.reviewer_id, [str(reviewer_id)],
                    _assigned_ids(session, concern.id))
    concern, ck = case_keys(session, signed, concern.id)  # the approver's own session
    target = add_to_case(session, instance, concern, ck, reviewer_id, signed.reviewer_id, now,
                         min_reviewers, event="share_approved",
                         data={"change": change.id, "proposed_by": change.proposed_by})
    proposals.decide(change, proposals.APPROVED, signed.reviewer_id, now)
    session.commit()
    return change, target


def reject_share(session: Session, signed: Reader, case_ref: Any, reviewer_id: Any,
                 now: dt.datetime | None = None, withdrawn: bool = False) -> Change:
    """Any assigned reviewer rejects a proposed share, the proposer included (withdrawing
    it), but not the reviewer concerned (commits)."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    change = _pending_share(session, concern.id, reviewer_id)
    if change is None:
        raise NotFound("no share with this reviewer is waiting for approval")
    if signed.reviewer_id != change.proposed_by and signed.reviewer_id == reviewer_id:
        raise proposals.SecondPersonRequired()
    end_share(session, change, signed.reviewer_id, now, withdrawn)
    session.commit()
    return change


def end_share(session: Session, change: Change, decider: str, now: dt.datetime,
              withdrawn: bool = False) -> None:
    """Reject a pending share (caller's transaction), with its ``share_rejected`` event."""
    proposals.decide(change, proposals.REJECTED, decider, now)
    data: dict[str, Any] = {"reviewer": proposals.payload(change).get("reviewer"),
                            "change": change.id, "proposed_by": change.proposed_by}
    if withdrawn:
        data["withdrawn"] = True
    audit.record(session, change.subject or "", "share_rejected", decider, now, data)


def share_candidates(session: Session, instance: InstanceKeys, case_ref: str,
                     assigned: set[str]) -> list[dict[str, str]]:
    """Active reviewers this case could be shared with: not assigned, not excluded from it,
    not recused from it, not already proposed."""
    rows = session.scalars(select(Reviewer).where(
        Reviewer.active.is_(True), Reviewer.is_reviewer.is_(True)).order_by(Reviewer.name))
    skip = assigned | recused_from(session, case_ref) | {
        proposals.payload(c).get("reviewer") for c in pending_shares(session, case_ref)}
    return [{"id": r.id, "name": r.name} for r in rows
            if r.id not in skip and instancekeys.may_receive(r, instance.signing_public)
            and not is_excluded(session, instance, case_ref, r.id)]
