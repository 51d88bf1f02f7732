"""Two-factor sign-in (TOTP): enrol, verify, turn off."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import TYPE_CHECKING, Any

import pyotp
from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle import crypto, validation
from whistle.errors import AuthError, InvalidInput
from whistle.store.models import (
    Reviewer,
    utcnow,
)

if TYPE_CHECKING:
    from whistle.people.sessions import SignedIn


def _match_totp_step(reviewer: Reviewer, secret: str, otp: Any, now: dt.datetime) -> int | None:
    """The time step ``otp`` belongs to (one step of drift allowed), if newer than the last used."""
    if not isinstance(otp, str) or len(otp) != 6 or validation.whole_number(otp, 6) is None:
        return None
    totp = pyotp.TOTP(secret)
    ts = now.replace(tzinfo=dt.timezone.utc).timestamp()
    for drift in (0, -1, 1):
        step = int(ts // 30) + drift
        if step > reviewer.totp_last_step and secrets.compare_digest(
                totp.generate_otp(step), otp):
            return step
    return None


def _totp_secret(reviewer: Reviewer, private: bytes) -> str:
    # For mypy only: every caller checks totp_secret_ct first, so -O changes nothing.
    assert reviewer.totp_secret_ct is not None  # nosec B101
    return crypto.open_sealed(crypto.derive_key(private, "totp"), reviewer.totp_secret_ct,
                              f"reviewer:{reviewer.id}:totp").decode()


def _verify_totp(reviewer: Reviewer, private: bytes, otp: Any, now: dt.datetime) -> None:
    if reviewer.totp_secret_ct is None:
        return
    if not isinstance(otp, str) or len(otp) != 6 or validation.whole_number(otp, 6) is None:
        raise AuthError("otp_required", "a one-time code from your authenticator is required")
    step = _match_totp_step(reviewer, _totp_secret(reviewer, private), otp, now)
    if step is None:
        raise AuthError("invalid_credentials", "wrong email, password or one-time code")
    reviewer.totp_last_step = step  # no code is accepted twice


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(reviewer: Reviewer, secret: str) -> str:
    """The otpauth:// URI an authenticator app imports (no third-party QR service involved)."""
    return pyotp.TOTP(secret).provisioning_uri(name=reviewer.email, issuer_name="Whistle")


def _reauthenticate(reviewer: Reviewer, password: Any) -> bytes:
    """Two-factor changes need the password again (ASVS 7.5.1), not just a live session."""
    if not isinstance(password, str) or len(password) > 1024:
        raise AuthError("invalid_credentials", "wrong password")
    try:
        return crypto.unlock_private_key(reviewer.locked_private_key, password,
                                         reviewer.password_check)
    except crypto.CryptoError as exc:
        raise AuthError("invalid_credentials", "wrong password") from exc


def enable_totp(session: Session, signed: SignedIn, secret: str, code: Any, password: Any,
                now: dt.datetime | None = None) -> None:
    """Turn on two-factor for the signed-in reviewer only, after re-entering the password
    and proving their authenticator shows ``code``. That code is then used up."""
    r = signed.reviewer
    private = _reauthenticate(r, password)
    if not isinstance(secret, str) or len(secret) < 16:
        raise InvalidInput("start two-factor setup again", "otp")
    step = _match_totp_step(r, secret, code, now or utcnow())
    if step is None:
        raise InvalidInput("that code does not match: try the current one", "otp")
    r.totp_secret_ct = crypto.seal(crypto.derive_key(private, "totp"), secret.encode(),
                                   f"reviewer:{r.id}:totp")
    r.totp_last_step = step
    session.commit()


def disable_totp(session: Session, settings: Settings, signed: SignedIn, code: Any,
                 password: Any, now: dt.datetime | None = None) -> None:
    """Turn two-factor off (password and a current code); refused when configuration requires it."""
    r = signed.reviewer
    if settings.require_totp:
        raise InvalidInput("two-factor sign-in is required here and cannot be turned off", "otp")
    private = _reauthenticate(r, password)
    if r.totp_secret_ct is None:
        return
    step = _match_totp_step(r, _totp_secret(r, private), code, now or utcnow())
    if step is None:
        raise InvalidInput("that code does not match: try the current one", "otp")
    r.totp_secret_ct = None
    r.totp_last_step = step
    session.commit()


# -- cases ---------------------------------------------------------------

