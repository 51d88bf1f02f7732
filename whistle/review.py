"""What reviewers do: enrol, sign in, list and open their cases, act on them, share them.

A reviewer's private key is stored only locked under their password
(Argon2id). At login it is re-sealed under a key derived from a random
session secret that only the client holds; each request unseals it, uses it
and drops it. Deleting the session row destroys the key material.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyotp
from sqlalchemy import case as sql_case
from sqlalchemy import (
    Date, Integer, String, and_, bindparam, delete, func, literal, literal_column, select,
    tuple_, update,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from whistle import adminlog, audit, casekeys, crypto, inbox, notify, workflow
from whistle.config import kdf_params
from whistle.keys import InstanceKeys
from whistle.models import (
    Assignment, Attachment, AuditEvent, Concern, Exclusion, InboxCount, Message, Reviewer,
    ReviewerSession, Setting, WrappedKey, utcnow,
)
from whistle.prepared import PreparedQuery
from whistle.validation import InvalidInput


class AuthError(Exception):
    def __init__(self, code: str = "invalid_credentials", message: str = "wrong email or password"
                 ) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class NotFound(Exception):
    """The case does not exist or is not assigned to this reviewer (indistinguishable)."""


# -- accounts ------------------------------------------------------------


def check_password_strength(password: str) -> None:
    if len(password) < 12:
        raise InvalidInput("the password must have at least 12 characters", "password")
    if len(password) > 1024:
        raise InvalidInput("the password is too long", "password")


def enrol(session: Session, config: Mapping[str, Any], name: str, email: str, password: str,
          units: list[str] | None = None, senior: bool = False, independent: bool = False,
          admin: bool = False, reviews: bool = True, actor: str = "operator") -> Reviewer:
    """Create an account with a fresh hybrid key pair locked under ``password``; recorded in
    the administration log as done by ``actor`` (see whistle.adminlog)."""
    from whistle import validation

    # The address becomes a mail header: one line, no control characters (no CR/LF).
    email = (validation.line(email, "email", 254, required=True) or "").lower()
    if "@" not in email:
        raise InvalidInput("enter an email address", "email")
    if session.scalars(select(Reviewer).where(Reviewer.email == email)).first():
        raise InvalidInput("a reviewer with this email already exists", "email", "duplicate", 409)
    check_password_strength(password)
    pair = crypto.generate_keypair()
    locked, check = crypto.lock_private_key(pair.private, password, kdf_params(dict(config)))
    reviewer = Reviewer(
        name=name.strip(), email=email, units=json.dumps(units or []), is_senior=senior,
        is_independent=independent, is_admin=admin, is_reviewer=reviews,
        public_key=pair.public, locked_private_key=locked, password_check=check,
    )
    session.add(reviewer)
    session.flush()
    adminlog.record(session, "reviewer_enrolled", actor, {
        "reviewer": reviewer.id,
        "roles": adminlog.roles(reviews, admin, senior, independent),
        "units": sorted(set(units or []))})
    session.commit()
    return reviewer


def change_password(session: Session, config: Mapping[str, Any], reviewer: Reviewer,
                    old: str, new: str) -> None:
    """Re-lock the private key under the new password and end every session."""
    check_password_strength(new)
    try:
        private = crypto.unlock_private_key(reviewer.locked_private_key, old,
                                            reviewer.password_check)
    except crypto.CryptoError as exc:
        raise AuthError() from exc
    reviewer.locked_private_key, reviewer.password_check = crypto.lock_private_key(
        private, new, kdf_params(dict(config)))
    reviewer.credentials_version += 1
    session.execute(delete(ReviewerSession).where(ReviewerSession.reviewer_id == reviewer.id))
    flag = session.get(Setting, _PASSWORD_SET_BY_ADMIN + reviewer.id)
    if flag is not None:
        session.delete(flag)
    session.commit()


# An administrator who chose a reviewer's first password knows it: until the
# reviewer replaces it, the account does nothing but change it.
# (A settings key prefix, not a password: hence the nosec.)
_PASSWORD_SET_BY_ADMIN = "password_set_by_admin:"  # nosec B105


class KeysPending(Exception):
    """The reviewer is assigned the case but holds no key for it (after a password reset)."""


def reset_password(session: Session, config: Mapping[str, Any], reviewer_id: str,
                   new_password: str, actor: str = "operator") -> list[str]:
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
        pair.private, new_password, kdf_params(dict(config)))
    reviewer.totp_secret_ct = None  # sealed under the old key: enrol two-factor again
    reviewer.credentials_version += 1
    session.execute(delete(ReviewerSession).where(ReviewerSession.reviewer_id == reviewer_id))
    session.execute(delete(WrappedKey).where(WrappedKey.recipient_kind == "reviewer",
                                             WrappedKey.recipient_id == reviewer_id))
    waiting = list(session.scalars(select(Assignment.concern_id).where(
        Assignment.reviewer_id == reviewer_id).order_by(Assignment.concern_id)))
    for case_ref in waiting:
        audit.record(session, case_ref, "reviewer_key_reset", "admin", utcnow(),
                     {"reviewer": reviewer_id})
    require_password_change(session, reviewer_id)
    adminlog.record(session, "password_reset", actor,
                    {"reviewer": reviewer_id, "cases_waiting": len(waiting)})
    session.commit()
    return waiting


def rewrap_for(session: Session, concern: Concern, ck: casekeys.CaseKeys, target: Reviewer,
               actor: str, now: dt.datetime) -> None:
    """Give an assigned reviewer who holds no key (after a reset) the case's keys again."""
    casekeys.wrap(session, concern.id, ck, "reviewer", target.id, target.public_key)
    audit.record(session, concern.id, "rewrapped", actor, now, {"reviewer": target.id})
    notify.queue(session, target.email, "activity")


