"""Reviewer and administrator accounts: enrol, passwords, disable."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import (
    delete,
    func,
    select,
)
from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle import crypto
from whistle.cases import audit, workflow
from whistle.cases import keys as casekeys
from whistle.errors import InvalidInput, NotFound
from whistle.keys import InstanceKeys
from whistle.people import adminlog, roster
from whistle.store.models import (
    Assignment,
    Concern,
    Reviewer,
    ReviewerSession,
    Setting,
    WrappedKey,
    utcnow,
)

# -- accounts ------------------------------------------------------------


def check_password_strength(password: str, personal: tuple[str, ...] = ()) -> None:
    """At least 12 characters, at most 1024, and not easy to guess (whistle.people.strength:
    ``personal`` are the account's name and address, which count as easy guesses)."""
    from whistle.people import strength

    if len(password) < 12:
        raise InvalidInput("the password must have at least 12 characters", "password")
    if len(password) > 1024:
        raise InvalidInput("the password is too long", "password")
    strength.check(password, personal)


def enrol(session: Session, settings: Settings, name: str, email: str, password: str,
          units: list[str] | None = None, senior: bool = False, independent: bool = False,
          admin: bool = False, reviews: bool = True, actor: str = "operator", *,
          keys: InstanceKeys, operator: bool = False) -> Reviewer:
    """Create an account with a fresh hybrid key pair locked under ``password``; recorded in
    the administration log as done by ``actor`` (see whistle.people.adminlog), and its
    roster entry signed with the instance signing key in ``keys`` (whistle.people.roster)."""
    from whistle import validation
    from whistle.people import operators

    operators.check_roles(operator, reviews, admin, senior, independent, units)
    # The name is shown to reporters choosing whom to exclude: no look-alikes (validation.line).
    name = validation.line(name, "name", settings.max_field_chars, required=True) or ""
    # The address becomes a mail header: one line, no control characters (no CR/LF).
    email = (validation.line(email, "email", 254, required=True) or "").lower()
    if "@" not in email:
        raise InvalidInput("enter an email address", "email")
    if session.scalars(select(Reviewer).where(Reviewer.email == email)).first():
        raise InvalidInput("a reviewer with this email already exists", "email", "duplicate", 409)
    check_password_strength(password, (name, email))
    pair = crypto.generate_keypair()
    locked, check = crypto.lock_private_key(pair.private, password, settings.kdf)
    reviewer = Reviewer(
        name=name.strip(), email=email, units=json.dumps(units or []), is_senior=senior,
        is_independent=independent, is_admin=admin, is_reviewer=reviews, is_operator=operator,
        public_key=pair.public, locked_private_key=locked, password_check=check,
        state="active", joined=utcnow(),
    )
    session.add(reviewer)
    session.flush()
    adminlog.record(session, "reviewer_enrolled", actor, {
        "reviewer": reviewer.id,
        "roles": adminlog.roles(reviews, admin, senior, independent)
        + (["operator"] if operator else []),
        "units": sorted(set(units or []))})
    roster.sign_entry(reviewer, keys, session=session)
    session.commit()
    return reviewer


# An administrator who chose a reviewer's first password knows it: until the
# reviewer replaces it, the account does nothing but change it.
# (A settings key prefix, not a password: hence the nosec.)
_PASSWORD_SET_BY_ADMIN = "password_set_by_admin:"  # nosec B105


def reset_password(session: Session, settings: Settings, reviewer_id: str,
                   new_password: str, actor: str = "operator", *,
                   keys: InstanceKeys) -> list[str]:
    """An administrator's reset for a reviewer who lost their password. Commits.

    The old private key is lost with the old password, so the reviewer gets a
    fresh key pair and their useless copies of case keys are deleted. They stay
    assigned; each case comes back when a co-reviewer shares it again or the
    recovery key holder runs ``recovery rewrap``. The new password is known to
    the administrator, so the reviewer must replace it at their next sign-in.
    Returns the references of the cases waiting to be re-wrapped.
    """
    reviewer = session.get(Reviewer, reviewer_id)
    if reviewer is None:
        raise NotFound()
    check_password_strength(new_password)
    pair = crypto.generate_keypair()
    reviewer.public_key = pair.public
    reviewer.locked_private_key, reviewer.password_check = crypto.lock_private_key(
        pair.private, new_password, settings.kdf)
    reviewer.totp_secret_ct = None  # sealed under the old key: enrol two-factor again
    reviewer.credentials_version += 1
    session.execute(delete(ReviewerSession).where(ReviewerSession.reviewer_id == reviewer_id))
    # Their withheld escalation copies too: wrapped for the old key, they would never open.
    session.execute(delete(WrappedKey).where(
        WrappedKey.recipient_kind.in_(("reviewer", casekeys.ESCALATION)),
        WrappedKey.recipient_id == reviewer_id))
    waiting = list(session.scalars(select(Assignment.concern_id).where(
        Assignment.reviewer_id == reviewer_id).order_by(Assignment.concern_id)))
    for case_ref in waiting:
        audit.record(session, case_ref, "reviewer_key_reset", "admin", utcnow(),
                     {"reviewer": reviewer_id})
    require_password_change(session, reviewer_id)
    adminlog.record(session, "password_reset", actor, {"reviewer": reviewer_id})  # no count
    roster.sign_entry(reviewer, keys, actor, session)  # the new key, before sealing only
    session.commit()
    return waiting


def require_password_change(session: Session, reviewer_id: str) -> None:
    """Mark a password as set by someone else (caller's transaction)."""
    if session.get(Setting, _PASSWORD_SET_BY_ADMIN + reviewer_id) is None:
        session.add(Setting(key=_PASSWORD_SET_BY_ADMIN + reviewer_id, value="true"))


def account_setup_needed(session: Session, settings: Settings, reviewer: Reviewer,
                         password_set_by_admin: bool | None = None) -> str | None:
    """What a signed-in reviewer must do before anything else: "password", "totp" or None.

    ``password_set_by_admin``: the flag when the caller already read it (``SignedIn``).
    """
    if password_set_by_admin is None:
        password_set_by_admin = session.get(Setting, _PASSWORD_SET_BY_ADMIN + reviewer.id) \
            is not None
    if password_set_by_admin:
        return "password"
    if settings.require_totp and reviewer.totp_secret_ct is None:
        return "totp"
    return None


@dataclass
class DisableReport:
    reviewer: Reviewer
    understaffed: list[tuple[str, int]]  # (case_ref, active reviewers left)


def disable(session: Session, settings: Settings, reviewer_id: str,
            actor: str = "admin", *, keys: InstanceKeys) -> DisableReport:
    """Disable an account and end its sessions; report open cases left short of reviewers.

    A case left with fewer than MIN_REVIEWERS active reviewers is marked
    under-routed, so it shows on the administrators' attention list.
    """
    reviewer = session.get(Reviewer, reviewer_id)
    if reviewer is None:
        raise NotFound()
    reviewer.active, reviewer.state = False, "disabled"
    reviewer.credentials_version += 1
    session.execute(delete(ReviewerSession).where(ReviewerSession.reviewer_id == reviewer.id))
    short: list[tuple[str, int]] = []
    case_ids = list(session.scalars(select(Assignment.concern_id).where(
        Assignment.reviewer_id == reviewer_id, Assignment.status != workflow.CLOSED)))
    for case_ref in case_ids:
        left = session.scalar(select(func.count()).select_from(Assignment).join(Reviewer).where(
            Assignment.concern_id == case_ref, Reviewer.active.is_(True))) or 0
        audit.record(session, case_ref, "reviewer_disabled", actor, utcnow(),
                     {"reviewer": reviewer_id, "active_left": left})
        if left < settings.min_reviewers:
            short.append((case_ref, left))
            concern = session.get(Concern, case_ref)
            if concern is not None:
                concern.under_routed = True
    # No count of cases here: every reviewer and administrator reads this log, and a count
    # over every case would tell an excluded reader that a case they cannot see exists
    # (issue 19). Each case's own trail records the event; the attention list names the
    # cases left short to those who may know of them.
    adminlog.record(session, "reviewer_disabled", _log_actor(actor), {"reviewer": reviewer_id})
    try:
        roster.sign_entry(reviewer, keys, session=session)  # the entry in force: disabled
    except roster.UnverifiedEntry:
        pass  # a tampered row is not blessed; disabled, it receives nothing anyway
    session.commit()
    return DisableReport(reviewer, short)


def _log_actor(actor: str) -> str:
    """The case trails name the command line "admin"; the administration log says operator."""
    return adminlog.OPERATOR if actor == "admin" else actor

