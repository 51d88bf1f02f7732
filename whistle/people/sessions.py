"""Reviewer sessions without server-side plaintext keys.

A reviewer's private key is stored only locked under their password
(Argon2id). At login it is re-sealed under a key derived from a random
session secret that only the client holds; each request unseals it, uses it
and drops it. Deleting the session row destroys the key material.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from typing import Any

from sqlalchemy import (
    bindparam,
    delete,
    exists,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle import crypto
from whistle.errors import AuthError, InvalidInput
from whistle.people.accounts import _PASSWORD_SET_BY_ADMIN
from whistle.people.twofactor import _verify_totp
from whistle.store.models import (
    Reviewer,
    ReviewerSession,
    Setting,
    utcnow,
)
from whistle.store.prepared import PreparedQuery

# -- sessions ------------------------------------------------------------

# The one answer to a failed sign-in: wrong email, wrong password, a missing or a wrong code.
SIGNIN_FAILED = ("invalid_credentials", "wrong email, password or one-time code")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes | None:
    if not isinstance(text, str) or len(text) != 43:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=")
    except (ValueError, TypeError):
        return None


def login(session: Session, settings: Settings, email: Any, password: Any,
          otp: Any = None, now: dt.datetime | None = None) -> tuple[str, Reviewer]:
    """Check credentials; return (session secret for the client, reviewer)."""
    now = now or utcnow()
    if not isinstance(email, str) or not isinstance(password, str) or len(email) > 254 \
            or len(password) > 1024:
        raise InvalidInput("email and password must be text", "email")
    reviewer = session.scalars(select(Reviewer).where(
        Reviewer.email == email.strip().lower())).first()
    if reviewer is None or not reviewer.active:
        crypto.burn_password_time(password, settings.kdf)
        raise AuthError(*SIGNIN_FAILED)
    # One answer for every wrong combination (issue 20): a missing or wrong one-time code
    # must not tell that the password was right.
    try:
        private = crypto.unlock_private_key(reviewer.locked_private_key, password,
                                            reviewer.password_check)
        _verify_totp(reviewer, private, otp, now)
    except (crypto.CryptoError, AuthError) as exc:
        raise AuthError(*SIGNIN_FAILED) from exc
    if settings.require_totp and reviewer.totp_secret_ct is None:
        pass  # signed in, but the web layers send them to set up two-factor first
    _purge(session, settings, now)  # abandoned sessions go at anyone's sign-in
    secret = secrets.token_bytes(32)
    sid = crypto.digest(secret)
    session.add(ReviewerSession(
        id=sid, reviewer_id=reviewer.id, created=now, last_seen=now,
        credentials_version=reviewer.credentials_version,
        key_ct=crypto.seal(crypto.derive_key(secret, "session"), private,
                           "session:" + sid.hex()),
    ))
    session.commit()
    if reviewer.rotating_key is not None:  # a password change was interrupted: finish it
        from whistle.people import credentials

        credentials.rewrap_all(session, reviewer, private)
    return _b64(secret), reviewer


class SignedIn:
    """A live reviewer session. The reviewer entity is loaded only when a page needs more
    than the fields read with the session (the API's hot paths need none)."""

    def __init__(self, session: Session, found: Any, secret: bytes) -> None:
        self._session = session
        self.session_id: bytes = found.sid
        self.reviewer_id: str = found.reviewer_id
        self.is_admin: bool = found.is_admin
        self.has_totp: bool = found.has_totp
        # An intake operator and nothing else (issue 24): whistle.web.access keeps it to its form.
        self.operator_only: bool = bool(found.is_operator and not found.is_reviewer
                                        and not found.is_admin)
        self.password_set_by_admin: bool = found.flag is not None
        self._key_ct: bytes = found.key_ct
        self.secret = secret
        self._reviewer: Reviewer | None = None

    @property
    def reviewer(self) -> Reviewer:
        if self._reviewer is None:
            self._reviewer = self._session.get_one(Reviewer, self.reviewer_id)
        return self._reviewer

    def setup_needed(self, settings: Settings) -> str | None:
        """``account_setup_needed`` from what was read with the session (no query)."""
        if self.password_set_by_admin:
            return "password"
        if settings.require_totp and not self.has_totp:
            return "totp"
        return None

    def private_key(self) -> bytes:
        return crypto.open_sealed(crypto.derive_key(self.secret, "session"), self._key_ct,
                                  "session:" + self.session_id.hex())


# One round trip, columns only: the session, what is checked of its reviewer and the
# "password set by an admin" flag. Built once (building costs more than running it).
_SIGNED_IN = PreparedQuery(select(ReviewerSession.id.label("sid"), ReviewerSession.reviewer_id,
                     ReviewerSession.created, ReviewerSession.last_seen,
                     ReviewerSession.credentials_version, ReviewerSession.key_ct,
                     Reviewer.active, Reviewer.is_admin, Reviewer.is_reviewer,
                     Reviewer.is_operator, Reviewer.credentials_version.label("reviewer_version"),
                     Reviewer.totp_secret_ct.is_not(None).label("has_totp"),
                     Setting.key.label("flag"))
              .outerjoin(Reviewer, Reviewer.id == ReviewerSession.reviewer_id)
              .outerjoin(Setting, Setting.key == literal(_PASSWORD_SET_BY_ADMIN)
                         + ReviewerSession.reviewer_id)
              .where(ReviewerSession.id == bindparam("sid")))
_END_SESSION = delete(ReviewerSession).where(ReviewerSession.id == bindparam("sid"))
_SEEN = update(ReviewerSession).where(ReviewerSession.id == bindparam("sid")).values(
    last_seen=bindparam("now"))


def authenticate(session: Session, settings: Settings, token: Any,
                 now: dt.datetime | None = None) -> SignedIn | None:
    """The signed-in reviewer for a client's session secret, or None (expired, ended, disabled)."""
    now = now or utcnow()
    secret = _unb64(token) if isinstance(token, str) else None
    if secret is None:
        return None
    sid = crypto.digest(secret)
    rows = _SIGNED_IN.all(session.connection(), {"sid": sid})
    if not rows:
        return None
    found = rows[0]
    idle = dt.timedelta(minutes=settings.session_idle_minutes)
    lifetime = dt.timedelta(hours=settings.session_max_hours)
    if (found.active is None or not found.active
            or found.credentials_version != found.reviewer_version
            or now - found.last_seen > idle or now - found.created > lifetime
            or now < found.created):
        session.execute(_END_SESSION, {"sid": sid})
        session.commit()
        return None
    if now - found.last_seen > dt.timedelta(seconds=60):
        session.execute(_SEEN, {"sid": sid, "now": now})
        session.commit()
    return SignedIn(session, found, secret)


# Every row ``authenticate`` would refuse, in one statement: idle too long, too old, created
# in the future, or its reviewer gone, not active or with other credentials since.
_PURGE = delete(ReviewerSession).where(or_(
    ReviewerSession.last_seen < bindparam("idle_before"),
    ReviewerSession.created < bindparam("born_before"),
    ReviewerSession.created > bindparam("now"),
    ~exists().where(Reviewer.id == ReviewerSession.reviewer_id,
                    Reviewer.active.is_(True),
                    Reviewer.credentials_version == ReviewerSession.credentials_version),
))


def _purge(session: Session, settings: Settings, now: dt.datetime) -> int:
    """Delete the sessions that can no longer sign anyone in (caller's transaction)."""
    result = session.connection().execute(_PURGE, {
        "idle_before": now - dt.timedelta(minutes=settings.session_idle_minutes),
        "born_before": now - dt.timedelta(hours=settings.session_max_hours),
        "now": now})
    return max(result.rowcount, 0)


def purge_expired(session: Session, settings: Settings, now: dt.datetime | None = None) -> int:
    """Delete every session row (and its sealed key) that ``authenticate`` would refuse:
    idle longer than SESSION_IDLE_MINUTES, older than SESSION_MAX_HOURS, created in the
    future, or whose reviewer is not active or has changed credentials. Commits; returns
    how many rows went."""
    removed = _purge(session, settings, now or utcnow())
    session.commit()
    return removed


def logout(session: Session, signed: SignedIn) -> None:
    session.execute(_END_SESSION, {"sid": signed.session_id})
    session.commit()

