"""The trail's format and checks one by one (whistle.cases.audit): the exact bytes each link
hashes (an outside verifier rebuilds them from docs: the format is a promise), how events are
stored, where a chain continues, and what ``verify`` reports at a break. The tampering itself is
replayed in test_audit_checkpoints.py and test_workflow.py; these pin the details mutation
testing found unchecked (scripts/mutate)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from types import SimpleNamespace
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from tests.support.factories import make_reviewer, submit_concern
from whistle.cases import audit
from whistle.store import db
from whistle.store.models import AuditEvent

AT = dt.datetime(2026, 12, 1, 9, 30, 15, 123456)


def test_a_link_hashes_the_documented_bytes() -> None:
    """The record is compact JSON, ASCII only, of [case, seq, time to the second, type, actor,
    data]; the link is SHA-256 over a label, the previous hash and the record."""
    data = json.dumps({"b": "\u00e9", "a": 1}, sort_keys=True)
    record = audit._fields("WH-A", 3, AT.replace(microsecond=0), "note", "r1", data)
    assert record == (b'["WH-A",3,"2026-12-01T09:30:15","note","r1",'
                      b'"{\\"a\\": 1, \\"b\\": \\"\\\\u00e9\\"}"]')
    previous = bytes(range(32))
    expected = hashlib.sha256(b"whistle:1:chain:" + previous + record).digest()
    event = SimpleNamespace(concern_id="WH-A", seq=3, at=AT.replace(microsecond=0), type="note",
                            actor="r1", data=data)
    assert audit._record(event) == record
    assert audit.crypto.chain_hash(previous, record) == expected
    # ASCII only, whatever a field holds.
    assert audit._fields("WH-A", 1, AT.replace(microsecond=0), "note", "r\u00e9", "{}") == (
        b'["WH-A",1,"2026-12-01T09:30:15","note","r\\u00e9","{}"]')


def events_of(app: Flask, case_ref: str) -> list[AuditEvent]:
    with db.new_session(app) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.concern_id == case_ref)
                              .order_by(AuditEvent.seq)))


def test_recorded_events_keep_the_second_and_sorted_data_and_continue_the_chain(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    case_ref = submit_concern(client)["case_ref"]
    before = events_of(app, case_ref)
    with db.new_session(app) as s:
        one = audit.record(s, case_ref, "note_added", "r1", AT, {"b": 2, "a": 1})
        audit.record_many(s, case_ref, [("viewed", "r2", AT, {"z": 0, "y": 1}),
                                        ("viewed", "r3", AT, None)],
                          after=(one.seq, one.hash))
        s.commit()
    after = events_of(app, case_ref)
    added = after[len(before):]
    assert [e.seq for e in added] == [len(before) + 1, len(before) + 2, len(before) + 3]
    assert {e.at for e in added} == {AT.replace(microsecond=0)}
    assert [e.data for e in added] == ['{"a": 1, "b": 2}', '{"y": 1, "z": 0}', "{}"]
    assert added[0].prev_hash == before[-1].hash  # read back: no ``after`` was given
    for prev, e in zip(after, after[1:], strict=False):
        assert e.prev_hash == prev.hash
        assert e.hash == audit.crypto.chain_hash(prev.hash, audit._record(e))
    with db.new_session(app) as s:
        assert audit.verify(s) == (sum(len(events_of(app, c)) for c in {case_ref}), None)


def test_a_trail_emptied_starts_again_from_the_first_link(app: Flask,
                                                          client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    case_ref = submit_concern(client)["case_ref"]
    with db.new_session(app) as s:
        s.execute(delete(AuditEvent).where(AuditEvent.concern_id == case_ref))
        first = audit.record(s, case_ref, "received", "reporter", AT)
        s.commit()
        assert (first.seq, first.prev_hash) == (1, audit.GENESIS)
        assert audit.trail(s, case_ref)[0].hash == first.hash


def link(case: str, seq: int, prev: bytes, type_: str = "note") -> Any:
    row = SimpleNamespace(concern_id=case, seq=seq, at=AT.replace(microsecond=0), type=type_,
                          actor="r", data="{}", prev_hash=prev, hash=b"")
    row.hash = audit.crypto.chain_hash(prev, audit._record(row))
    return row


def chain(case: str, n: int) -> list[Any]:
    rows, prev = [], audit.GENESIS
    for seq in range(1, n + 1):
        rows.append(link(case, seq, prev))
        prev = rows[-1].hash
    return rows


def test_a_break_is_reported_with_the_links_that_held_and_the_reason() -> None:
    good = chain("WH-A", 5)
    assert audit.chain_fault(good) == (5, None)
    skipped = good[:2] + good[3:]
    assert audit.chain_fault(skipped) == (2, audit.Break("WH-A", 4, "expected event 3"))
    relinked = good[:3] + [link("WH-A", 4, b"\x01" * 32)] + good[4:]
    assert audit.chain_fault(relinked) == (
        3, audit.Break("WH-A", 4, "previous-hash link broken"))
    altered = [*good]
    altered[1] = SimpleNamespace(**{**vars(good[1]), "type": "other"})
    assert audit.chain_fault(altered) == (1, audit.Break("WH-A", 2, "event altered"))
    assert audit.link_fault(good[0], 1, audit.GENESIS, audit._record(good[0])) is None
