"""The tamper-evident trail: every event on a case is a link in a per-case hash chain.

Each event's hash covers the previous event's hash and the event's own
fields (case, sequence number, time, type, actor, data), so editing,
deleting or reordering any event breaks every later link. Events never
carry plaintext content: only types, actors, statuses and ids.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.models import AuditEvent

GENESIS = b"\x00" * 32


def _record(e: AuditEvent) -> bytes:
    return json.dumps(
        [e.concern_id, e.seq, e.at.isoformat(), e.type, e.actor, e.data],
        separators=(",", ":"), ensure_ascii=True,
    ).encode()


def record(session: Session, concern_id: str, type_: str, actor: str, at: dt.datetime,
           data: dict[str, Any] | None = None) -> AuditEvent:
    """Append an event to the case's chain (inside the caller's transaction)."""
    last = session.scalars(
        select(AuditEvent).where(AuditEvent.concern_id == concern_id)
        .order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    if last is None:
        # The case row may still be pending in this session: flush order matters for FKs.
        session.flush()
    prev = last.hash if last else GENESIS
    event = AuditEvent(
        concern_id=concern_id, seq=(last.seq + 1) if last else 1, at=at.replace(microsecond=0),
        type=type_, actor=actor, data=json.dumps(data or {}, sort_keys=True), prev_hash=prev,
        hash=b"",
    )
    event.hash = crypto.chain_hash(prev, _record(event))
    session.add(event)
    return event


@dataclass(frozen=True)
class Break:
    concern_id: str
    seq: int
    reason: str


def verify(session: Session) -> tuple[int, Break | None]:
    """Check every chain. Returns (events checked, first broken link or None)."""
    checked = 0
    current: str | None = None
    prev = GENESIS
    expected_seq = 1
    rows = session.scalars(select(AuditEvent).order_by(AuditEvent.concern_id, AuditEvent.seq))
    for e in rows:
        if e.concern_id != current:
            current, prev, expected_seq = e.concern_id, GENESIS, 1
        if e.seq != expected_seq:
            return checked, Break(e.concern_id, e.seq, f"expected event {expected_seq}")
        if e.prev_hash != prev:
            return checked, Break(e.concern_id, e.seq, "previous-hash link broken")
        if crypto.chain_hash(prev, _record(e)) != e.hash:
            return checked, Break(e.concern_id, e.seq, "event altered")
        prev, expected_seq = e.hash, expected_seq + 1
        checked += 1
    return checked, None


def trail(session: Session, concern_id: str) -> list[AuditEvent]:
    return list(session.scalars(
        select(AuditEvent).where(AuditEvent.concern_id == concern_id).order_by(AuditEvent.seq)
    ))