def holds_keys(session: Session, case_ref: str, reviewer_id: str) -> bool:
    return session.scalars(select(WrappedKey.id).where(
        WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == "reviewer",
        WrappedKey.recipient_id == reviewer_id).limit(1)).first() is not None


def require_password_change(session: Session, reviewer_id: str) -> None:
    """Mark a password as set by someone else (caller's transaction)."""
    if session.get(Setting, _PASSWORD_SET_BY_ADMIN + reviewer_id) is None:
        session.add(Setting(key=_PASSWORD_SET_BY_ADMIN + reviewer_id, value="true"))


def account_setup_needed(session: Session, config: Mapping[str, Any], reviewer: Reviewer,
                         password_set_by_admin: bool | None = None) -> str | None:
    """What a signed-in reviewer must do before anything else: "password", "totp" or None.

    ``password_set_by_admin``: the flag when the caller already read it (``SignedIn``).
    """
    if password_set_by_admin is None:
        password_set_by_admin = session.get(Setting, _PASSWORD_SET_BY_ADMIN + reviewer.id) \
            is not None
    if password_set_by_admin:
        return "password"
    if config.get("REQUIRE_TOTP") and reviewer.totp_secret_ct is None:
        return "totp"
    return None


@dataclass
class DisableReport:
    reviewer: Reviewer
    understaffed: list[tuple[str, int]]  # (case_ref, active reviewers left)


def disable(session: Session, config: Mapping[str, Any], reviewer_id: str,
            actor: str = "admin") -> DisableReport:
    """Disable an account and end its sessions; report open cases left short of reviewers.

    A case left with fewer than MIN_REVIEWERS active reviewers is marked
    under-routed, so it shows on the administrators' attention list.
    """
    reviewer = session.get(Reviewer, reviewer_id)
    if reviewer is None:
        raise NotFound()
    reviewer.active = False
    reviewer.credentials_version += 1
    session.execute(delete(ReviewerSession).where(ReviewerSession.reviewer_id == reviewer.id))
    short: list[tuple[str, int]] = []
    case_ids = list(session.scalars(select(Assignment.concern_id).where(
        Assignment.reviewer_id == reviewer_id, Assignment.status != workflow.CLOSED)))
    for cid in case_ids:
        left = session.scalar(select(func.count()).select_from(Assignment).join(Reviewer).where(
            Assignment.concern_id == cid, Reviewer.active.is_(True))) or 0
        audit.record(session, cid, "reviewer_disabled", actor, utcnow(),
                     {"reviewer": reviewer_id, "active_left": left})
        if left < config["MIN_REVIEWERS"]:
            short.append((cid, left))
            concern = session.get(Concern, cid)
            if concern is not None:
                concern.under_routed = True
    adminlog.record(session, "reviewer_disabled", _log_actor(actor),
                    {"reviewer": reviewer_id, "cases_left_short": len(short)})
    session.commit()
    return DisableReport(reviewer, short)


def _log_actor(actor: str) -> str:
    """The case trails name the command line "admin"; the administration log says operator."""
    return adminlog.OPERATOR if actor == "admin" else actor


# -- sessions ------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes | None:
    if not isinstance(text, str) or len(text) != 43:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=")
    except (ValueError, TypeError):
        return None


