"""``audit verify``: every case chain, the registry, the signed checkpoints, and what the
trails say against what the case rows say.

One pass over every case's trail (``audit.chains``, streamed in batches), a few hundred
cases at a time, each batch with three lookups (their case rows, the heads the checkpoints
recorded for them, their messages). For each case:

* its hash chain holds (``audit.chain_fault``);
* every head a checkpoint recorded is still a link of the trail: the trail is not shorter
  (a cut tail) and the event there is the one recorded (an edited or rewritten trail);
* its ``status``, ``outcome``, ``proposed_outcome`` and ``proposed_by`` are what its events
  imply, replaying the workflow's moves (``workflow.TRANSITIONS``: which event each move
  records and the status it leads to), and the moves follow one another as the workflow
  allows (a closure confirmed by someone else, with the outcome proposed);
* each message an event records (``message``, ``note``, ``feedback``, ``released_feedback``
  in the event's data) exists, and its ``sender`` and ``reviewer_id`` are the event's
  actor (the reporter, or that reviewer).

Around the pass: the checkpoints' chain and signatures, the heads they recorded
(whistle.cases.checkpoints), and the registry (whistle.cases.registry): a registered case
whose row is gone, a case that is not registered, a case without any trail, and recorded
heads of a trail that is gone are each named.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from whistle.cases import audit, checkpoints, registry, workflow
from whistle.cases.checkpoints import Finding
from whistle.store import db
from whistle.store.models import AuditEvent, CheckpointHead, Concern, Message

KEEP = 200  # findings kept for the report; the rest are counted
_CASES_PER_BATCH = 400

# The status each event leaves a case in: the workflow's moves, and the submission.
_STATUS_AFTER: dict[str, str] = {"received": workflow.RECEIVED} | {
    step.event: step.status for step in workflow.TRANSITIONS.values()}


def _moves_from() -> dict[str, frozenset[str]]:
    """The statuses each move (by the event it records) may start from."""
    found: dict[str, set[str]] = defaultdict(set)
    for (current, _to), step in workflow.TRANSITIONS.items():
        found[step.event].add(current)
    return {event: frozenset(statuses) for event, statuses in found.items()}


_MOVES_FROM = _moves_from()
_MESSAGE_KEYS = ("message", "note", "feedback")
_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Report:
    events: int = 0
    cases: int = 0
    registry: int = 0
    checkpoints: int = 0
    latest: tuple[int, dt.datetime] | None = None
    findings: list[Finding] = field(default_factory=list)
    more: int = 0  # findings beyond KEEP

    def add(self, found: Finding | list[Finding] | Iterator[Finding]) -> None:
        for f in [found] if isinstance(found, Finding) else found:
            if len(self.findings) < KEEP:
                self.findings.append(f)
            else:
                self.more += 1


def check(session: Session, signing_public: bytes) -> Report:
    """Everything ``audit verify`` checks of the cases, in one read snapshot."""
    db.one_snapshot(session)
    report = Report()
    cover = checkpoints.verify_chain(session, signing_public)
    report.checkpoints, report.latest = cover.checkpoints, cover.latest
    report.add(cover.findings)
    report.registry, covered = checkpoints.check_covered(session, cover)
    report.add(covered)
    report.add(Finding(f"case {cid}", f"created (registry entry {seq}), but its case row is "
                                      "gone: the case was deleted")
               for seq, cid in registry.missing_cases(session))
    report.add(Finding(f"case {cid}", "not in the registry of cases: the row was not made "
                                      "by a submission") for cid in registry.unregistered(session))
    report.add(Finding(f"case {cid}", "its trail is gone: the case has no event")
               for cid in registry.trailless(session))
    report.add(Finding(f"case {cid}", f"checkpoint {cp} recorded its trail up to event {seq}; "
                                      "the trail is gone")
               for cid, seq, cp in session.execute(_HEADS_WITHOUT_TRAIL).tuples())
    pending: list[tuple[str, list[Any]]] = []
    for case in audit.chains(session):
        pending.append(case)
        if len(pending) >= _CASES_PER_BATCH:
            _check_batch(session, pending, report)
            pending = []
    _check_batch(session, pending, report)
    session.rollback()  # only read
    return report


_HEADS_WITHOUT_TRAIL = (
    select(CheckpointHead.concern_id, func.max(CheckpointHead.seq),
           func.max(CheckpointHead.checkpoint))
    .where(~select(AuditEvent.seq).where(AuditEvent.concern_id == CheckpointHead.concern_id)
           .exists())
    .group_by(CheckpointHead.concern_id))
_IDS: Any = bindparam("ids", expanding=True)
_CONCERNS = select(Concern.id, Concern.status, Concern.outcome, Concern.proposed_outcome,
                   Concern.proposed_by).where(Concern.id.in_(_IDS))
_RECORDED = select(CheckpointHead.concern_id, CheckpointHead.seq, CheckpointHead.hash,
                   CheckpointHead.checkpoint).where(CheckpointHead.concern_id.in_(_IDS))
_MESSAGES = select(Message.id, Message.concern_id, Message.sender, Message.reviewer_id
                   ).where(Message.concern_id.in_(_IDS))


def _check_batch(session: Session, pending: list[tuple[str, list[Any]]], report: Report
                 ) -> None:
    if not pending:
        return
    ids = {"ids": [cid for cid, _ in pending]}
    concerns = {r.id: r for r in session.execute(_CONCERNS, ids)}
    recorded: dict[str, list[Any]] = defaultdict(list)
    for r in session.execute(_RECORDED, ids):
        recorded[r.concern_id].append(r)
    messages = {r.id: r for r in session.execute(_MESSAGES, ids)}
    for cid, events in pending:
        good, broken = audit.chain_fault(events)
        report.events += good
        report.cases += 1
        if broken:
            report.add(Finding(f"case {cid} event {broken.seq}", broken.reason))
        if cid in recorded:
            report.add(_head_faults(cid, events, recorded[cid]))
        # Only the events these checks read, their data parsed: moves and messages.
        read = [(e.seq, e.type, e.actor, _data(e.data)) for e in events
                if e.type in _STATUS_AFTER or 'message"' in e.data or 'note"' in e.data
                or 'feedback"' in e.data]
        report.add(_state_faults(cid, read, concerns.get(cid)))
        if not any(e.type == "retention_ended" for e in events):  # deleted: a tombstone
            report.add(_message_faults(cid, read, messages))


def _data(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _head_faults(cid: str, events: list[Any], recorded: list[Any]) -> Iterator[Finding]:
    """Every head a checkpoint recorded must still be a link of the trail."""
    hashes = {e.seq: bytes(e.hash) for e in events}
    last = max(hashes)
    for r in sorted(recorded, key=lambda r: r.seq):
        if r.seq not in hashes:
            yield Finding(f"case {cid}", f"the trail ends at event {last}, but checkpoint "
                                         f"{r.checkpoint} recorded event {r.seq}: events "
                                         "were deleted")
        elif hashes[r.seq] != bytes(r.hash):
            yield Finding(f"case {cid}", f"event {r.seq} is not the one checkpoint "
                                         f"{r.checkpoint} recorded: the trail was rewritten")


@dataclass
class Replayed:
    """A case's state as its trail tells it."""

    status: str | None = None
    outcome: str | None = None
    proposed_outcome: str | None = None
    proposed_by: str | None = None
    faults: list[str] = field(default_factory=list)


