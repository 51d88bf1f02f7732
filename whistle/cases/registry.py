"""The case registry: every case's creation is a link in one hash chain for the instance.

A case's own trail (whistle.cases.audit) shows what happened to it, but a case deleted
whole leaves no trail to check. So the submission's transaction also appends one link
here: (seq, case reference, day), hashed over the link before it. A case row deleted
behind Whistle's back leaves its registry entry, which ``audit verify`` names; deleting the
entry too breaks the chain, and the signed checkpoints (whistle.cases.checkpoints) fix the
registry's head so that its tail cannot be cut unseen either.

A link is a hash, no signature: on the submission's hot path it costs a read of the head
and one small insert. Appends are serialised as the administration log's are
(``store.db.serialize_appends``: SQLite's write lock, which a submission already holds, or
a transaction-scoped advisory lock on PostgreSQL), taken last, just before the commit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.cases import audit
from whistle.store import db
from whistle.store.models import AuditEvent, CaseRegistry, Concern
from whistle.store.prepared import Prepared, PreparedQuery

GENESIS = b"\x00" * 32
# PostgreSQL: the advisory lock that orders appends ("whsr" in ASCII; the administration
# log's is "whst").
_CHAIN_LOCK = 0x77687372
_BATCH = 5000


def _fields(seq: int, concern_id: str, created: dt.date) -> bytes:
    return json.dumps([seq, concern_id, created.isoformat()], separators=(",", ":"),
                      ensure_ascii=True).encode()


def link(prev: bytes, seq: int, concern_id: str, created: dt.date) -> bytes:
    """The hash of registry entry ``seq`` after the link ``prev``."""
    return crypto.chain_hash(prev, _fields(seq, concern_id, created))


_HEAD = PreparedQuery(select(CaseRegistry.seq, CaseRegistry.hash)
                      .order_by(CaseRegistry.seq.desc()).limit(1))
_INSERT = Prepared(insert(CaseRegistry))


def register(session: Session, case_ref: str, created: dt.date) -> None:
    """Append the creation of ``case_ref`` to the registry, in the caller's (submission's)
    transaction. Call it last before the commit: on PostgreSQL the lock it takes orders
    the submissions' appends until they commit."""
    db.serialize_appends(session, _CHAIN_LOCK)
    conn = session.connection()
    head = _HEAD.all(conn, {})
    seq, prev = (head[0][0], bytes(head[0][1])) if head else (0, GENESIS)
    _INSERT.run(conn, [{"seq": seq + 1, "concern_id": case_ref, "created": created,
                        "prev_hash": prev, "hash": link(prev, seq + 1, case_ref, created)}])


def head(session: Session) -> tuple[int, bytes]:
    """The registry's last link (seq, hash), or (0, GENESIS) while it is empty."""
    found = _HEAD.all(session.connection(), {})
    return (found[0][0], bytes(found[0][1])) if found else (0, GENESIS)


@dataclass(frozen=True)
class Chain:
    """What ``verify`` found: the entries checked, the first broken link (seq, reason), and
    the hash at each seq asked for (the heads the checkpoints recorded)."""

    entries: int
    broken: tuple[int, str] | None
    hashes: dict[int, bytes]


def verify(session: Session, wanted: set[int]) -> Chain:
    """Check the registry's chain, streaming it in batches, and note the hashes of the
    entries in ``wanted``."""
    prev, expected, checked = GENESIS, 1, 0
    found: dict[int, bytes] = {}
    rows = session.execute(select(CaseRegistry.seq, CaseRegistry.concern_id,
                                  CaseRegistry.created, CaseRegistry.prev_hash,
                                  CaseRegistry.hash)
                           .order_by(CaseRegistry.seq).execution_options(yield_per=_BATCH))
    for e in rows:
        fault = audit.link_fault(e, expected, prev, _fields(e.seq, e.concern_id, e.created))
        if fault:
            return Chain(checked, (e.seq, fault), found)
        if e.seq in wanted:
            found[e.seq] = bytes(e.hash)
        prev, expected, checked = e.hash, expected + 1, checked + 1
    return Chain(checked, None, found)


def missing_cases(session: Session) -> Iterator[tuple[int, str]]:
    """(seq, case reference) of every registry entry whose case row is gone."""
    present = select(Concern.id).where(Concern.id == CaseRegistry.concern_id).exists()
    yield from session.execute(select(CaseRegistry.seq, CaseRegistry.concern_id)
                               .where(~present).order_by(CaseRegistry.seq)).tuples()


def unregistered(session: Session) -> Iterator[str]:
    """Cases whose creation is not in the registry (a row inserted behind Whistle's back)."""
    entry = select(CaseRegistry.seq).where(CaseRegistry.concern_id == Concern.id).exists()
    yield from session.scalars(select(Concern.id).where(~entry).order_by(Concern.id))


def trailless(session: Session) -> Iterator[str]:
    """Cases without a single event in their trail (it was deleted whole)."""
    event = select(AuditEvent.seq).where(AuditEvent.concern_id == Concern.id).exists()
    yield from session.scalars(select(Concern.id).where(~event).order_by(Concern.id))
