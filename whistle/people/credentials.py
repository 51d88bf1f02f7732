"""People choose their own passwords, and a password change rotates the key pair.

- ``redeem``: a one-time code (mailed when a second person approved an enrolment or a
  password reset, ``whistle.people.approvals``) lets the person choose a password; the
  key pair is made then, so nobody else ever knew the password that locks it.
- ``change_password``: a new key pair, not the old key locked again. The old private
  key survives only sealed under a key derived from the new one, until ``rewrap_all``
  has re-wrapped every case key the reviewer holds for the new public key (one
  transaction per case, so an interruption resumes at the next sign-in). Then an old
  password plus a backup from before the change opens nothing routed after it.
- ``forget_keys``: a reset; the reviewer's copies of case keys are deleted (co-reviewers
  or the recovery key holder give the cases back).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.cases import audit, identity
from whistle.cases import keys as casekeys
from whistle.config import Settings
from whistle.errors import AuthError, InvalidInput
from whistle.keys import InstanceKeys
from whistle.people import accounts, adminlog, roster
from whistle.store.models import (
    Assignment, EnrolmentCode, Reviewer, ReviewerSession, Setting, WrappedKey, utcnow,
)

_ROTATION = "rotation"


class InvalidCode(InvalidInput):
    def __init__(self) -> None:
        super().__init__("this link is used, expired or unknown: ask your administrators for "
                         "a new one", "code", "invalid_code", 400)


def code_hash(keys: InstanceKeys, code: str) -> bytes:
    """What is stored of a code: keyed with a pepper from ``keys/``, so that someone who can
    write to the database cannot plant a code of their own."""
    return crypto.keyed_hash(keys.index_pepper, "enrolment", code.encode())


def _code_row(session: Session, keys: InstanceKeys, code: Any, now: dt.datetime
              ) -> EnrolmentCode:
    if not isinstance(code, str) or not 10 <= len(code) <= 100:
        raise InvalidCode()
    row = session.get(EnrolmentCode, code_hash(keys, code))
    if row is None or row.used is not None or row.expires < now:
        raise InvalidCode()
    return row


def code_account(session: Session, keys: InstanceKeys, code: Any,
                 now: dt.datetime | None = None) -> Reviewer:
    """The account a valid, unused code is for (to greet them on the page); InvalidCode."""
    row = _code_row(session, keys, code, now or utcnow())
    return session.get_one(Reviewer, row.reviewer_id)


def redeem(session: Session, settings: Settings, keys: InstanceKeys, code: Any,
           password: Any, now: dt.datetime | None = None) -> Reviewer:
    """Complete an enrolment or a reset: the person's own password, a fresh key pair, a
    signed roster entry. The code is spent. Commits."""
    now = now or utcnow()
    row = _code_row(session, keys, code, now)
    account = session.get_one(Reviewer, row.reviewer_id)
    if account.state != "invited":
        raise InvalidCode()
    if not isinstance(password, str):
        raise InvalidInput("the password must be text", "password")
    accounts.check_password_strength(password, (account.name, account.email))
    pair = crypto.generate_keypair()
    account.public_key = pair.public
    account.locked_private_key, account.password_check = crypto.lock_private_key(
        pair.private, password, settings.kdf)
    account.state, account.active = "active", True
    account.joined = account.joined or now
    account.credentials_version += 1
    account.rotating_key = None
    row.used = now
    _clear_admin_flag(session, account)
    roster.sign_entry(account, keys, account.id, session)
    adminlog.record(session, "password_chosen", account.id,
                    {"reviewer": account.id, "purpose": row.purpose,
                     "fingerprint": crypto.digest(pair.public).hex()})
    session.commit()
    return account


def _clear_admin_flag(session: Session, account: Reviewer) -> None:
    flag = session.get(Setting, accounts._PASSWORD_SET_BY_ADMIN + account.id)
    if flag is not None:
        session.delete(flag)


def change_password(session: Session, settings: Settings, keys: InstanceKeys,
                    reviewer: Reviewer, old: Any, new: Any,
                    progress: Callable[[int, int], None] | None = None) -> int:
    """A new password and a new key pair; every session ends. Returns how many cases were
    re-wrapped for the new key."""
    if not isinstance(old, str) or not isinstance(new, str) or len(old) > 1024:
        raise AuthError()
    accounts.check_password_strength(new, (reviewer.name, reviewer.email))
    try:
        old_private = crypto.unlock_private_key(reviewer.locked_private_key, old,
                                                reviewer.password_check)
    except crypto.CryptoError as exc:
        raise AuthError() from exc
    pending = _rotating(reviewer, old_private)  # an earlier rotation not yet finished
    pair = crypto.generate_keypair()
    if reviewer.totp_secret_ct is not None:
        secret = crypto.open_sealed(crypto.derive_key(old_private, "totp"),
                                    reviewer.totp_secret_ct, f"reviewer:{reviewer.id}:totp")
        reviewer.totp_secret_ct = crypto.seal(crypto.derive_key(pair.private, "totp"), secret,
                                              f"reviewer:{reviewer.id}:totp")
    reviewer.public_key = pair.public
    reviewer.locked_private_key, reviewer.password_check = crypto.lock_private_key(
        pair.private, new, settings.kdf)
    # The keys the reviewer's copies are still wrapped for: the old one, and any older one
    # an interrupted rotation had not finished with.
    reviewer.rotating_key = _seal_old(reviewer.id, pair.private, [old_private, *pending])
    reviewer.credentials_version += 1
    session.execute(delete(ReviewerSession).where(ReviewerSession.reviewer_id == reviewer.id))
    _clear_admin_flag(session, reviewer)
    roster.sign_entry(reviewer, keys, reviewer.id, session)
    adminlog.record(session, "key_rotated", reviewer.id,
                    {"reviewer": reviewer.id, "fingerprint": crypto.digest(pair.public).hex()})
    session.commit()
    return rewrap_all(session, reviewer, pair.private, progress)


def _seal_old(reviewer_id: str, new_private: bytes, old: list[bytes]) -> bytes:
    return crypto.seal(crypto.derive_key(new_private, _ROTATION), b"".join(old),
                       f"reviewer:{reviewer_id}:{_ROTATION}")


def _rotating(reviewer: Reviewer, private: bytes) -> list[bytes]:
    """The older private keys kept while a rotation re-wraps (none when it is done)."""
    if reviewer.rotating_key is None:
        return []
    raw = crypto.open_sealed(crypto.derive_key(private, _ROTATION), reviewer.rotating_key,
                             f"reviewer:{reviewer.id}:{_ROTATION}")
    size = crypto.PRIVATE_KEY_SIZE
    return [raw[i:i + size] for i in range(0, len(raw), size)]


def rewrap_all(session: Session, reviewer: Reviewer, private: bytes,
               progress: Callable[[int, int], None] | None = None) -> int:
    """Re-wrap every case key the reviewer holds under an older key for their current one,
    one case per transaction; then forget the older keys. Safe to run again."""
    older = _rotating(reviewer, private)
    if not older:
        return 0
    # Their withheld escalation copies too (whistle.cases.escalation): released later,
    # they must open with the key the reviewer has then.
    refs = list(session.scalars(select(WrappedKey.concern_id).distinct().where(
        WrappedKey.recipient_kind.in_(_HELD_KINDS), WrappedKey.recipient_id == reviewer.id)
        .order_by(WrappedKey.concern_id)))
    moved = 0
    for done, case_ref in enumerate(refs, 1):
        for kind in _HELD_KINDS:
            moved += _rewrap_one(session, reviewer, case_ref, private, older, kind)
        session.commit()
        if progress is not None:
            progress(done, len(refs))
    # Their shares of reporters' identity keys too (whistle.cases.identity).
    moved += identity.rewrap_holder(session, reviewer.id, reviewer.public_key, private, older)
    reviewer.rotating_key = None
    session.commit()
    return moved


# A reviewer's own copies and their withheld escalation copies (wrapped alike).
_HELD_KINDS = ("reviewer", casekeys.ESCALATION)


def _rewrap_one(session: Session, reviewer: Reviewer, case_ref: str, private: bytes,
                older: list[bytes], stored_as: str = "reviewer") -> int:
    held = casekeys.held_keys(session, case_ref, stored_as, reviewer.id)
    if not held:
        return 0
    try:
        casekeys.unwrap_found(held, case_ref, "reviewer", reviewer.id, private)
        return 0  # already wrapped for the current key
    except crypto.CryptoError:
        pass
    for old in older:
        try:
            found = casekeys.unwrap_found(held, case_ref, "reviewer", reviewer.id, old)
        except crypto.CryptoError:
            continue
        session.execute(delete(WrappedKey).where(
            WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == stored_as,
            WrappedKey.recipient_id == reviewer.id))
        session.add_all([WrappedKey(**row) for row in casekeys.wrapped_rows(
            case_ref, casekeys.CaseKeys(found[casekeys.CASE], found[casekeys.THREAD]),
            "reviewer", reviewer.id, reviewer.public_key, stored_as=stored_as)])
        return 1
    return 0  # opens with none of them: left for a co-reviewer or the recovery key


def forget_keys(session: Session, reviewer: Reviewer, actor: str) -> list[str]:
    """A reset: the key pair and every copy of a case key for it are gone, two-factor must
    be set up again, sessions end. Returns the cases waiting for their keys (caller's
    transaction)."""
    reviewer.public_key = reviewer.locked_private_key = reviewer.password_check = b""
    reviewer.rotating_key = None
    reviewer.totp_secret_ct = None  # sealed under the old key
    reviewer.active = False
    reviewer.credentials_version += 1
    session.execute(delete(ReviewerSession).where(ReviewerSession.reviewer_id == reviewer.id))
    session.execute(delete(WrappedKey).where(WrappedKey.recipient_kind.in_(_HELD_KINDS),
                                             WrappedKey.recipient_id == reviewer.id))
    identity.forget_holder(session, reviewer.id)  # shares for the old key open no more
    waiting = list(session.scalars(select(Assignment.concern_id).where(
        Assignment.reviewer_id == reviewer.id).order_by(Assignment.concern_id)))
    for case_ref in waiting:
        audit.record(session, case_ref, "reviewer_key_reset", actor, utcnow(),
                     {"reviewer": reviewer.id})
    return waiting
