"""The roster: who may read concerns, each entry signed by the instance (key transparency).

Every account has a roster entry (``whistle.keys.roster_entry``: id, name, roles, sorted
units and categories, the SHA-256 fingerprint of its public key, its state). Whenever an
entry changes, the instance signing key (``keys/signing_key``, never in the database) signs
it (``sign_entry``) and the signature goes into the administration log as a
``roster_entry_signed`` event, so that hash chain is also the chain of roster entries.

Before any case key is wrapped for a reviewer, their row is checked against the signed
entry (``whistle.keys.may_receive``, used by intake, sharing and recovery; cached on the
row's exact bytes, so a submission pays a lookup per candidate, never a verification of an
unchanged entry). Someone who can write to the database but does not hold the signing key
can therefore neither swap a reviewer's public key nor insert a reviewer who receives
anything: the account is skipped, the concern flagged under-routed and the administrators
alerted, and ``flask --app app roster verify`` names it.

What the signatures do not stop by themselves: putting back an *earlier* signed entry (a
disabled account's last active entry, a key replaced since). ``rolled_back`` catches that by
comparing each entry with the latest one logged for it, unless the log's tail was cut too.
And root on the live server holds ``keys/`` and can sign anything (docs/security.md).

The roster **seals** at the first concern, when ``/setup`` completes, or with
``flask --app app roster seal`` (``seal``); after that, changes that add a reader are
proposals a second person approves (whistle.people.approvals).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, object_session

from whistle import crypto
from whistle import keys as instancekeys
from whistle.errors import Refused
from whistle.keys import InstanceKeys
from whistle.people import adminlog
from whistle.store import options
from whistle.store.models import AdminEvent, Reviewer, utcnow

ENTRY_SIGNED = "roster_entry_signed"
SEALED = options.ROSTER_SEALED  # the administration log event and the settings key
# The actor of a signature in the administration log: the instance's signing key signs on
# behalf of whoever made the change (their own event precedes it in the log).
SIGNER = "instance"
_HEAD_LABEL = b"whistle:1:roster-head:"


def entry(reviewer: Any) -> bytes:
    """The canonical bytes of an account's roster entry (what its signature covers)."""
    return instancekeys.row_entry(reviewer)


def verified(row: Any, signing_public: bytes) -> bool:
    """Whether a reviewers row matches the entry the signing key signed. Cached on the exact
    entry and signature (``whistle.keys.row_verified``)."""
    return instancekeys.row_verified(row, signing_public)


class UnverifiedEntry(Refused):
    """The account's row, as read from the database, does not match its signed entry."""

    def __init__(self) -> None:
        super().__init__("unverified_key", "this account's roster entry does not match its "
                         "signature (changed in the database?): it receives nothing; disable "
                         "it and see `flask --app app roster verify`")


# Entries of these states were signed when they came about: a row loaded in one of them that
# does not verify was changed behind the roster's back. (Pending and invited accounts have
# no key pair yet; their first signature comes when the person chooses a password.)
_SIGNED_STATES = ("active", "disabled")
_LOADED = "_roster_loaded"


def _remember_loaded(target: Reviewer, *_args: Any) -> None:
    """What the row held when it was read from the database (before this transaction's
    changes): ``sign_entry`` refuses to sign over a row that was tampered with, so a later
    legitimate change (a unit, a role) cannot launder a key swapped in the database."""
    values = target.__dict__
    try:
        fields = instancekeys.entry_fields(SimpleNamespace(**{
            name: values[name] for name in ("id", "name", "is_reviewer", "is_admin",
                                            "is_independent", "is_senior", "units",
                                            "categories", "public_key", "state")}))
        signature = values["roster_signature"]
    except (KeyError, TypeError):
        return  # a partial load: nothing to compare with
    setattr(target, _LOADED, (fields, bytes(signature) if signature else None))


event.listen(Reviewer, "load", _remember_loaded)
event.listen(Reviewer, "refresh", _remember_loaded)


def check_loaded(reviewer: Reviewer, keys: InstanceKeys) -> None:
    """Raise ``UnverifiedEntry`` if the account, as read from the database, was active or
    disabled and did not match its signed entry."""
    loaded = getattr(reviewer, _LOADED, None)
    if loaded is None:
        return  # created in this transaction
    fields, signature = loaded
    if fields[-1] in _SIGNED_STATES and not instancekeys.fields_verified(
            fields, signature, keys.signing_public):
        raise UnverifiedEntry()


def sign_entry(reviewer: Reviewer, keys: InstanceKeys, actor: str = SIGNER,
               session: Session | None = None) -> bool:
    """Sign ``reviewer``'s entry as it now stands and log the signature (caller's transaction;
    the reviewer's own session unless ``session`` is given). Call it after every change to
    a field of the entry. Returns False, doing nothing, if the entry is signed already.

    Raises ``UnverifiedEntry`` (409 ``unverified_key``) if the row, as read from the
    database, did not match its own signed entry: a change never blesses a tampered row."""
    check_loaded(reviewer, keys)
    return _sign(reviewer, keys, actor, session)


def _sign(reviewer: Reviewer, keys: InstanceKeys, actor: str, session: Session | None) -> bool:
    session = session if session is not None else object_session(reviewer)
    if session is None:
        raise ValueError("sign_entry needs the account's session")
    session.flush()  # a new account gets its id
    if verified(reviewer, keys.signing_public):
        return False
    signed = entry(reviewer)
    reviewer.roster_signature = crypto.sign(keys.signing_key, signed)
    adminlog.record(session, ENTRY_SIGNED, actor, {
        "reviewer": reviewer.id, "state": reviewer.state,
        "fingerprint": instancekeys.fingerprint(reviewer.public_key),
        "entry": crypto.digest(signed).hex()})
    return True