def replay(events: list[tuple[int, str, str, dict[str, Any]]]) -> Replayed:
    """Replay the status changes of a trail given as (seq, type, actor, data)."""
    r = Replayed()
    for seq, type_, actor, data in events:
        status = _STATUS_AFTER.get(type_)
        if status is None:
            continue
        if type_ == "received" and r.status is not None or \
                type_ != "received" and r.status not in _MOVES_FROM.get(type_, ()):
            r.faults.append(f"event {seq} ({type_}) is not a move from {r.status}")
        if type_ == "closure_proposed":
            r.proposed_outcome, r.proposed_by = data.get("outcome"), actor
        elif type_ == "closed":
            if (data.get("outcome"), data.get("proposed_by")) != (r.proposed_outcome,
                                                                   r.proposed_by):
                r.faults.append(f"event {seq} closes with an outcome or proposer other than "
                                "the proposal's")
            if actor == r.proposed_by:
                r.faults.append(f"event {seq}: closed by the reviewer who proposed it")
            r.outcome = data.get("outcome")
        elif type_ in ("closure_rejected", "reopened"):
            r.proposed_outcome = r.proposed_by = None
            if type_ == "reopened":
                r.outcome = None
        r.status = status
    return r


def _state_faults(cid: str, events: list[tuple[int, str, str, dict[str, Any]]],
                  concern: Any) -> Iterator[Finding]:
    subject = f"case {cid}"
    if concern is None:
        yield Finding(subject, "its trail is there, but its case row is gone")
        return
    r = replay(events)
    for fault in r.faults:
        yield Finding(subject, fault)
    for name in ("status", "outcome", "proposed_outcome", "proposed_by"):
        stored, told = getattr(concern, name), getattr(r, name)
        if stored != told:
            yield Finding(subject, f"{name} is {stored!r}, but its trail says {told!r}")


def _refs(type_: str, actor: str, data: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    """(message id, who wrote it) of each message an event records."""
    for key in _MESSAGE_KEYS:
        value = data.get(key)
        if isinstance(value, str) and _MESSAGE_ID.fullmatch(value):
            yield value, actor
    released = data.get("released_feedback")
    if isinstance(released, str) and _MESSAGE_ID.fullmatch(released):
        # The proposal's feedback, sent on confirmation: written by the proposer.
        proposer = data.get("proposed_by")
        yield released, proposer if isinstance(proposer, str) else None


def _message_faults(cid: str, events: list[tuple[int, str, str, dict[str, Any]]],
                    messages: dict[str, Any]) -> Iterator[Finding]:
    subject = f"case {cid}"
    for seq, type_, actor, data in events:
        for mid, writer in _refs(type_, actor, data) if data else ():
            msg = messages.get(mid)
            if msg is None or msg.concern_id != cid:
                yield Finding(subject, f"message {mid}, recorded by event {seq}, is gone")
                continue
            sender = "reporter" if writer == "reporter" else "reviewer"
            if msg.sender != sender:
                yield Finding(subject, f"message {mid} says it is from the {msg.sender}, but "
                                       f"event {seq} ({type_}) records it from the {sender}")
            elif writer is not None and msg.reviewer_id != (None if sender == "reporter"
                                                             else writer):
                yield Finding(subject, f"message {mid} is attributed to {msg.reviewer_id}, but "
                                       f"event {seq} ({type_}) records {writer}")
