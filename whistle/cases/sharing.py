"""Giving a case to another reviewer: exclusions, wrapping the keys again, candidates.

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
from whistle.cases import audit
from whistle.cases import keys as casekeys
from whistle.cases.reading import Reader, case_keys
from whistle.errors import Refused
from whistle import keys as instancekeys
from whistle.keys import InstanceKeys
from whistle.store.models import (
    Assignment,
    Concern,
    Exclusion,
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
               actor: str, now: dt.datetime, *, instance: InstanceKeys) -> None:
    """Give an assigned reviewer who holds no key (after a reset) the case's keys again."""
    check_may_receive(target, instance)
    casekeys.wrap(session, concern.id, ck, "reviewer", target.id, target.public_key)
    audit.record(session, concern.id, "rewrapped", actor, now, {"reviewer": target.id})
    notify.queue(session, target.email, "activity")


def holds_keys(session: Session, case_ref: str, reviewer_id: str) -> bool:
    return session.scalars(select(WrappedKey.id).where(
        WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == "reviewer",
        WrappedKey.recipient_id == reviewer_id).limit(1)).first() is not None


def is_excluded(session: Session, keys: InstanceKeys, case_ref: str, reviewer_id: str) -> bool:
    tag = casekeys.exclusion_tag(keys.index_pepper, case_ref, reviewer_id)
    return session.get(Exclusion, tag) is not None


def add_to_case(session: Session, instance: InstanceKeys, concern: Concern,
                ck: casekeys.CaseKeys, target_id: Any, actor: str, now: dt.datetime,
                min_reviewers: int = 2) -> Reviewer:
    """Give another reviewer the case: wrap both keys for them, assign, audit, notify."""
    target = session.get(Reviewer, target_id) if isinstance(target_id, str) else None
    if target is None or not target.active or not target.is_reviewer:
        raise Refused("not_found", "no such active reviewer", 404)
    if is_excluded(session, instance, concern.id, target.id):
        raise Refused("excluded", "the reporter excluded this reviewer from the case")
    if session.get(Assignment, (concern.id, target.id)) is not None:
        if holds_keys(session, concern.id, target.id):
            raise Refused("already_assigned", "this reviewer already has the case")
        rewrap_for(session, concern, ck, target, actor, now,  # back after a password reset
                   instance=instance)
        return target
    check_may_receive(target, instance)
    casekeys.wrap(session, concern.id, ck, "reviewer", target.id, target.public_key)
    session.add(Assignment(concern_id=concern.id, reviewer_id=target.id, status=concern.status,
                           created=concern.created, overdue=concern.overdue))
    audit.record(session, concern.id, "shared", actor, now, {"reviewer": target.id})
    notify.queue(session, target.email, "activity")
    if concern.under_routed:
        active = session.scalar(select(func.count()).select_from(Assignment).join(Reviewer).where(
            Assignment.concern_id == concern.id, Reviewer.active.is_(True))) or 0
        if active >= min_reviewers:
            concern.under_routed = False
    return target


def share(session: Session, signed: Reader, instance: InstanceKeys, case_ref: Any,
          reviewer_id: Any, now: dt.datetime | None = None, min_reviewers: int = 2
          ) -> Reviewer:
    concern, ck = case_keys(session, signed, case_ref)
    target = add_to_case(session, instance, concern, ck, reviewer_id, signed.reviewer_id,
                         now or utcnow(), min_reviewers)
    session.commit()
    return target


def share_candidates(session: Session, instance: InstanceKeys, case_ref: str,
                     assigned: set[str]) -> list[dict[str, str]]:
    """Active reviewers this case could be shared with: not assigned, not excluded from it."""
    rows = session.scalars(select(Reviewer).where(
        Reviewer.active.is_(True), Reviewer.is_reviewer.is_(True)).order_by(Reviewer.name))
    return [{"id": r.id, "name": r.name} for r in rows
            if r.id not in assigned and instancekeys.may_receive(r, instance.signing_public)
            and not is_excluded(session, instance, case_ref, r.id)]
