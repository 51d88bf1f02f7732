"""Each reviewer's inbox total, kept as counts per status instead of counted per request.

Counting a reviewer's assignments walks one index entry per case: for a busy
reviewer a long walk on every inbox page, growing with the database.
``inbox_counts`` holds (reviewer, status) -> n instead, and in the row whose
status is ``overdue`` the reviewer's overdue cases (a flag, counted across the
statuses). Session events keep it exact for every ORM change to
``assignments`` (new, status or overdue flag changed, deleted),
whichever code path makes it: the changes are summed per flush and applied just
before the commit, in one sorted order, so two transactions never wait on each
other's counter rows in opposite orders (no deadlock on PostgreSQL).

Core inserts bypass the events: the submission path reports its own
(``count_new``); after a bulk load (the benchmark loader, an operator's
restore) ``recount`` rebuilds the counts from ``assignments`` (``flask --app
app inbox recount``), and ``mismatches`` lists any difference.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
)
from sqlalchemy.orm import Session

from whistle.store.models import Assignment, InboxCount
from whistle.store.prepared import Prepared

_PENDING = "whistle_inbox_deltas"
CLOSED = "closed"  # workflow.CLOSED (workflow imports the models; no cycle here)
# The row that counts the reviewer's overdue cases. Overdue is a flag on an open case, not
# a status: the other rows split the cases by status, this one counts across them.
OVERDUE = "overdue"


def _deltas(session: Session) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = session.info.setdefault(_PENDING, Counter())
    return found


def _collect(session: Session, _ctx: Any, _instances: Any) -> None:
    deltas = None
    for obj in session.new:
        if isinstance(obj, Assignment):
            deltas = deltas if deltas is not None else _deltas(session)
            deltas[(obj.reviewer_id, obj.status)] += 1
            if obj.overdue:
                deltas[(obj.reviewer_id, OVERDUE)] += 1
    for obj in session.dirty:
        if isinstance(obj, Assignment):
            attrs = inspect(obj).attrs
            for key, history in (("status", attrs.status.history),
                                 ("overdue", attrs.overdue.history)):
                if not history.has_changes():
                    continue
                deltas = deltas if deltas is not None else _deltas(session)
                for old in history.deleted:
                    if key == "status":
                        deltas[(obj.reviewer_id, old)] -= 1
                    elif old:
                        deltas[(obj.reviewer_id, OVERDUE)] -= 1
                for new in history.added:
                    if key == "status":
                        deltas[(obj.reviewer_id, new)] += 1
                    elif new:
                        deltas[(obj.reviewer_id, OVERDUE)] += 1
    for obj in session.deleted:
        if isinstance(obj, Assignment):
            deltas = deltas if deltas is not None else _deltas(session)
            attrs = inspect(obj).attrs
            for old in (attrs.status.history.deleted or attrs.status.history.unchanged
                        or [obj.status]):
                deltas[(obj.reviewer_id, old)] -= 1
            overdue = attrs.overdue.history
            if any(overdue.deleted or overdue.unchanged or [obj.overdue]):
                deltas[(obj.reviewer_id, OVERDUE)] -= 1


def count_new(session: Session, assigned: list[tuple[str, str]]) -> None:
    """Count assignments a caller inserted with Core (reviewer id, status): applied at commit
    with the rest, as if they had gone through the session."""
    deltas = _deltas(session)
    for key in assigned:
        deltas[key] += 1


def _apply(session: Session) -> None:
    if not session.info.get(_PENDING) and not any(
            isinstance(o, Assignment) for o in (*session.new, *session.dirty, *session.deleted)):
        return
    session.flush()
    deltas = session.info.pop(_PENDING, None)
    rows = [{"r": rid, "s": status, "d": d} for (rid, status), d in sorted(deltas.items()) if d
            ] if deltas else []
    if rows:
        _UPSERT.run(session.connection(), rows)


def _forget(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING, None)


# Written as text: SQLAlchemy's ON CONFLICT construct has no cache key, so it was compiled
# again on every commit that moved a count, a visible part of every submission.
# The same statement runs on SQLite (3.24+) and PostgreSQL.
_UPSERT = Prepared(text(
    "INSERT INTO inbox_counts (reviewer_id, status, n) VALUES (:r, :s, :d) "
    "ON CONFLICT (reviewer_id, status) DO UPDATE SET n = inbox_counts.n + excluded.n"))


_TOTALS = select(InboxCount.status, InboxCount.n).where(
    InboxCount.reviewer_id == bindparam("reviewer"))


def counts(session: Session, reviewer_id: str) -> dict[str, int]:
    """How many cases the reviewer has in each status (statuses with none may be missing)."""
    return dict(session.connection().execute(_TOTALS, {"reviewer": reviewer_id}).tuples().all())


def total(session: Session, reviewer_id: str, status: str | None) -> int:
    """How many cases the reviewer has: all (None), ``open`` (not closed), ``overdue`` or
    in ``status``."""
    per_status = counts(session, reviewer_id)
    if status is None:
        return sum(n for s, n in per_status.items() if s != OVERDUE)
    if status == "open":
        return sum(n for s, n in per_status.items() if s not in (CLOSED, OVERDUE))
    return per_status.get(status, 0)


_LIVE = select(Assignment.reviewer_id, Assignment.status, func.count()).group_by(
    Assignment.reviewer_id, Assignment.status).union_all(
    select(Assignment.reviewer_id, literal(OVERDUE), func.count()).where(
        Assignment.overdue.is_(True)).group_by(Assignment.reviewer_id))


def mismatches(conn: Connection) -> list[tuple[str, str, int, int]]:
    """(reviewer, status, kept count, real count) wherever the two differ."""
    real = {(r, s): n for r, s, n in conn.execute(_LIVE)}
    kept = {(r, s): n for r, s, n in conn.execute(select(
        InboxCount.reviewer_id, InboxCount.status, InboxCount.n))}
    return [(r, s, kept.get((r, s), 0), real.get((r, s), 0))
            for r, s in sorted(set(real) | set(kept)) if kept.get((r, s), 0) != real.get((r, s), 0)]


def recount(conn: Connection) -> int:
    """Rebuild every count from ``assignments`` (caller's transaction); returns rows written."""
    conn.execute(delete(InboxCount))
    rows = [{"reviewer_id": r, "status": s, "n": n} for r, s, n in conn.execute(_LIVE)]
    if rows:
        conn.execute(insert(InboxCount), rows)
    return len(rows)


def keep_counts(maker: Any) -> None:
    """Keep the inbox counts exact for every session ``maker`` makes (the app's sessions;
    not every SQLAlchemy session in the process)."""
    event.listen(maker, "before_flush", _collect)
    event.listen(maker, "before_commit", _apply)
    event.listen(maker, "after_soft_rollback", _forget)