def _match_totp_step(reviewer: Reviewer, secret: str, otp: Any, now: dt.datetime) -> int | None:
    """The time step ``otp`` belongs to (one step of drift allowed), if newer than the last used."""
    if not isinstance(otp, str) or not otp.isdigit() or len(otp) != 6:
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
    if not isinstance(otp, str) or not otp.isdigit() or len(otp) != 6:
        raise AuthError("otp_required", "a one-time code from your authenticator is required")
    step = _match_totp_step(reviewer, _totp_secret(reviewer, private), otp, now)
    if step is None:
        raise AuthError("invalid_credentials", "wrong email, password or one-time code")
    reviewer.totp_last_step = step  # no code is accepted twice


def login(session: Session, config: Mapping[str, Any], email: Any, password: Any,
          otp: Any = None, now: dt.datetime | None = None) -> tuple[str, Reviewer]:
    """Check credentials; return (session secret for the client, reviewer)."""
    now = now or utcnow()
    if not isinstance(email, str) or not isinstance(password, str) or len(email) > 254 \
            or len(password) > 1024:
        raise InvalidInput("email and password must be text", "email")
    reviewer = session.scalars(select(Reviewer).where(
        Reviewer.email == email.strip().lower())).first()
    if reviewer is None or not reviewer.active:
        crypto.burn_password_time(password, kdf_params(dict(config)))
        raise AuthError()
    try:
        private = crypto.unlock_private_key(reviewer.locked_private_key, password,
                                            reviewer.password_check)
    except crypto.CryptoError as exc:
        raise AuthError() from exc
    _verify_totp(reviewer, private, otp, now)
    if config.get("REQUIRE_TOTP") and reviewer.totp_secret_ct is None:
        pass  # signed in, but the web layers send them to set up two-factor first
    secret = secrets.token_bytes(32)
    sid = crypto.digest(secret)
    session.add(ReviewerSession(
        id=sid, reviewer_id=reviewer.id, created=now, last_seen=now,
        credentials_version=reviewer.credentials_version,
        key_ct=crypto.seal(crypto.derive_key(secret, "session"), private,
                           "session:" + sid.hex()),
    ))
    session.commit()
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
        self.password_set_by_admin: bool = found.flag is not None
        self._key_ct: bytes = found.key_ct
        self.secret = secret
        self._reviewer: Reviewer | None = None

    @property
    def reviewer(self) -> Reviewer:
        if self._reviewer is None:
            self._reviewer = self._session.get_one(Reviewer, self.reviewer_id)
        return self._reviewer

    def setup_needed(self, config: Mapping[str, Any]) -> str | None:
        """``account_setup_needed`` from what was read with the session (no query)."""
        if self.password_set_by_admin:
            return "password"
        if config.get("REQUIRE_TOTP") and not self.has_totp:
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
                     Reviewer.active, Reviewer.is_admin,
                     Reviewer.credentials_version.label("reviewer_version"),
                     Reviewer.totp_secret_ct.is_not(None).label("has_totp"),
                     Setting.key.label("flag"))
              .outerjoin(Reviewer, Reviewer.id == ReviewerSession.reviewer_id)
              .outerjoin(Setting, Setting.key == literal(_PASSWORD_SET_BY_ADMIN)
                         + ReviewerSession.reviewer_id)
              .where(ReviewerSession.id == bindparam("sid")))
_END_SESSION = delete(ReviewerSession).where(ReviewerSession.id == bindparam("sid"))
_SEEN = update(ReviewerSession).where(ReviewerSession.id == bindparam("sid")).values(
    last_seen=bindparam("now"))


