"""Outside agencies (issue 23): registered, re-keyed and retired only as two-person changes.

An administrator proposes an agency (a name and an age X25519 recipient, ``age1...``); it
stays ``pending`` until a *different* person approves the change through the same guard,
endpoint and administration log as the roster's changes (whistle.people.approvals:
``/api/v1/admin/changes/<id>/approve``). Replacing an agency's key or retiring it is a
change of its own, so no one alone can point future referrals at a key they hold.

When a change takes effect the instance signing key signs the agency's entry in force
(whistle.cases.referrals.sign_agency); a referral encrypts to an agency only if that
signature verifies, so a key swapped by writing to the database is refused too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import crypto, validation
from whistle.cases import referrals
from whistle.errors import InvalidInput, NotFound, Refused
from whistle.people import approvals
from whistle.store.models import Agency, Change

ADD, NEW_KEY, RETIRE = "agency_add", "agency_key", "agency_retire"
PENDING, ACTIVE, REJECTED, RETIRED = "pending", referrals.AGENCY_ACTIVE, "rejected", "retired"


def recipient(value: Any) -> str:
    """An age X25519 recipient, canonical; 400 naming ``age_recipient`` otherwise."""
    if not isinstance(value, str):
        raise InvalidInput("age_recipient must be an age public key (age1...)", "age_recipient")
    text = value.strip()
    if text.upper() == text:  # Bech32 may be written in capitals
        text = text.lower()
    try:
        return crypto.check_age_recipient(text)
    except crypto.CryptoError as exc:
        raise InvalidInput("age_recipient is not an age X25519 public key (age1...)",
                           "age_recipient") from exc


def propose_agency(session: Session, settings: Any, name: Any, age_recipient: Any,
                   proposer: str) -> tuple[Agency, Change]:
    """A pending agency and the change that would register it. Commits."""
    clean = validation.line(name, "name", settings.max_field_chars, required=True) or ""
    key = recipient(age_recipient)
    agency = Agency(name=clean, age_recipient=key, state=PENDING)
    session.add(agency)
    session.flush()
    change = approvals.propose(session, ADD, agency.id,
                               {"name": clean, "age_recipient": key}, proposer)
    session.commit()
    return agency, change


def _agency(session: Session, agency_id: Any) -> Agency:
    agency = session.get(Agency, agency_id) if isinstance(agency_id, str) and \
        len(agency_id) <= 64 else None
    if agency is None:
        raise NotFound("no such agency")
    return agency


def propose_key(session: Session, agency_id: Any, age_recipient: Any, proposer: str
                ) -> tuple[Agency, Change]:
    """Propose a new key for an active agency; the old key stays in force until a second
    person approves. Commits."""
    agency = _agency(session, agency_id)
    if agency.state != ACTIVE:
        raise Refused("agency_not_active", "only an active agency's key can be replaced")
    key = recipient(age_recipient)
    change = approvals.propose(session, NEW_KEY, agency.id,
                               {"name": agency.name, "age_recipient": key}, proposer)
    session.commit()
    return agency, change


def propose_retire(session: Session, agency_id: Any, proposer: str) -> tuple[Agency, Change]:
    """Propose that no more referrals go to an agency. Commits."""
    agency = _agency(session, agency_id)
    if agency.state != ACTIVE:
        raise Refused("agency_not_active", "this agency is not active")
    change = approvals.propose(session, RETIRE, agency.id, {"name": agency.name}, proposer)
    session.commit()
    return agency, change


def _apply_add(session: Session, ctx: approvals.Context, change: Change) -> None:
    agency = _agency(session, change.subject)
    if agency.state != PENDING:
        raise Refused("invalid_state", "this agency is not waiting for approval")
    agency.state = ACTIVE
    referrals.sign_agency(agency, ctx.keys)


def _apply_key(session: Session, ctx: approvals.Context, change: Change) -> None:
    agency = _agency(session, change.subject)
    if agency.state != ACTIVE:
        raise Refused("agency_not_active", "this agency is no longer active")
    agency.age_recipient = str(approvals.proposals.payload(change)["age_recipient"])
    referrals.sign_agency(agency, ctx.keys)


def _apply_retire(session: Session, ctx: approvals.Context, change: Change) -> None:
    agency = _agency(session, change.subject)
    agency.state = RETIRED
    referrals.sign_agency(agency, ctx.keys)


def _on_reject_add(session: Session, change: Change) -> None:
    agency = session.get(Agency, change.subject) if change.subject else None
    if agency is not None and agency.state == PENDING:
        agency.state = REJECTED


approvals.register(ADD, _apply_add, _on_reject_add)
approvals.register(NEW_KEY, _apply_key)
approvals.register(RETIRE, _apply_retire)


def listing(session: Session) -> list[dict[str, Any]]:
    """Every agency but rejected proposals, by name: what reviewers choose from."""
    return [{"id": a.id, "name": a.name, "age_recipient": a.age_recipient, "state": a.state}
            for a in session.scalars(select(Agency).where(Agency.state != REJECTED)
                                     .order_by(Agency.name, Agency.id))]
