"""Re-sharing cases with the organisation's offline recovery key.

Every case's keys are also wrapped for the recovery public key (see
``intake.submit``). When a case's reviewers are gone (left, lost their
password), whoever holds the offline private half re-shares it with a current
reviewer: unwrap with the recovery key, wrap for the reviewer, assign, audit.
The same rules as sharing between reviewers apply: never to a reviewer the
reporter excluded, never to a disabled account, never to an account whose key does
not match its signed roster entry (``unverified_key``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import crypto, errors
from whistle.cases import keys as casekeys
from whistle.cases import sharing
from whistle.keys import InstanceKeys
from whistle.store.models import Assignment, Concern, Reviewer

ACTOR = "recovery_key"


class RecoveryError(errors.Refused):
    """What the recovery key holder's command cannot do (the message says why)."""


def _keys_for(session: Session, concern: Concern, recovery_private: bytes) -> casekeys.CaseKeys:
    try:
        found = casekeys.unwrap(session, concern.id, "recovery", "org", recovery_private)
    except crypto.CryptoError as exc:
        raise RecoveryError("wrong_key", f"the recovery key does not open case {concern.id}: "
                            "is this the key file of this instance?") from exc
    return casekeys.CaseKeys(found[casekeys.CASE], found[casekeys.THREAD])


def reshare(session: Session, instance: InstanceKeys, case_ref: str, target_id: str,
            recovery_private: bytes, now: dt.datetime) -> Reviewer:
    """Give ``target_id`` the case, opened with the recovery private key. Commits."""
    concern = session.get(Concern, case_ref)
    if concern is None:
        raise RecoveryError("not_found", f"no case {case_ref}")
    ck = _keys_for(session, concern, recovery_private)
    try:
        target = sharing.add_to_case(session, instance, concern, ck, target_id, ACTOR, now)
    except errors.Refused as exc:
        session.rollback()
        raise RecoveryError(exc.code, exc.message) from exc
    session.commit()
    return target


@dataclass
class ReshareAllReport:
    shared: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    recused: list[str] = field(default_factory=list)  # the target declared a conflict on it


def cases_of(session: Session, reviewer_id: str) -> list[str]:
    """Every case assigned to a reviewer (closed ones too: they may be reopened)."""
    return list(session.scalars(select(Assignment.concern_id).where(
        Assignment.reviewer_id == reviewer_id).order_by(Assignment.created,
                                                        Assignment.concern_id)))


def reshare_one_of_many(session: Session, instance: InstanceKeys, case_ref: str, target_id: str,
                        recovery_private: bytes, now: dt.datetime,
                        report: ReshareAllReport) -> None:
    """One step of ``recovery reshare-all``: an excluded, recused or already assigned target
    is skipped."""
    try:
        reshare(session, instance, case_ref, target_id, recovery_private, now)
        report.shared.append(case_ref)
    except RecoveryError as exc:
        if exc.code == "excluded":
            report.excluded.append(case_ref)
        elif exc.code == "recused":
            report.recused.append(case_ref)
        elif exc.code == "already_assigned":
            report.already.append(case_ref)
        else:
            raise


def waiting_for_keys(session: Session, reviewer_id: str) -> list[str]:
    """Cases assigned to a reviewer who holds no key for them (after a password reset)."""
    return [case_ref for case_ref in cases_of(session, reviewer_id)
            if not sharing.holds_keys(session, case_ref, reviewer_id)]


def rewrap(session: Session, case_ref: str, reviewer_id: str, recovery_private: bytes,
           now: dt.datetime, *, instance: InstanceKeys) -> bool:
    """Wrap one case's keys again for an assigned reviewer's current key. Commits.

    Returns False (and changes nothing) if the reviewer already holds keys
    for it, so an interrupted run can simply be started again.
    """
    concern = session.get(Concern, case_ref)
    target = session.get(Reviewer, reviewer_id)
    if concern is None or target is None:
        raise RecoveryError("not_found", f"no case {case_ref} or reviewer {reviewer_id}")
    if sharing.holds_keys(session, case_ref, reviewer_id):
        return False
    try:
        sharing.rewrap_for(session, concern, _keys_for(session, concern, recovery_private),
                           target, ACTOR, now, instance=instance)
    except errors.Refused as exc:
        session.rollback()
        raise RecoveryError(exc.code, exc.message) from exc
    session.commit()
    return True


# -- rotating the recovery key ------------------------------------------------


def recovery_cases(session: Session) -> list[str]:
    from whistle.store.models import WrappedKey

    return list(session.scalars(select(WrappedKey.concern_id).where(
        WrappedKey.recipient_kind == "recovery",
        WrappedKey.key_kind.in_((casekeys.CASE, casekeys.BOTH)))
        .order_by(WrappedKey.concern_id)))


def rotate_one(session: Session, case_ref: str, old_private: bytes, new_private: bytes) -> bool:
    """Re-wrap one case's keys from the old recovery key to the new one. Commits.

    Returns False if the case already opens with the new key (an interrupted
    rotation simply runs again). Raises RecoveryError if neither key opens it.
    """
    from whistle.store.models import WrappedKey

    try:
        casekeys.unwrap(session, case_ref, "recovery", "org", new_private)
        return False
    except crypto.CryptoError:
        pass
    concern = session.get(Concern, case_ref)
    if concern is None:
        raise RecoveryError("not_found", f"no case {case_ref}")
    ck = _keys_for(session, concern, old_private)
    for row in session.scalars(select(WrappedKey).where(
            WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == "recovery")):
        session.delete(row)
    session.flush()
    casekeys.wrap(session, case_ref, ck, "recovery", "org",
                  crypto.keypair_from_seed(new_private).public)
    session.commit()
    return True
