"""The tamper-evident trail: every event on a case is a link in a per-case hash chain.

Each event's hash covers the previous event's hash and the event's own
fields (case, sequence number, time, type, actor, data), so editing,
deleting or reordering any event breaks every later link. Events never
carry plaintext content: only types, actors, statuses and ids.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.store.models import AuditEvent
from whistle.store.prepared import Prepared

GENESIS = b"\x00" * 32
NEW_CHAIN = (0, GENESIS)  # ``record(after=...)`` for a case's first event


def _record(e: Any) -> bytes:
    return _fields(e.concern_id, e.seq, e.at, e.type, e.actor, e.data)


def _fields(concern_id: str, seq: int, at: dt.datetime, type_: str, actor: str, data: str
            ) -> bytes:
    return json.dumps(
        [concern_id, seq, at.isoformat(), type_, actor, data],
        separators=(",", ":"), ensure_ascii=True,
    ).encode()


def record_many(session: Session, concern_id: str,
                events: list[tuple[str, str, dt.datetime, dict[str, Any] | None]],
                after: tuple[int, bytes]) -> tuple[int, bytes]:
    """Append several events (type, actor, at, data) after the link ``after`` (see ``record``)
    with one INSERT executemany, at once, inside the caller's transaction and without an
    autoflush: the case row must be in the database already (flushed). Returns the new
    last link (seq, hash)."""
    seq, prev = after
    rows = []
    for type_, actor, at, data in events:
        seq, at = seq + 1, at.replace(microsecond=0)
        text = json.dumps(data or {}, sort_keys=True)
        link = crypto.chain_hash(prev, _fields(concern_id, seq, at, type_, actor, text))
        rows.append({"concern_id": concern_id, "seq": seq, "at": at, "type": type_,
                     "actor": actor, "data": text, "prev_hash": prev, "hash": link})
        prev = link
    if rows:
        _INSERT.run(session.connection(), rows)  # one executemany
    return seq, prev


_INSERT = Prepared(insert(AuditEvent))

_LAST = select(AuditEvent.seq, AuditEvent.hash).where(
    AuditEvent.concern_id == bindparam("cid")).order_by(AuditEvent.seq.desc()).limit(1)


def record(session: Session, concern_id: str, type_: str, actor: str, at: dt.datetime,
           data: dict[str, Any] | None = None, after: tuple[int, bytes] | None = None
           ) -> AuditEvent:
    """Append an event to the case's chain (inside the caller's transaction).

    ``after``: the chain's last link as (seq, hash) when the caller already knows it,
    e.g. the event it just recorded, or ``NEW_CHAIN`` for a case created in this
    transaction (and flushed); saves reading the last event back.
    """
    if after is None:
        last = session.execute(_LAST, {"cid": concern_id}).first()
        if last is None:
            # The case row may still be pending in this session: flush order matters for FKs.
            session.flush()
        after = (last[0], last[1]) if last is not None else NEW_CHAIN
    seq, prev = after
    event = AuditEvent(
        concern_id=concern_id, seq=seq + 1, at=at.replace(microsecond=0),
        type=type_, actor=actor, data=json.dumps(data or {}, sort_keys=True), prev_hash=prev,
        hash=b"",
    )
    event.hash = crypto.chain_hash(prev, _record(event))
    session.add(event)
    return event


_LINK_COLUMNS = (AuditEvent.concern_id, AuditEvent.seq, AuditEvent.at, AuditEvent.type,
                 AuditEvent.actor, AuditEvent.data, AuditEvent.prev_hash, AuditEvent.hash)
_VERIFY_BATCH = 5000


@dataclass(frozen=True)
class Break:
    concern_id: str
    seq: int
    reason: str


def verify(session: Session) -> tuple[int, Break | None]:
    """Check every chain. Returns (events checked, first broken link or None)."""
    checked = 0
    for _case, events in chains(session):
        good, broken = chain_fault(events)
        checked += good
        if broken:
            return checked, broken
    return checked, None


def chains(session: Session) -> Iterator[tuple[str, list[Any]]]:
    """Every case's trail, one case at a time: (case reference, its events as rows of
    ``_LINK_COLUMNS`` in order). Rows, not ORM objects, fetched in batches: at a million
    cases the ORM version held every event at once, enough memory to kill a small server."""
    rows = session.execute(select(*_LINK_COLUMNS)
                           .order_by(AuditEvent.concern_id, AuditEvent.seq)
                           .execution_options(yield_per=_VERIFY_BATCH))
    current: str | None = None
    events: list[Any] = []
    for e in rows:
        if e.concern_id != current:
            if events:
                yield current or "", events
            current, events = e.concern_id, []
        events.append(e)
    if events:
        yield current or "", events


def chain_fault(events: list[Any]) -> tuple[int, Break | None]:
    """Check one case's trail (rows of ``_LINK_COLUMNS``, in order): (links that hold,
    the first broken link or None)."""
    prev, expected = GENESIS, 1
    for e in events:
        fault = link_fault(e, expected, prev, _record(e))
        if fault:
            return expected - 1, Break(e.concern_id, e.seq, fault)
        prev, expected = e.hash, expected + 1
    return expected - 1, None


def link_fault(event: Any, expected_seq: int, prev: bytes, record: bytes) -> str | None:
    """What is wrong with one link of a hash chain (an event with ``seq``, ``prev_hash`` and
    ``hash``, whose fields serialise to ``record``), or None if it follows ``prev``."""
    if event.seq != expected_seq:
        return f"expected event {expected_seq}"
    if event.prev_hash != prev:
        return "previous-hash link broken"
    if crypto.chain_hash(prev, record) != event.hash:
        return "event altered"
    return None


def trail(session: Session, concern_id: str) -> list[AuditEvent]:
    return list(session.scalars(
        select(AuditEvent).where(AuditEvent.concern_id == concern_id).order_by(AuditEvent.seq)
    ))