def authenticate(session: Session, config: Mapping[str, Any], token: Any,
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
    idle = dt.timedelta(minutes=config["SESSION_IDLE_MINUTES"])
    lifetime = dt.timedelta(hours=config["SESSION_MAX_HOURS"])
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


def logout(session: Session, signed: SignedIn) -> None:
    session.execute(_END_SESSION, {"sid": signed.session_id})
    session.commit()


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


def disable_totp(session: Session, config: Mapping[str, Any], signed: SignedIn, code: Any,
                 password: Any, now: dt.datetime | None = None) -> None:
    """Turn two-factor off (password and a current code); refused when configuration requires it."""
    r = signed.reviewer
    if config.get("REQUIRE_TOTP"):
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


# One round trip for the assignment check and the case row.
_ASSIGNED = select(Concern).join(Assignment, Assignment.concern_id == Concern.id).where(
    Assignment.concern_id == bindparam("case_ref"), Assignment.reviewer_id == bindparam("reviewer"))


def _assignment(session: Session, reviewer_id: str, case_ref: Any) -> Concern:
    if not isinstance(case_ref, str) or len(case_ref) > 64:
        raise NotFound()
    concern = session.scalars(_ASSIGNED, {"case_ref": case_ref, "reviewer": reviewer_id}).first()
    if concern is None:
        raise NotFound()
    return concern


def case_keys(session: Session, signed: SignedIn, case_ref: Any) -> tuple[Concern, casekeys.CaseKeys]:
    concern = _assignment(session, signed.reviewer_id, case_ref)
    # One query both tells whether the reviewer holds keys (see holds_keys) and fetches them.
    held = casekeys.held_keys(session, concern.id, "reviewer", signed.reviewer_id)
    if not held:
        raise KeysPending()
    found = casekeys.unwrap_found(held, concern.id, "reviewer", signed.reviewer_id,
                                  signed.private_key())
    return concern, casekeys.CaseKeys(found[casekeys.CASE], found[casekeys.THREAD])


SORTS = ("newest", "oldest", "overdue", "status")


def page_cursor(c: Any) -> str:
    """The keyset cursor after case ``c`` in a newest/oldest listing (see ``list_cases``)."""
    return f"{c.created.isoformat()}.{c.id}"


def _parse_cursor(after: str) -> tuple[dt.date, str]:
    day, _, ref = after.partition(".")
    try:
        parsed = dt.date.fromisoformat(day)
    except ValueError:
        parsed = None
    if parsed is None or not ref or len(after) > 80:
        raise InvalidInput("after must be a cursor from a previous page's next", "after")
    return parsed, ref


def list_cases(session: Session, reviewer_id: str, status: str | None, page: int, per_page: int,
               sort: str = "newest", after: str | None = None) -> tuple[list[Any], int]:
    """One page of the reviewer's cases; only cases assigned to them.

    ``sort``: newest (default) or oldest first, overdue cases first, or by
    workflow status (received first); ties newest first. ``after`` (newest or
    oldest only) is a cursor from ``page_cursor``: the page that follows it,
    found by keyset on the inbox index in constant time, where ``page`` needs
    OFFSET (the database walks every skipped row: 21 ms at 300,000 cases).

    Every order reads an index in its own order; none sorts all the reviewer's cases.
    Overdue first is two runs of the inbox (the overdue ones, from the partial index that
    holds only them, then the rest); by status is one run per status, whose sizes the
    inbox counts already know. (Ordering by a flag on the joined case instead cost 140 ms
    at 30,000 assignments, growing with them.)
    """
    if sort not in SORTS:
        raise InvalidInput("sort must be one of " + ", ".join(SORTS), "sort")
    if after is not None and sort not in ("newest", "oldest"):
        raise InvalidInput("after works with sort newest or oldest", "after")
    kind = status if status in ("overdue", "open") else "eq" if status else None
    params: dict[str, Any] = {"reviewer": reviewer_id, "limit": per_page}
    if kind == "eq":
        params["status"] = status
    conn = session.connection()
    if after is not None:
        params["day"], params["ref"] = _parse_cursor(after)
        found = _list_statements(kind, sort, True).all(conn, params)
    elif sort == "overdue" and kind != "overdue":
        found = _overdue_first(session, kind, params, (page - 1) * per_page)
    elif sort == "status" and kind in (None, "open"):
        counts = inbox.counts(session, reviewer_id)
        statuses = [s for s in workflow.STATUSES if kind is None or s != workflow.CLOSED]
        found = _runs(conn, [(counts.get(s, 0), _list_statements("eq", "newest", False, s))
                             for s in statuses], params, (page - 1) * per_page)
        return found, sum(counts.get(s, 0) for s in statuses)
    else:
        found = _list_statements(kind, sort, False).all(conn, params | {
            "offset": (page - 1) * per_page})
    if found:
        total = found[0].total  # read with the page
    else:
        total = inbox.total(session, reviewer_id, status or None)
    return found, total


def _overdue_first(session: Session, kind: str | None, params: dict[str, Any], offset: int
                   ) -> list[Any]:
    """The page of an overdue-first list: the overdue run, then the rest. Where the rest
    starts is counted only when the page lies wholly past the overdue run."""
    conn = session.connection()
    first = _list_statements(kind, "overdue-only", False).all(conn, params | {"offset": offset})
    limit = params["limit"]
    if len(first) == limit:
        return first
    # The overdue run ended on this page (offset + len(first) overdue cases in all), or
    # before it: then how many to skip. Overdue cases are open, so without a status filter
    # or with ``open`` that is the kept count; with a status, counted on the partial index.
    if first or offset == 0:
        overdue = offset + len(first)
    elif kind == "eq":
        overdue = _count(session, _OVERDUE_STATUS_COUNT, params)
    else:
        overdue = inbox.total(session, params["reviewer"], inbox.OVERDUE)
    return first + _list_statements(kind, "not-overdue", False).all(conn, params | {
        "offset": max(0, offset - overdue), "limit": limit - len(first)})


def _count(session: Session, statement: Any, params: Mapping[str, Any]) -> int:
    return int(session.scalar(statement, {k: v for k, v in params.items()
                                          if k in ("reviewer", "status")}) or 0)


def _runs(conn: Any, runs: list[tuple[int, PreparedQuery]], params: dict[str, Any],
          offset: int) -> list[Any]:
    """A page taken from consecutive runs of known sizes: runs wholly before the page are
    skipped by their size, without reading them."""
    found: list[Any] = []
    limit = params["limit"]
    for size, query in runs:
        if offset >= size:
            offset -= size
            continue
        found += query.all(conn, params | {"offset": offset, "limit": limit - len(found)})
        offset = 0
        if len(found) >= limit:
            break
    return found


def _status_filter(statement: Any, kind: str | None, status: str | None = None) -> Any:
    if kind == "open":
        return statement.where(Assignment.status != workflow.CLOSED)
    if kind == "eq":
        return statement.where(Assignment.status == (
            literal_column(f"'{status}'") if status else bindparam("status")))
    return statement


# Rows of the inbox counts that are not statuses, and the closed status, as fixed SQL.
_NOT_STATUSES: list[Any] = [literal_column(f"'{inbox.OVERDUE}'")]
_CLOSED: Any = literal_column(f"'{workflow.CLOSED}'")


# The reviewer's overdue cases in one status, by the partial index (``ix_assignments_overdue``).
_OVERDUE_STATUS_COUNT = _status_filter(select(func.count()).select_from(Assignment).where(
    Assignment.reviewer_id == bindparam("reviewer"), Assignment.overdue.is_(True)), "eq")


@functools.lru_cache(maxsize=None)
def _list_statements(kind: str | None, sort: str, keyset: bool,
                     fixed_status: str | None = None) -> PreparedQuery:
    """``list_cases``' page query, built once per shape with bound parameters (building a
    statement and its cache key costs more than running it on SQLite).

    ``kind``: None (all), ``open``, ``eq`` (the ``status`` parameter, or ``fixed_status``)
    or ``overdue``. ``sort``: one of SORTS, or ``overdue-only`` / ``not-overdue`` (newest
    first, one of the two runs of the overdue-first order)."""
    # The page is chosen from the inbox index alone (a subquery), then joined to the case
    # columns: OFFSET skips index entries, not joined rows (deep pages stay cheap-ish).
    # Only assignment columns (the inbox indexes), plus the status when the order needs it.
    inner = _status_filter(select(
        Assignment.concern_id, Assignment.created,
        *((Assignment.status,) if sort == "status" else ())).where(
        Assignment.reviewer_id == bindparam("reviewer")), kind, fixed_status)
    if kind == "overdue" or sort == "overdue-only":
        inner = inner.where(Assignment.overdue.is_(True))
    elif sort == "not-overdue":
        inner = inner.where(Assignment.overdue.is_(False))

    def ordering(created: Any, ref: Any, status_col: Any) -> tuple[Any, ...]:
        newest = (created.desc(), ref.desc())
        if sort == "oldest":
            return (created.asc(), ref.asc())
        if sort == "status" and status_col is not None:
            rank = sql_case({s: i for i, s in enumerate(workflow.STATUSES)}, value=status_col,
                            else_=len(workflow.STATUSES))
            return (rank, *newest)
        return newest  # newest, and overdue first within a list of overdue cases only

    if keyset:
        key = tuple_(Assignment.created, Assignment.concern_id)
        bound = tuple_(bindparam("day", type_=Date), bindparam("ref", type_=String))
        inner = inner.where(key > bound if sort == "oldest" else key < bound)
    else:
        inner = inner.offset(bindparam("offset", type_=Integer))
    page = inner.order_by(*ordering(Assignment.created, Assignment.concern_id,
                                    Assignment.status if sort == "status" else None)
                          ).limit(bindparam("limit", type_=Integer)).subquery("page")
    # The total from the inbox counts rides along on every row (no second round trip).
    total = select(func.coalesce(func.sum(InboxCount.n), 0)).where(
        InboxCount.reviewer_id == bindparam("reviewer"))
    if kind == "overdue":
        total = total.where(InboxCount.status == literal_column(f"'{inbox.OVERDUE}'"))
    elif kind == "open":
        total = total.where(InboxCount.status.not_in(_NOT_STATUSES + [_CLOSED]))
    elif kind == "eq":
        total = total.where(InboxCount.status == (
            literal_column(f"'{fixed_status}'") if fixed_status else bindparam("status")))
    else:
        total = total.where(InboxCount.status.not_in(_NOT_STATUSES))
    columns: list[Any] = [*SUMMARY_COLUMNS, total.scalar_subquery().label("total")]
    q = select(*columns).select_from(page).join(Concern, Concern.id == page.c.concern_id)
    return PreparedQuery(q.order_by(*ordering(page.c.created, page.c.concern_id,
                                              page.c.get("status"))))


# What ``summary`` and ``page_cursor`` read: ``list_cases`` loads only these.
SUMMARY_COLUMNS = (Concern.id, Concern.status, Concern.category, Concern.unit,
                   Concern.about_senior, Concern.created, Concern.acknowledge_by,
                   Concern.feedback_by, Concern.overdue, Concern.under_routed)



def summary(c: Any) -> dict[str, Any]:
    """A case's list entry; ``c`` is a Concern or a row that begins with ``SUMMARY_COLUMNS``."""
    if isinstance(c, (Row, tuple)):  # by position: a page of 25 rows is the inbox's hot loop
        (ref, status, category, unit, senior, created, ack_by, feedback_by, overdue,
         under_routed) = c[:_SUMMARY_WIDTH]
    else:
        ref, status, category, unit, senior = c.id, c.status, c.category, c.unit, c.about_senior
        created, ack_by, feedback_by = c.created, c.acknowledge_by, c.feedback_by
        overdue, under_routed = c.overdue, c.under_routed
    return {
        "case_ref": ref, "status": status, "category": category, "unit": unit,
        "about_senior": senior, "created": created.isoformat(),
        "acknowledge_by": ack_by.isoformat(),
        "feedback_by": feedback_by.isoformat() if feedback_by else None,
        "overdue": overdue, "under_routed": under_routed,
    }


_SUMMARY_WIDTH = len(SUMMARY_COLUMNS)


# Reading a case is an audit event too, once per reviewer per window (pages reload often).
OPENED_WINDOW = dt.timedelta(minutes=30)


def _record_opened(session: Session, concern_id: str, reviewer_id: str, now: dt.datetime,
                   trail: list[Any]) -> None:
    """Record "opened" unless this reviewer opened the case within the window; ``trail`` is the
    case's events in order (rows of seq, at, type, actor, data, hash), extended in place."""
    since = now - OPENED_WINDOW
    if any(e.type == "opened" and e.actor == reviewer_id and e.at > since for e in trail):
        return
    last = trail[-1] if trail else None
    event = audit.record(session, concern_id, "opened", reviewer_id, now,
                         after=(last.seq, last.hash) if last is not None else None)
    session.commit()
    trail.append(event)


# Compiled once (whistle.prepared): a case view runs four of these.
_TRAIL = PreparedQuery(select(AuditEvent.seq, AuditEvent.at, AuditEvent.type, AuditEvent.actor,
                              AuditEvent.data, AuditEvent.hash).where(
    AuditEvent.concern_id == bindparam("cid")).order_by(AuditEvent.seq))
_MESSAGES = PreparedQuery(select(Message.id, Message.sender, Message.reviewer_id, Message.created,
                                 Message.kind, Message.body_ct).where(
    Message.concern_id == bindparam("cid")).order_by(Message.seq))
_REVIEWERS = PreparedQuery(select(Reviewer.id, Reviewer.name, Reviewer.active).join(
    Assignment, Assignment.reviewer_id == Reviewer.id).where(
    Assignment.concern_id == bindparam("cid")).order_by(Assignment.reviewer_id))


# Reading a case, in one round trip: the assignment check, the case's columns and the
# reviewer's wrapped keys (two rows, one per key; none after a password reset).
_OPEN = PreparedQuery(select(
    Concern.id, Concern.status, Concern.category, Concern.unit, Concern.about_senior,
    Concern.created, Concern.acknowledge_by, Concern.feedback_by, Concern.overdue,
    Concern.under_routed, Concern.acknowledged_on, Concern.closed_on, Concern.outcome,
    Concern.proposed_outcome, Concern.proposed_by, Concern.details_ct, Concern.identity_ct,
    WrappedKey.key_kind, WrappedKey.blob,
    # Most cases have no messages or files yet: then their queries are skipped.
    select(Message.id).where(Message.concern_id == Concern.id).exists().label("has_messages"),
    select(Attachment.id).where(Attachment.concern_id == Concern.id).exists().label("has_files"),
).select_from(Assignment).join(Concern, Concern.id == Assignment.concern_id).outerjoin(
    WrappedKey, and_(WrappedKey.concern_id == Assignment.concern_id,
                     WrappedKey.recipient_kind == literal_column("'reviewer'"),
                     WrappedKey.recipient_id == Assignment.reviewer_id)).where(
    Assignment.concern_id == bindparam("case_ref"),
    Assignment.reviewer_id == bindparam("reviewer")))


def _open_keys(session: Session, signed: SignedIn, case_ref: Any
               ) -> tuple[Any, casekeys.CaseKeys]:
    """``case_keys`` for reading: the case as a row of ``_OPEN``'s columns."""
    if not isinstance(case_ref, str) or len(case_ref) > 64:
        raise NotFound()
    rows = _OPEN.all(session.connection(), {"case_ref": case_ref, "reviewer": signed.reviewer_id})
    if not rows:
        raise NotFound()
    held = {r.key_kind: r.blob for r in rows if r.key_kind is not None}
    if not held:
        raise KeysPending()
    concern = rows[0]
    found = casekeys.unwrap_found(held, concern.id, "reviewer", signed.reviewer_id,
                                  signed.private_key())
    return concern, casekeys.CaseKeys(found[casekeys.CASE], found[casekeys.THREAD])


def open_case(session: Session, signed: SignedIn, case_ref: Any,
              now: dt.datetime | None = None) -> dict[str, Any]:
    """The whole case, decrypted for this reviewer, and recorded as read by them.

    NotFound unless assigned to them. Feedback waiting on a closure proposal
    is under ``closure.feedback``, not among the messages the reporter has seen.
    """
    concern, keys = _open_keys(session, signed, case_ref)
    cid = concern.id
    conn = session.connection()
    trail: list[Any] = _TRAIL.all(conn, {"cid": cid})
    _record_opened(session, cid, signed.reviewer_id, now or utcnow(), trail)
    details = crypto.open_sealed(keys.case, concern.details_ct, casekeys.part(cid, "details"))
    identity = (json.loads(crypto.open_sealed(keys.case, concern.identity_ct,
                                              casekeys.part(cid, "identity")))
                if concern.identity_ct else None)
    messages: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    drafts: dict[str, str] = {}
    rows = _MESSAGES.all(session.connection(), {"cid": cid}) if concern.has_messages else []
    for mid, sender, reviewer_id, created, kind, body_ct in rows:
        key = keys.case if kind == "note" else keys.thread
        body = crypto.open_sealed(key, body_ct, casekeys.part(cid, f"{kind}:{mid}")).decode()
        entry = {"id": mid, "from": sender, "reviewer_id": reviewer_id,
                 "at": created.isoformat(), "kind": kind, "body": body}
        if kind == workflow.PROPOSED_FEEDBACK:
            drafts[mid] = body
        else:
            (notes if kind == "note" else messages).append(entry)
    reviewers = [{"id": rid, "name": name, "active": active}
                 for rid, name, active in _REVIEWERS.all(session.connection(), {"cid": cid})]
    from whistle import attachments

    data: dict[str, Any] = summary(concern) | {
        "details": details.decode(), "identity": identity,
        "attachments": attachments.listing(session, cid, keys) if concern.has_files else [],
        "messages": messages, "notes": notes,
        "events": [{"at": e.at.isoformat(), "type": e.type, "actor": e.actor,
                    "data": json.loads(e.data)} for e in trail],
        "reviewers": reviewers,
        "acknowledged_on": concern.acknowledged_on.isoformat() if concern.acknowledged_on
        else None,
    }
    if concern.status in (workflow.CLOSURE_PROPOSED, workflow.CLOSED):
        data["closure"] = {"proposed_by": concern.proposed_by,
                           "outcome": concern.outcome or concern.proposed_outcome,
                           "closed_on": concern.closed_on.isoformat() if concern.closed_on
                           else None}
        if concern.status == workflow.CLOSURE_PROPOSED:
            # As workflow.pending_feedback_id, from the trail already read.
            proposals = [e for e in trail if e.type == "closure_proposed"]
            pending = json.loads(proposals[-1].data).get("feedback") if proposals else None
            data["closure"]["feedback"] = drafts.get(pending) if pending else None
    return data


def transition(session: Session, signed: SignedIn, config: Mapping[str, Any], case_ref: Any,
               to: Any, note: Any = None, outcome: Any = None, feedback: Any = None,
               now: dt.datetime | None = None) -> str:
    from whistle import validation

    if not isinstance(to, str):
        raise InvalidInput("to must be one of acknowledged, investigating, closed", "to")
    note_t = validation.text(note, "note", config["MAX_DETAILS_CHARS"])
    feedback_t = validation.text(feedback, "feedback", config["MAX_DETAILS_CHARS"])
    if outcome is not None and not isinstance(outcome, str):
        raise InvalidInput("outcome must be text", "outcome")
    concern, keys = case_keys(session, signed, case_ref)
    now = now or utcnow()
    new = workflow.transition(session, concern, signed.reviewer_id, to, keys, config, now,
                              note_t, outcome, feedback_t)
    for a in concern.assignments:
        if a.reviewer.active and a.reviewer_id != signed.reviewer_id:
            notify.queue(session, a.reviewer.email, "activity")
    session.commit()
    return new


def post_message(session: Session, signed: SignedIn, config: Mapping[str, Any], case_ref: Any,
                 body: Any, internal: bool = False, now: dt.datetime | None = None) -> Message:
    """A message to the reporter (thread key) or an internal note (case key)."""
    from whistle import validation

    text = validation.text(body, "body", config["MAX_DETAILS_CHARS"], required=True) or ""
    concern, keys = case_keys(session, signed, case_ref)
    now = now or utcnow()
    kind = "note" if internal else "message"
    msg = workflow.add_message(session, concern, keys.case if internal else keys.thread, kind,
                               "reviewer", signed.reviewer_id, text, now.date())
    audit.record(session, concern.id, "note" if internal else "reviewer_message",
                 signed.reviewer_id, now, {"message": msg.id})
    for a in concern.assignments:
        if a.reviewer.active and a.reviewer_id != signed.reviewer_id:
            notify.queue(session, a.reviewer.email, "activity")
    session.commit()
    return msg


def is_excluded(session: Session, keys: InstanceKeys, case_ref: str, reviewer_id: str) -> bool:
    tag = casekeys.exclusion_tag(keys.index_pepper, case_ref, reviewer_id)
    return session.get(Exclusion, tag) is not None


class ShareRefused(Exception):
    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def add_to_case(session: Session, instance: InstanceKeys, concern: Concern,
                ck: casekeys.CaseKeys, target_id: Any, actor: str, now: dt.datetime,
                min_reviewers: int = 2) -> Reviewer:
    """Give another reviewer the case: wrap both keys for them, assign, audit, notify."""
    target = session.get(Reviewer, target_id) if isinstance(target_id, str) else None
    if target is None or not target.active or not target.is_reviewer:
        raise ShareRefused("not_found", "no such active reviewer", 404)
    if is_excluded(session, instance, concern.id, target.id):
        raise ShareRefused("excluded", "the reporter excluded this reviewer from the case")
    if session.get(Assignment, (concern.id, target.id)) is not None:
        if holds_keys(session, concern.id, target.id):
            raise ShareRefused("already_assigned", "this reviewer already has the case")
        rewrap_for(session, concern, ck, target, actor, now)  # back after a password reset
        return target
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


def share(session: Session, signed: SignedIn, instance: InstanceKeys, case_ref: Any,
          reviewer_id: Any, now: dt.datetime | None = None, min_reviewers: int = 2
          ) -> Reviewer:
    concern, ck = case_keys(session, signed, case_ref)
    target = add_to_case(session, instance, concern, ck, reviewer_id, signed.reviewer_id,
                         now or utcnow(), min_reviewers)
    session.commit()
    return target


def attachment_for(session: Session, signed: SignedIn, case_ref: Any, attachment_id: Any
                   ) -> tuple[Attachment, casekeys.CaseKeys]:
    """An attachment of a case assigned to this reviewer, with the case's keys to open it."""
    concern, keys = case_keys(session, signed, case_ref)
    att = session.get(Attachment, attachment_id) if isinstance(attachment_id, str) else None
    if att is None or att.concern_id != concern.id:
        raise NotFound()
    return att, keys


def record_download(session: Session, signed: SignedIn, att: Attachment,
                    now: dt.datetime | None = None) -> None:
    """A reviewer takes a file of the case away: an ``attachment_downloaded`` event in the
    case's trail (who, when, which file), committed before any byte of it is sent. Every
    download counts, not one per window as ``opened`` does: a copy leaving the system is
    what a chain of custody must show."""
    audit.record(session, att.concern_id, "attachment_downloaded", signed.reviewer_id,
                 now or utcnow(), {"attachment": att.id})
    session.commit()


def share_candidates(session: Session, instance: InstanceKeys, case_ref: str,
                     assigned: set[str]) -> list[dict[str, str]]:
    """Active reviewers this case could be shared with: not assigned, not excluded from it."""
    rows = session.scalars(select(Reviewer).where(
        Reviewer.active.is_(True), Reviewer.is_reviewer.is_(True)).order_by(Reviewer.name))
    return [{"id": r.id, "name": r.name} for r in rows
            if r.id not in assigned and not is_excluded(session, instance, case_ref, r.id)]
