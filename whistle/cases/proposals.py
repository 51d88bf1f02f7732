"""The one proposal mechanism behind every two-person action: a ``Change`` row records who
proposed what; a different person decides it.

Generic and storage-level, so that both layers use it: ``whistle.people.approvals`` for
changes to the roster (its guard: administrators, logged in the administration log) and
``whistle.cases.sharing`` for giving a case to another reviewer (its guard: the case's
other assigned reviewers, logged in the case's trail). Each caller names who may decide;
this module refuses the proposer and the person concerned, whoever they are.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle.errors import DomainError, NotFound, Refused
from whistle.store.models import Change

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


class SecondPersonRequired(Refused):
    def __init__(self) -> None:
        super().__init__("second_person_required", "a different person must approve this: "
                         "not the one who proposed it, nor the person it concerns")


class NotAllowed(DomainError):
    code, status = "not_allowed", 403
    message = "you may not decide this change"


def create(session: Session, type_: str, subject: str | None, payload: dict[str, Any],
           proposer: str, now: dt.datetime) -> Change:
    """A pending change (caller's transaction)."""
    change = Change(type=type_, subject=subject, payload=json.dumps(payload, sort_keys=True),
                    proposed_by=proposer, proposed_at=now, state=PENDING)
    session.add(change)
    session.flush()
    return change


def pending(session: Session, types: Collection[str], subject: str | None = None
            ) -> list[Change]:
    """Pending changes of these kinds (about ``subject`` if given), oldest first."""
    query = select(Change).where(Change.state == PENDING, Change.type.in_(list(types)))
    if subject is not None:
        query = query.where(Change.subject == subject)
    return list(session.scalars(query.order_by(Change.proposed_at, Change.id)))


def open_change(session: Session, change_id: Any, types: Collection[str]) -> Change:
    """A pending change of one of these kinds; NotFound or 409 ``already_decided``."""
    change = session.get(Change, change_id) if isinstance(change_id, str) and \
        len(change_id) <= 64 else None
    if change is None or change.type not in types:
        raise NotFound("no such change")
    if change.state != PENDING:
        raise Refused("already_decided", f"this change was already {change.state}")
    return change


def guard(change: Change, decider: str, concerned: Collection[str],
          allowed: Collection[str]) -> None:
    """The two-person rule: never the proposer nor anyone ``concerned`` (409); only people
    in ``allowed`` (403)."""
    if decider == change.proposed_by or decider in concerned:
        raise SecondPersonRequired()
    if decider not in allowed:
        raise NotAllowed()


def decide(change: Change, state: str, decider: str, now: dt.datetime) -> None:
    change.state, change.decided_by, change.decided_at = state, decider, now


def payload(change: Change) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(change.payload)
    return data


def describe(change: Change) -> dict[str, Any]:
    return {"id": change.id, "type": change.type, "subject": change.subject,
            "proposed_by": change.proposed_by, "at": change.proposed_at.isoformat(),
            "state": change.state, "details": payload(change)}
