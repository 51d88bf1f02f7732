"""The administration log: who changed accounts and routing, and when, in one hash chain.

Routing decides who reads a concern. An administrator who quietly changes a
reviewer's units, enrols a friendly reviewer or disables an inconvenient one
changes where the next concern goes, so every such change is recorded here,
in the transaction that makes it: enrolments, changes to a reviewer's units
and roles, disabling, password resets, and changes to the categories, units
and advice text the report form offers.

Each event's hash covers the previous event's hash and its own fields, as in
the case trails (whistle.cases.audit), so editing, deleting or reordering an event
breaks every later link; ``flask --app app audit verify`` checks both.
Events carry ids, roles, units and category ids: never a password, a key, an
email address or anything from a case.

Actors: a reviewer id (an administrator in the web interface), ``operator``
(the command line on the server) or ``setup`` (the first-run page).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.cases import audit
from whistle.store import db
from whistle.store.models import AdminEvent, utcnow

GENESIS = b"\x00" * 32
OPERATOR = "operator"
SETUP = "setup"
# PostgreSQL: one advisory lock orders concurrent writers of the chain (SQLite has
# one writer at a time anyway). The number is "whst" in ASCII.
_CHAIN_LOCK = 0x77687374


def _fields(seq: int, at: dt.datetime, type_: str, actor: str, data: str) -> bytes:
    return json.dumps([seq, at.isoformat(), type_, actor, data],
                      separators=(",", ":"), ensure_ascii=True).encode()


def record(session: Session, type_: str, actor: str, data: dict[str, Any]) -> AdminEvent:
    """Append an event to the chain, inside the caller's transaction (the caller commits)."""
    session.flush()  # the change itself first: on SQLite this takes the write lock
    db.serialize_appends(session, _CHAIN_LOCK)
    last = session.execute(select(AdminEvent.seq, AdminEvent.hash)
                           .order_by(AdminEvent.seq.desc()).limit(1)).first()
    seq, prev = (last[0], last[1]) if last is not None else (0, GENESIS)
    at = utcnow().replace(microsecond=0)
    body = json.dumps(data, sort_keys=True)
    event = AdminEvent(seq=seq + 1, at=at, type=type_, actor=actor, data=body, prev_hash=prev,
                       hash=crypto.chain_hash(prev, _fields(seq + 1, at, type_, actor, body)))
    session.add(event)
    return event


@dataclass(frozen=True)
class Break:
    seq: int
    reason: str


def verify(session: Session) -> tuple[int, Break | None]:
    """Check the chain. Returns (events checked, first broken link or None)."""
    prev, expected, checked = GENESIS, 1, 0
    for e in session.scalars(select(AdminEvent).order_by(AdminEvent.seq)):
        fault = audit.link_fault(e, expected, prev, _fields(e.seq, e.at, e.type, e.actor, e.data))
        if fault:
            return checked, Break(e.seq, fault)
        prev, expected, checked = e.hash, expected + 1, checked + 1
    return checked, None


def recent(session: Session, limit: int = 200) -> list[AdminEvent]:
    """The latest events, newest first."""
    return list(session.scalars(select(AdminEvent).order_by(AdminEvent.seq.desc())
                                .limit(limit)))


def since(session: Session, after: int, limit: int) -> list[AdminEvent]:
    """Up to ``limit`` events after sequence number ``after``, oldest first."""
    return list(session.scalars(select(AdminEvent).where(AdminEvent.seq > after)
                                .order_by(AdminEvent.seq).limit(limit)))


def roles(is_reviewer: bool, is_admin: bool, senior: bool, independent: bool) -> list[str]:
    """A reviewer's roles as the log names them."""
    return [name for name, on in (("reviewer", is_reviewer), ("admin", is_admin),
                                  ("senior", senior), ("independent", independent)) if on]


# The events that change who may read concerns: every reviewer is shown them on their home
# page until they say they have seen them.
ROSTER_EVENTS = ("reviewer_enrolled", "reviewer_invited", "reviewer_changed",
                 "reviewer_disabled", "password_reset", "password_chosen", "key_rotated",
                 "change_proposed", "change_approved", "change_rejected", "roster_sealed")


def roster_changes(session: Session, after: int, limit: int = 50) -> list[AdminEvent]:
    """Changes to the roster after sequence number ``after``, oldest first."""
    return list(session.scalars(select(AdminEvent).where(
        AdminEvent.seq > after, AdminEvent.type.in_(ROSTER_EVENTS))
        .order_by(AdminEvent.seq).limit(limit)))