# -- the roster as published -------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """One person who can receive concerns now, as the public roster shows them."""

    id: str
    name: str
    units: list[str]
    categories: list[str]
    independent: bool
    senior: bool
    admin: bool  # an administrator who also reviews
    fingerprint: str
    public_key: bytes
    since: dt.date | None

    def public(self) -> dict[str, Any]:
        """What the head covers (``public_key`` is covered by its fingerprint)."""
        return {"id": self.id, "name": self.name, "units": self.units,
                "independent": self.independent, "senior": self.senior, "admin": self.admin,
                "fingerprint": self.fingerprint,
                "since": self.since.isoformat() if self.since else None}


# Columns, not entities: the intake page lists these on every form (no locked keys read).
_LISTING = select(Reviewer.id, Reviewer.name, Reviewer.is_reviewer, Reviewer.is_admin,
                  Reviewer.is_independent, Reviewer.is_senior, Reviewer.units,
                  Reviewer.categories, Reviewer.public_key, Reviewer.state,
                  Reviewer.roster_signature, Reviewer.joined, Reviewer.created).where(
    Reviewer.active.is_(True), Reviewer.is_reviewer.is_(True),
    Reviewer.state == instancekeys.ACTIVE).order_by(Reviewer.name, Reviewer.id)


def listing(session: Session, keys: InstanceKeys) -> list[Listed]:
    """The people who can receive concerns now: active, reviewing, entry verified; by name."""
    return [Listed(r.id, r.name, sorted(json.loads(r.units)), sorted(json.loads(r.categories)),
                   bool(r.is_independent), bool(r.is_senior), bool(r.is_admin),
                   instancekeys.fingerprint(r.public_key), bytes(r.public_key),
                   (r.joined or r.created).date() if (r.joined or r.created) else None)
            for r in session.execute(_LISTING)
            if instancekeys.may_receive(r, keys.signing_public)]


def head(session: Session, keys: InstanceKeys, listed: list[Listed] | None = None,
         sealed: bool | None = None) -> tuple[str, bytes]:
    """(head, signature): ``head`` is the lowercase hex SHA-256 of
    ``b"whistle:1:roster-head:"`` + the canonical JSON (keys sorted, no spaces, ASCII) of
    ``{"sealed": ..., "reviewers": [Listed.public() ...]}`` in listing order; ``signature``
    is the signing key's signature (whistle.crypto) over the head's 32 bytes."""
    listed = listing(session, keys) if listed is None else listed
    sealed = is_sealed(session) if sealed is None else sealed
    body = json.dumps({"sealed": sealed, "reviewers": [x.public() for x in listed]},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = crypto.digest(_HEAD_LABEL + body.encode())
    return digest.hex(), _signed_head(keys.signing_key, digest)


@functools.lru_cache(maxsize=16)
def _signed_head(signing_key: bytes, digest: bytes) -> bytes:
    """The public roster is a page anyone may load: sign each distinct head once."""
    return crypto.sign(signing_key, digest)


# -- checks --------------------------------------------------------------------------------


def _active(session: Session) -> list[Reviewer]:
    return list(session.scalars(select(Reviewer).where(Reviewer.active.is_(True)).order_by(
        Reviewer.name, Reviewer.id)))


def unverified(session: Session, keys: InstanceKeys) -> list[Reviewer]:
    """Active accounts whose row does not match a signed entry in state ``active`` (a key or
    role changed in the database, a row inserted, a disabled account's ``active`` flag
    turned on again behind the roster's back). Routing skips them."""
    return [r for r in _active(session)
            if not instancekeys.may_receive(r, keys.signing_public)]


def rolled_back(session: Session, keys: InstanceKeys) -> list[Reviewer]:
    """Active accounts whose entry verifies but is not the latest one the administration log
    records for them: an earlier signed entry put back (a replaced key, a past role)."""
    latest: dict[str, str] = {}
    for data in session.scalars(select(AdminEvent.data).where(
            AdminEvent.type == ENTRY_SIGNED).order_by(AdminEvent.seq)):
        event = json.loads(data)
        latest[event.get("reviewer", "")] = event.get("entry", "")
    return [r for r in _active(session)
            if instancekeys.may_receive(r, keys.signing_public)
            and latest.get(r.id) != crypto.digest(entry(r)).hex()]


def adopt(session: Session, keys: InstanceKeys, actor: str = adminlog.OPERATOR
          ) -> list[Reviewer]:
    """Sign every account that has no signature yet (caller's transaction): once, when an
    existing instance gets its signing key (``flask --app app init``). Trust on first use:
    the operator checks the fingerprints on /roster with the people listed."""
    adopted = list(session.scalars(select(Reviewer).where(
        Reviewer.roster_signature.is_(None)).order_by(Reviewer.name, Reviewer.id)))
    for r in adopted:
        _sign(r, keys, actor, session)  # trust on first use: nothing to check against
    return adopted


# -- sealing -------------------------------------------------------------------------------


def is_sealed(session: Session) -> bool:
    return bool(options.get(session, SEALED, None))


def seal(session: Session, actor: str, by: str | None = None) -> bool:
    """Seal the roster (caller's transaction); False if it was sealed already. Recorded in
    the administration log as ``roster_sealed`` by ``actor``."""
    if not options.put_once(session, SEALED, {"at": utcnow().isoformat(), "by": by or actor}):
        return False
    adminlog.record(session, SEALED, actor, {"by": by or actor})
    return True


def sealed_by_first_concern(session: Session) -> None:
    """Intake's hook (``intake.submit(on_sealed=...)``): the concern's transaction just sealed
    the roster; log it in the same transaction."""
    adminlog.record(session, SEALED, SIGNER, {"by": "first_concern"})
