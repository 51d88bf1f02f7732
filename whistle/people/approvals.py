"""Two-person control: a proposal takes effect only when a different person approves it.

One mechanism for every change that could let someone read a present or future concern
(after the roster is sealed): enrolling an account, re-enabling it, granting a role,
units or categories, resetting a password. A ``Change`` row records who proposed what;
``approve`` checks the guard and applies the change, both names in the administration
log; ``reject`` ends it. Later two-person actions (sharing a case, releasing an identity,
referrals, holds) reuse the same table and guard.

Who may approve (the guard): an active administrator who is neither the proposer nor the
account concerned. Where no such administrator exists (an organisation with a single
administrator, who proposed), an active reviewer who is neither may approve instead, so
that one administrator alone can never add a reader and the organisation is never stuck.
The command line (``operator``) proposes but never approves: whoever has a shell on the
server is one person.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from whistle import notify, validation
from whistle.cases import proposals
from whistle.config import Settings
from whistle.errors import InvalidInput, NotFound, Refused
from whistle.keys import InstanceKeys
from whistle.people import adminlog, credentials, operators, roster
from whistle.store import options
from whistle.store.models import Change, EnrolmentCode, Reviewer, utcnow

PENDING, APPROVED, REJECTED = proposals.PENDING, proposals.APPROVED, proposals.REJECTED
SecondPersonRequired = proposals.SecondPersonRequired
ENROL, REENABLE, GRANT, RESET = "enrol", "reenable", "grant", "reset_password"
ROSTER_TYPES = (ENROL, REENABLE, GRANT, RESET)


class NotAllowed(proposals.NotAllowed):
    message = "only an active administrator (or, where there is no other, a reviewer) may " \
              "approve this"


def is_sealed(session: Session) -> bool:
    return roster.is_sealed(session)


def propose(session: Session, type_: str, subject: str | None, payload: dict[str, Any],
            proposer: str) -> Change:
    """Record a proposal (caller's transaction) and tell the people who may approve it."""
    change = proposals.create(session, type_, subject, payload, proposer, utcnow())
    adminlog.record(session, "change_proposed", proposer,
                    {"change": change.id, "type": type_, "subject": subject})
    _tell_approvers(session, change)
    return change


def _approvers(session: Session, change: Change) -> list[Reviewer]:
    others = [r for r in session.scalars(select(Reviewer).where(
        Reviewer.state == "active", Reviewer.active.is_(True)))
        if r.id not in (change.proposed_by, change.subject)]
    admins = [r for r in others if r.is_admin]
    return admins or [r for r in others if r.is_reviewer]


def _tell_approvers(session: Session, change: Change) -> None:
    notify.queue_many(session, [r.email for r in _approvers(session, change)], "roster_change")


def pending(session: Session) -> list[Change]:
    """Pending roster changes (and the other administrative kinds ``register``ed)."""
    return proposals.pending(session, tuple(_APPLY))


def _pending_change(session: Session, change_id: Any) -> Change:
    return proposals.open_change(session, change_id, tuple(_APPLY))


def check_approver(session: Session, change: Change, approver_id: str) -> None:
    """The two-person guard; raises ``SecondPersonRequired`` (409) or ``NotAllowed`` (403)."""
    try:
        proposals.guard(change, approver_id, [change.subject or ""],
                        {r.id for r in _approvers(session, change)})
    except proposals.NotAllowed as exc:
        raise NotAllowed() from exc


@dataclass
class Context:
    """What applying a change needs besides the session."""

    settings: Settings
    keys: InstanceKeys
    now: dt.datetime
    actor: str = "instance"  # who approved, for the roster signature's log entry


def approve(session: Session, ctx: Context, change_id: Any, approver_id: str) -> Change:
    """Approve and apply a pending change. Commits."""
    change = _pending_change(session, change_id)
    check_approver(session, change, approver_id)
    proposals.decide(change, APPROVED, approver_id, ctx.now)
    _APPLY[change.type](session, Context(ctx.settings, ctx.keys, ctx.now, approver_id), change)
    adminlog.record(session, "change_approved", approver_id,
                    {"change": change.id, "type": change.type, "subject": change.subject,
                     "proposed_by": change.proposed_by})
    session.commit()
    return change


def reject(session: Session, change_id: Any, decider_id: str, now: dt.datetime) -> Change:
    """End a pending change without applying it. Any person who may approve, or the
    proposer (withdrawing it), may reject. Commits."""
    change = _pending_change(session, change_id)
    if decider_id != change.proposed_by:
        if decider_id == change.subject:
            raise SecondPersonRequired()
        if decider_id not in {r.id for r in _approvers(session, change)}:
            raise NotAllowed()
    proposals.decide(change, REJECTED, decider_id, now)
    if change.type in _ON_REJECT:
        _ON_REJECT[change.type](session, change)
    if change.type == ENROL and change.subject:
        account = session.get(Reviewer, change.subject)
        if account is not None and account.state == "pending":
            account.state = "disabled"
    adminlog.record(session, "change_rejected", decider_id,
                    {"change": change.id, "type": change.type, "subject": change.subject})
    session.commit()
    return change


# -- what each kind of change does once approved ------------------------------------------


def _account(session: Session, change: Change) -> Reviewer:
    account = session.get(Reviewer, change.subject) if change.subject else None
    if account is None:
        raise NotFound("the account this change concerns no longer exists")
    return account


def issue_code(session: Session, ctx: Context, account: Reviewer, purpose: str) -> str:
    """A one-time link for ``account`` to choose its own password, mailed (sealed in the
    outbox). Earlier unused codes of the account stop working."""
    for old in session.scalars(select(EnrolmentCode).where(
            EnrolmentCode.reviewer_id == account.id, EnrolmentCode.used.is_(None))):
        old.used = ctx.now
    code = secrets.token_urlsafe(24)  # 192 bits
    session.add(EnrolmentCode(code_hash=credentials.code_hash(ctx.keys, code),
                              reviewer_id=account.id,
                              purpose=purpose,
                              expires=ctx.now + dt.timedelta(hours=ctx.settings.enrol_code_hours)))
    link = f"{ctx.settings.public_url.rstrip('/')}/enrol?code={code}"
    notify.queue_link(session, ctx.keys.secret_key, account.email,
                      "enrol" if purpose == "enrol" else "reset", link)
    return code


def _apply_enrol(session: Session, ctx: Context, change: Change) -> None:
    account = _account(session, change)
    if account.state != "pending":
        raise Refused("invalid_state", "this account is not waiting for approval")
    account.state = "invited"
    issue_code(session, ctx, account, "enrol")


def _apply_reenable(session: Session, ctx: Context, change: Change) -> None:
    account = _account(session, change)
    if not account.public_key:
        account.state = "invited"  # never chose a password: a new link
        issue_code(session, ctx, account, "enrol")
        return
    account.state, account.active = "active", True
    account.credentials_version += 1
    roster.sign_entry(account, ctx.keys, ctx.actor, session)


def _apply_grant(session: Session, ctx: Context, change: Change) -> None:
    account = _account(session, change)
    grant = json.loads(change.payload)
    operators.check_grant(account, grant)  # an intake operator has no other role
    for field, column in (("admin", "is_admin"), ("independent", "is_independent"),
                          ("senior", "is_senior"), ("reviews", "is_reviewer"),
                          ("operator", "is_operator")):
        if field in grant:
            setattr(account, column, bool(grant[field]))
    if "units" in grant:
        account.units = json.dumps(sorted(set(grant["units"])))
    if "categories" in grant:
        account.categories = json.dumps(sorted(set(grant["categories"])))
    if account.state == "active":
        roster.sign_entry(account, ctx.keys, ctx.actor, session)


def _apply_reset(session: Session, ctx: Context, change: Change) -> None:
    account = _account(session, change)
    credentials.forget_keys(session, account, change.decided_by or "admin")
    account.state = "invited"
    issue_code(session, ctx, account, "reset")


_APPLY: dict[str, Callable[[Session, Context, Change], None]] = {
    ENROL: _apply_enrol, REENABLE: _apply_reenable, GRANT: _apply_grant, RESET: _apply_reset,
}
_ON_REJECT: dict[str, Callable[[Session, Change], None]] = {}


def register(type_: str, apply: Callable[[Session, Context, Change], None],
             on_reject: Callable[[Session, Change], None] | None = None) -> None:
    """Another kind of administrative change decided here, by the same guard and log
    (agencies, whistle.people.agencies)."""
    _APPLY[type_] = apply
    if on_reject is not None:
        _ON_REJECT[type_] = on_reject


# -- proposing roster changes ----------------------------------------------------------------


def add_account(session: Session, ctx: Context, name: Any, email: Any, units: list[str],
                senior: bool, independent: bool, admin: bool, reviews: bool, proposer: str,
                operator: bool = False) -> tuple[Reviewer, Change | None]:
    """An account for someone else, who chooses their own password through a mailed link.

    Once the roster is sealed the account waits for a second person (``pending``: no key
    pair, never routed, not on the roster, cannot sign in) and the proposal is returned.
    Before sealing (bootstrap, one person setting up) the link goes out at once. Commits."""
    operators.check_roles(operator, reviews, admin, senior, independent, units)
    clean_name = validation.line(name, "name", ctx.settings.max_field_chars,
                                 required=True) or ""
    address = (validation.line(email, "email", 254, required=True) or "").lower()
    if "@" not in address:
        raise InvalidInput("enter an email address", "email")
    if session.scalar(select(func.count()).select_from(Reviewer).where(
            Reviewer.email == address)):
        raise InvalidInput("a reviewer with this email already exists", "email", "duplicate",
                           409)
    unknown = set(units) - set(options.units(session))
    if unknown:
        raise InvalidInput(f"unknown unit {sorted(unknown)[0]}", "units")
    account = Reviewer(name=clean_name, email=address, units=json.dumps(sorted(set(units))),
                       is_senior=senior, is_independent=independent, is_admin=admin,
                       is_reviewer=reviews, is_operator=operator, active=False,
                       state="pending", public_key=b"",
                       locked_private_key=b"", password_check=b"")
    session.add(account)
    session.flush()
    details = {"roles": adminlog.roles(reviews, admin, senior, independent)
               + (["operator"] if operator else []),
               "units": sorted(set(units))}
    change = None
    if is_sealed(session):
        change = propose(session, ENROL, account.id, details, proposer)
    else:
        adminlog.record(session, "reviewer_invited", proposer, {"reviewer": account.id, **details})
        account.state = "invited"
        issue_code(session, ctx, account, "enrol")
    session.commit()
    return account, change


def propose_for(session: Session, type_: str, reviewer_id: Any, payload: dict[str, Any],
                proposer: str) -> Change:
    """Propose re-enabling, a grant or a password reset for an existing account. Commits."""
    if type_ not in (REENABLE, GRANT, RESET):
        raise InvalidInput("unknown kind of change", "type")
    account = session.get(Reviewer, reviewer_id) if isinstance(reviewer_id, str) else None
    if account is None:
        raise NotFound("no such account")
    unknown = set(payload.get("units", [])) - set(options.units(session))
    if unknown:
        raise InvalidInput(f"unknown unit {sorted(unknown)[0]}", "units")
    change = propose(session, type_, account.id, payload, proposer)
    session.commit()
    return change


describe = proposals.describe
