"""A reporter's identity, sealed apart from the concern and opened only by two (issue 22).

The identity (name, role, contact) is sealed under its own random 32-byte *identity key*
(``CaseIdentity.identity_ct``, context ``case:<ref>:identity``). Who can get that key:

* ``release: "on_request"`` (the default): the key is split 2-of-n
  (``whistle.crypto.split_key``, Shamir over GF(2^128)) over the case's share holders: the
  reviewers assigned at submission and its escalation reviewers (whose copies of the case
  are withheld until it escalates). Each share is HPKE-wrapped for one holder
  (``IdentityShare``, ``source`` = ``holder``). One reviewer's private key and the whole
  database open one share, which says nothing about the key. Opening it takes a request
  and a different assigned reviewer's approval (``whistle.cases.identity_release``).
* ``release: "to_reviewers"``: the key is sealed under the case's thread key at once
  (``open_ct``), as a released one is: every assigned reviewer reads the identity.
* always: the key is wrapped whole for the organisation's offline recovery key
  (``recovery_ct``), which can already read the whole case: an identity is never lost
  because its share holders left.

Cases stored before this (``Concern.identity_ct`` sealed with the case key) read as
released, as they always were.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from whistle import crypto, validation
from whistle import keys as instancekeys
from whistle.cases import audit, notices
from whistle.cases import keys as casekeys
from whistle.config import Settings
from whistle.errors import InvalidInput, Refused
from whistle.keys import InstanceKeys
from whistle.store.models import (
    CaseIdentity,
    Concern,
    IdentityShare,
    Reviewer,
    WrappedKey,
    utcnow,
)

ON_REQUEST, TO_REVIEWERS = "on_request", "to_reviewers"
RELEASES = (ON_REQUEST, TO_REVIEWERS)
NONE, SEALED, REQUESTED, RELEASED = "none", "sealed", "requested", "released"
FIELDS = ("name", "role", "contact")


def release_choice(value: Any) -> str:
    """``release`` of an identity: absent means ``on_request``."""
    if value is None:
        return ON_REQUEST
    if value not in RELEASES:
        raise InvalidInput("identity.release must be on_request or to_reviewers",
                           "identity.release")
    return str(value)


def parse(raw: Any, settings: Settings) -> tuple[dict[str, str | None], str]:
    """An identity object as sent (name, role?, contact?, release?): (fields, release)."""
    if not isinstance(raw, dict) or set(raw) - {*FIELDS, "release"}:
        raise InvalidInput("identity must be an object with name, role, contact", "identity")
    limit = settings.max_field_chars
    fields = {"name": validation.line(raw.get("name"), "identity.name", limit, required=True),
              "role": validation.line(raw.get("role"), "identity.role", limit),
              "contact": validation.line(raw.get("contact"), "identity.contact", limit)}
    return fields, release_choice(raw.get("release"))


# -- contexts ---------------------------------------------------------------------------


def identity_part(case_ref: str) -> str:
    return casekeys.part(case_ref, "identity")


def open_part(case_ref: str) -> str:
    return casekeys.part(case_ref, "identity-key")


def share_context(case_ref: str, holder: str, source: str) -> str:
    return f"case:{case_ref}:identity-share:{holder}:{source}"


# -- sealing ------------------------------------------------------------------------------


def sealed_rows(case_ref: str, identity: dict[str, Any], release: str, thread_key: bytes,
                holders: list[tuple[str, bytes]], recovery_public: bytes) -> list[Any]:
    """The rows that seal an identity (for the caller to add): a ``CaseIdentity`` and, for
    ``on_request``, one wrapped share per holder ((reviewer id, public key), at least two;
    with fewer, only the recovery key can open it until it is released)."""
    key = crypto.random_key()
    payload = json.dumps({k: identity.get(k) for k in FIELDS}).encode()
    row = CaseIdentity(
        concern_id=case_ref, release=release, state=SEALED,
        identity_ct=crypto.seal(key, payload, identity_part(case_ref)),
        recovery_ct=crypto.wrap_key(key, recovery_public,
                                    casekeys.wrap_context(case_ref, "identity", "recovery", "org")),
        open_ct=None, approved_request=None)
    if release == TO_REVIEWERS:
        row.state, row.open_ct = RELEASED, crypto.seal(thread_key, key, open_part(case_ref))
        return [row]
    rows: list[Any] = [row]
    if len(holders) >= 2:
        shares = crypto.split_key(key, min(len(holders), crypto.MAX_SHARES))
        for (rid, public), share in zip(holders, shares):
            rows.append(IdentityShare(concern_id=case_ref, holder=rid, source=rid,
                                      blob=crypto.wrap_key(share, public,
                                                           share_context(case_ref, rid, rid))))
    return rows


def recover(row: CaseIdentity, recovery_private: bytes) -> dict[str, Any]:
    """The identity opened with the organisation's recovery private key (offline tools)."""
    key = crypto.unwrap_key(row.recovery_ct, recovery_private, casekeys.wrap_context(
        row.concern_id, "identity", "recovery", "org"))
    return _opened(row, key)


def _opened(row: CaseIdentity, key: bytes) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(crypto.open_sealed(key, row.identity_ct,
                                                          identity_part(row.concern_id)))
    return found


# -- reading --------------------------------------------------------------------------------


def state_of(session: Session, case_ref: str, legacy_ct: bytes | None = None) -> str:
    row = session.get(CaseIdentity, case_ref)
    if row is not None:
        return row.state
    return RELEASED if legacy_ct else NONE


