"""Failure counters and sign-in lockouts in the database, shared by every worker and server.

Keys never identify anyone: ``miss``, ``all`` or an HMAC of an email address (the caller's).
Each function that writes commits its own short transaction on the caller's session, so a
count survives the request that is refused; call them only when the session holds nothing
else to write (after a rollback, or when only reads came before).

The moving window (``hit``) is one ``INSERT ... SELECT`` that adds a row only while fewer
than ``limit`` rows are younger than the window: on SQLite a statement that writes takes
the write lock before it reads, so concurrent workers count exactly; on PostgreSQL two
concurrent hits may both pass at the edge (one too many at most per concurrent request),
which a limit meant to stop thousands of guesses can bear.
"""

from __future__ import annotations

from sqlalchemy import (
    Float,
    Integer,
    String,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement, Executable

from whistle.store.models import LimitHit, SigninLockout


def _young(kind: str, key: str, since: float) -> list[ColumnElement[bool]]:
    return [LimitHit.kind == kind, LimitHit.key == key, LimitHit.at > since]


def hit(session: Session, kind: str, key: str, limit: int, window: float, now: float) -> bool:
    """Count one failure; False (and nothing counted) once ``limit`` are in the window."""
    since = now - window
    under = select(func.count()).select_from(LimitHit).where(*_young(kind, key, since)) \
        .scalar_subquery() < limit
    added = session.execute(insert(LimitHit).from_select(
        ["kind", "key", "at"],
        select(literal(kind, String), literal(key, String), literal(now, Float)).where(under)
    ).returning(LimitHit.id)).first()
    session.execute(delete(LimitHit).where(LimitHit.kind == kind, LimitHit.key == key,
                                           LimitHit.at <= since))
    session.commit()
    return added is not None


def window(session: Session, kind: str, key: str, window_seconds: float, now: float
           ) -> tuple[int, float | None]:
    """How many failures are in the window, and the oldest of them."""
    count, oldest = session.execute(
        select(func.count(), func.min(LimitHit.at)).where(
            *_young(kind, key, now - window_seconds))).one()
    return int(count), oldest


def locked_until(session: Session, key: str) -> float:
    """Until when the account keyed ``key`` is locked (0: never locked)."""
    found = session.scalar(select(SigninLockout.locked_until).where(SigninLockout.key == key))
    return float(found or 0.0)


def _upsert(session: Session) -> Executable:
    name = session.get_bind().dialect.name
    stmt = (sqlite.insert(SigninLockout) if name == "sqlite"
            else postgresql.insert(SigninLockout))
    values = stmt.values(key=bindparam("key", type_=String), failures=1, lockouts=0,
                         locked_until=0.0)
    return values.on_conflict_do_update(
        index_elements=[SigninLockout.key],
        set_={"failures": SigninLockout.failures + literal(1, Integer)})


def fail_signin(session: Session, key: str, threshold: int, base: float, cap: float,
                now: float) -> float | None:
    """Count one failed sign-in of the account keyed ``key``. Every ``threshold``-th
    failure in a row locks it: the n-th lockout lasts ``base * 2**(n-1)`` seconds, at most
    ``cap``. Returns the end of the lockout this failure started, else None."""
    session.execute(_upsert(session), {"key": key})
    failures, lockouts = session.execute(
        select(SigninLockout.failures, SigninLockout.lockouts).where(
            SigninLockout.key == key)).one()
    until = None
    if failures >= threshold:
        until = now + min(cap, base * 2 ** min(lockouts, 40))
        session.execute(update(SigninLockout).where(SigninLockout.key == key).values(
            failures=0, lockouts=lockouts + 1, locked_until=until))
    session.commit()
    return until


def clear_signin(session: Session, key: str) -> None:
    """A successful sign-in: the account's failures and back-off are forgotten (in the
    caller's transaction, which commits the sign-in)."""
    session.execute(delete(SigninLockout).where(SigninLockout.key == key))
