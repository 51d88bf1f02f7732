"""Retention with crypto-shredding (issue 23), run by ``flask --app app retention``.

A closed case is kept for a time that depends on its outcome (``RETENTION_DAYS``) or, where
its category sets one, on its category (``retention_days``: the LADO category keeps its
records for 75 years), counted from the day it was closed. ``RETENTION_REMINDER_DAYS``
before that, its assigned reviewers get one content-free mail (``retention``), so that they
can place a legal hold in time (whistle.cases.holds). A case on hold is never deleted.

When its retention ends, each case is deleted in its own transaction: every wrapped key,
ciphertext, attachment chunk, message, note, token lookup, exclusion tag and proposal that
names it (``store.scrub.delete_case_rows``: every table but the trail, the registry and the
checkpoints' heads), and its assignments (so the inbox counts stay exact). Without the
wrapped keys no copy of the case (a backup included, once the recovery key's copy is gone
from it) can be opened. What stays is a content-free tombstone: the case row with its
reference, category, dates, status and outcome (the statistics count it as before), its
hash-chained trail (content-free by design) ending in ``retention_ended``, and who had been
assigned (``CaseRetention.readers``): they get ``410 deleted``, anyone else ``404``; the
reporter's token opens nothing (``404``). Then ``store.scrub.after_deletion`` makes the
deletion reach the disk.

Guarded against a clock that jumps (THREATS F9): only a case whose row *and* trail say it is
closed is deleted, counted from its ``closed_on``, never an open or reopened one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle.cases import audit, notices, workflow
from whistle.config import Settings
from whistle.errors import DomainError, NotFound
from whistle.store import options, scrub
from whistle.store.models import AuditEvent, CaseRetention, Concern

ENDED = "retention_ended"
REMINDED = "retention_reminder"
# Kept when a case is deleted: content-free, and what keeps ``audit verify`` whole.
KEEP = frozenset({"audit_events", "case_registry", "checkpoint_heads", "case_retention",
                  "assignments"})
_MOVES = sorted({"received"} | {s.event for s in workflow.TRANSITIONS.values()})


class Deleted(DomainError):
    """The case's retention ended and it was deleted (to the reviewers who had it)."""

    code, status = "deleted", 410
    message = "this case was deleted when its retention period ended; only its reference, " \
              "category, dates and outcome are kept"


@dataclass
class RetentionReport:
    reminded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # expired, but on hold
    scrubbed: bool = True


def retention_days(settings: Settings, categories: list[dict[str, Any]], category: str,
                   outcome: str | None) -> int:
    """How long a closed case is kept: its category's ``retention_days``, else its
    outcome's, else the longest of the outcomes'."""
    found = next((c for c in categories if c.get("id") == category), None)
    if found is not None and isinstance(found.get("retention_days"), int):
        return int(found["retention_days"])
    policy = dict(settings.retention_days)
    return policy.get(outcome or "", max(policy.values()))


def state(session: Session, case_ref: str) -> CaseRetention | None:
    return session.get(CaseRetention, case_ref)


def ensure_state(session: Session, case_ref: str) -> CaseRetention:
    row = session.get(CaseRetention, case_ref)
    if row is None:
        row = CaseRetention(concern_id=case_ref, on_hold=False)
        session.add(row)
    return row


def deleted_for(session: Session, reviewer_id: str, case_ref: Any) -> bool:
    """Was this case deleted at the end of its retention, and was the reviewer assigned?"""
    if not isinstance(case_ref, str) or len(case_ref) > 64:
        return False
    row = session.get(CaseRetention, case_ref)
    return (row is not None and row.deleted_on is not None
            and reviewer_id in json.loads(row.readers or "[]"))


@contextlib.contextmanager
def gone_if_deleted(session: Session, signed: Any, case_ref: Any) -> Iterator[None]:
    """Turn the 404 of a deleted case into ``410 deleted`` for those who had it."""
    try:
        yield
    except NotFound:
        if deleted_for(session, signed.reviewer_id, case_ref):
            raise Deleted() from None
        raise


# -- the daily run --------------------------------------------------------------------------