def view(session: Session, case_ref: str, keys: casekeys.CaseKeys,
         legacy_ct: bytes | None, row: CaseIdentity | None = None) -> dict[str, Any]:
    """What a reader of the case sees: ``identity`` (None until released),
    ``identity_provided``, ``identity_state``, ``identity_release``. ``row``: the case's
    identity row if the caller has read it."""
    if row is None:
        row = session.get(CaseIdentity, case_ref)
    if row is None:
        return view_without_row(case_ref, keys, legacy_ct)
    identity = None
    if row.state == RELEASED and row.open_ct is not None:
        identity = _opened(row, crypto.open_sealed(keys.thread, row.open_ct,
                                                   open_part(case_ref)))
    return {"identity": identity, "identity_provided": True, "identity_state": row.state,
            "identity_release": row.release}


def view_without_row(case_ref: str, keys: casekeys.CaseKeys, legacy_ct: bytes | None
                     ) -> dict[str, Any]:
    """``view`` of a case with no identity sealed apart: none, or one sealed with the case
    key before identities were sealed apart (shown to its readers, as then)."""
    identity = (json.loads(crypto.open_sealed(keys.case, legacy_ct, identity_part(case_ref)))
                if legacy_ct else None)
    return {"identity": identity, "identity_provided": identity is not None,
            "identity_state": RELEASED if identity is not None else NONE,
            "identity_release": TO_REVIEWERS if identity is not None else None}


# -- holders ----------------------------------------------------------------------------------


def holders_now(session: Session, instance: InstanceKeys, case_ref: str
                ) -> list[tuple[str, bytes]]:
    """Who would hold a share of an identity added to the case now: the reviewers who hold
    its keys (assigned, or withheld for escalation), active and matching their signed
    roster entry; in id order."""
    ids = set(session.scalars(select(WrappedKey.recipient_id).where(
        WrappedKey.concern_id == case_ref,
        WrappedKey.recipient_kind.in_(("reviewer", casekeys.ESCALATION)))))
    rows: list[Reviewer] = list(session.scalars(select(Reviewer).where(
        Reviewer.id.in_(sorted(ids))).order_by(Reviewer.id))) if ids else []
    return [(r.id, bytes(r.public_key)) for r in rows
            if r.active and instancekeys.may_receive(r, instance.signing_public)]


def forget_holder(session: Session, reviewer_id: str, case_ref: str | None = None) -> None:
    """A reviewer loses their key pair (a reset: ``case_ref`` None) or leaves a case
    (recusal): the shares wrapped for them go, and on leaving a case also those they
    deposited for others (caller's transaction)."""
    where = [IdentityShare.holder == reviewer_id if case_ref is None else
             or_(IdentityShare.holder == reviewer_id, IdentityShare.source == reviewer_id)]
    if case_ref is not None:
        where.append(IdentityShare.concern_id == case_ref)
    session.execute(delete(IdentityShare).where(*where))


def rewrap_holder(session: Session, reviewer_id: str, public: bytes, private: bytes,
                  older: list[bytes]) -> int:
    """After a password change (``whistle.people.credentials.rewrap_all``): every share held
    by the reviewer (their own, and those deposited for them) wrapped for their new key.
    Returns how many were re-wrapped; a share that opens with none of the keys is left."""
    moved = 0
    for row in session.scalars(select(IdentityShare).where(IdentityShare.holder == reviewer_id)):
        context = share_context(row.concern_id, row.holder, row.source)
        size = crypto.SHARE_SIZE if row.source == row.holder else DEPOSIT_SIZE
        try:
            crypto.unwrap_key(row.blob, private, context, size)
            continue  # already for the current key
        except crypto.CryptoError:
            pass
        for old in older:
            try:
                share = crypto.unwrap_key(row.blob, old, context, size)
            except crypto.CryptoError:
                continue
            row.blob = crypto.wrap_key(share, public, context)
            moved += 1
            break
    return moved


# A deposited share: sealed under a key from keys/ (``deposit_key``), then wrapped.
DEPOSIT_SIZE = 1 + crypto.NONCE_SIZE + crypto.SHARE_SIZE + 16


def deposit_key(instance: InstanceKeys) -> bytes:
    return crypto.derive_key(instance.index_pepper, "identity-deposit")


# -- the reporter adds an identity later --------------------------------------------------


def add_later(session: Session, instance: InstanceKeys, settings: Settings, concern: Concern,
              thread_key: bytes, raw: Any, now: dt.datetime | None = None) -> str:
    """The reporter gives their identity after submitting (``POST /api/v1/status/identity``),
    with the same choice of release. 409 ``identity_already_provided`` if there is one.
    Returns the identity's state. Commits."""
    fields, release = parse(raw, settings)
    if concern.identity_ct is not None or session.get(CaseIdentity, concern.id) is not None:
        raise Refused("identity_already_provided", "this report already has the reporter's "
                      "identity")
    rows = sealed_rows(concern.id, fields, release, thread_key,
                       holders_now(session, instance, concern.id), instance.recovery_public)
    session.add_all(rows)
    day = dt.datetime.combine((now or utcnow()).date(), dt.time())  # reporter-side: the day
    audit.record(session, concern.id, "identity_added", "reporter", day, {"release": release})
    notices.tell_reviewers(session, concern)
    session.commit()
    return str(rows[0].state)