_CLOSED = select(Concern.id, Concern.category, Concern.outcome, Concern.closed_on,
                 CaseRetention.on_hold, CaseRetention.reminded_on, CaseRetention.deleted_on
                 ).outerjoin(CaseRetention, CaseRetention.concern_id == Concern.id).where(
    Concern.status == workflow.CLOSED).order_by(Concern.closed_on, Concern.id)


def run(session: Session, settings: Settings, now: dt.datetime,
        before_scrub: Callable[[Session], None] | None = None, dry_run: bool = False
        ) -> RetentionReport:
    """Remind, then delete what expired by ``now`` (one transaction per case), then (after
    ``before_scrub``: the command signs a checkpoint) make the deletions reach the disk.
    ``dry_run``: only report what would be reminded, deleted and kept on hold."""
    report = RetentionReport()
    today = now.date()
    categories = options.categories(session)
    rows = session.execute(_CLOSED).all()
    session.commit()
    touched: set[str] = set()
    for row in rows:
        if row.deleted_on is not None or row.closed_on is None:
            continue
        days = retention_days(settings, categories, row.category, row.outcome)
        expires = row.closed_on + dt.timedelta(days=days)
        if row.on_hold:
            if today >= expires:
                report.held.append(row.id)
        elif today >= expires and dry_run:
            report.deleted.append(row.id)
        elif today >= expires:
            deleted = _delete(session, row.id, days, now)
            if deleted is not None:
                report.deleted.append(row.id)
                touched |= set(deleted) | {"concerns"}
        elif (today >= expires - dt.timedelta(days=settings.retention_reminder_days)
              and (row.reminded_on is None or row.reminded_on < row.closed_on)):
            if not dry_run:
                _remind(session, row.id, expires, now)
            report.reminded.append(row.id)
        session.commit()
    if touched:
        if before_scrub is not None:
            before_scrub(session)
        report.scrubbed = scrub.after_deletion(session, touched)
    return report


def _remind(session: Session, case_ref: str, expires: dt.date, now: dt.datetime) -> None:
    concern = session.get_one(Concern, case_ref)
    told = notices.tell_reviewers(session, concern, "retention")
    audit.record(session, case_ref, REMINDED, "system", now,
                 {"expires": expires.isoformat(), "reviewers_told": told})
    row = ensure_state(session, case_ref)
    row.reminded_on = now.date()


def _trail_says_closed(session: Session, case_ref: str) -> bool:
    last_move = session.scalars(select(AuditEvent.type).where(
        AuditEvent.concern_id == case_ref, AuditEvent.type.in_(_MOVES))
        .order_by(AuditEvent.seq.desc()).limit(1)).first()
    return last_move == "closed"


def _delete(session: Session, case_ref: str, days: int, now: dt.datetime
            ) -> dict[str, int] | None:
    """Delete one expired case, leaving its tombstone (caller commits); returns the rows
    deleted per table. None, and nothing changed, unless its row and its trail both say it
    is closed and it is not on hold."""
    concern = session.get(Concern, case_ref)
    row = state(session, case_ref)
    if (concern is None or concern.status != workflow.CLOSED or concern.closed_on is None
            or concern.closed_on > now.date() or not _trail_says_closed(session, case_ref)
            or (row is not None and (row.on_hold or row.deleted_on is not None))):
        return None
    readers = sorted({a.reviewer_id for a in concern.assignments})
    for assignment in list(concern.assignments):
        session.delete(assignment)  # through the ORM: the inbox counts follow
    session.flush()
    deleted = scrub.delete_case_rows(session, case_ref, KEEP)
    _tombstone(concern)
    audit.record(session, case_ref, ENDED, "system", now, {
        "outcome": concern.outcome, "closed_on": concern.closed_on.isoformat(),
        "retention_days": days, "deleted": deleted})
    row = ensure_state(session, case_ref)
    row.deleted_on, row.readers, row.on_hold = now.date(), json.dumps(readers), False
    return deleted


def _tombstone(concern: Concern) -> None:
    """Strip the case row to its tombstone: every sealed column emptied, the token's lookup
    replaced by random bytes that no token hashes to."""
    for column in Concern.__table__.columns:
        if column.key.endswith("_ct"):
            setattr(concern, column.key, None if column.nullable else b"")
    concern.token_lookup = secrets.token_bytes(32)
    concern.idempotency = None
    concern.unit, concern.about_senior = None, False
    concern.overdue = concern.under_routed = concern.handover_due = False
