"""The case workflow as policy: who may move a case where, and what it records.

    received -> acknowledged -> investigating -> closure_proposed -> closed
                                     ^                  |              |
                                     +---- rejected ----+   reopened --+

* Any assigned reviewer may acknowledge, start investigating, message the
  reporter or propose closure (with an outcome).
* No one closes alone: only a *different* assigned reviewer confirms a
  proposal (``closed``) or rejects it (back to ``investigating``), and only one
  assigned before the closure was proposed may confirm it (the proposer cannot
  bring their own confirmer by sharing the case).
* Reopening a closed case needs a written reason.
* Every change is an audit event; feedback for the reporter is sealed with
  the thread key, like a message.
* Feedback proposed with a closure waits, sealed, until the second reviewer
  confirms: two people agree on what the reporter is told, and a rejected
  proposal never reaches them.
* Deadlines: a ``received`` case owes acknowledgement by ``acknowledge_by``;
  every open case owes feedback by ``feedback_by`` (set at submission, moved on
  acknowledgement), whatever its state, until it is closed. A case past the
  deadline it owes is overdue (``deadlines`` escalates it: whistle.cases.escalation).

The moves are a table (``TRANSITIONS``), decided by ``decide`` from plain values, so that
the whole policy can be read in one place and checked without a database.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle import crypto
from whistle.errors import Refused
from whistle.cases import audit
from whistle.cases import keys as casekeys
from whistle.store.models import Assignment, AuditEvent, Concern, Message, new_id

RECEIVED = "received"
ACKNOWLEDGED = "acknowledged"
INVESTIGATING = "investigating"
CLOSURE_PROPOSED = "closure_proposed"
CLOSED = "closed"
STATUSES = (RECEIVED, ACKNOWLEDGED, INVESTIGATING, CLOSURE_PROPOSED, CLOSED)
OPEN_STATUSES = (RECEIVED, ACKNOWLEDGED, INVESTIGATING, CLOSURE_PROPOSED)
OUTCOMES = ("substantiated", "partially_substantiated", "not_substantiated", "referred",
            "withdrawn")
# What the reporter's timeline shows (types only, dates to the day).
REPORTER_EVENTS = frozenset({
    "received", "acknowledged", "investigating", "closure_proposed", "closure_rejected",
    "closed", "reopened", "reviewer_message", "reporter_message", "feedback",
    "acknowledge_overdue", "feedback_overdue", "token_replaced", "attachment_added",
    "escalated",
    "referred",  # to an outside agency (issue 23, whistle.cases.referrals)
    "matched", "released",  # a held concern sent on (issue 25, whistle.cases.escrow)
    "identity_added", "identity_released",  # issue 22, whistle.cases.identity_release
})


ACKNOWLEDGE = "acknowledge"
FEEDBACK = "feedback"
# Feedback held back until a closure proposal is confirmed (thread key, reviewers only).
PROPOSED_FEEDBACK = "draft_feedback"  # fits Message.kind (16)


def owed_deadline(concern: Concern) -> tuple[str, dt.date] | None:
    """The deadline the case currently owes the reporter: (kind, date), or None once closed."""
    return owed(concern.status, concern.acknowledge_by, concern.feedback_by)


def owed(status: str, acknowledge_by: dt.date, feedback_by: dt.date | None
         ) -> tuple[str, dt.date] | None:
    """``owed_deadline`` from the three columns it depends on."""
    if status == RECEIVED:
        return ACKNOWLEDGE, acknowledge_by
    if status in OPEN_STATUSES and feedback_by is not None:
        return FEEDBACK, feedback_by
    return None


def is_overdue(concern: Concern, today: dt.date) -> bool:
    owed = owed_deadline(concern)
    return owed is not None and today > owed[1]


class WorkflowError(Refused):
    """A move the workflow does not allow (409 unless said otherwise)."""


def add_message(session: Session, concern: Concern, thread_key: bytes, kind: str, sender: str,
                reviewer_id: str | None, body: str, today: dt.date) -> Message:
    seq = (session.scalar(select(func.max(Message.seq)).where(
        Message.concern_id == concern.id)) or 0) + 1
    msg = Message(id=new_id(), concern_id=concern.id, seq=seq, kind=kind, sender=sender,
                  reviewer_id=reviewer_id, created=today, body_ct=b"")
    msg.body_ct = crypto.seal(thread_key, body.encode(),
                              casekeys.part(concern.id, f"{kind}:{msg.id}"))
    session.add(msg)
    return msg


def pending_feedback_id(session: Session, concern_id: str) -> str | None:
    """The id of the feedback proposed with the latest closure proposal, if any."""
    event = session.scalars(select(AuditEvent).where(
        AuditEvent.concern_id == concern_id, AuditEvent.type == "closure_proposed")
        .order_by(AuditEvent.seq.desc()).limit(1)).first()
    if event is None:
        return None
    found: str | None = json.loads(event.data).get("feedback")
    return found


def _release_feedback(session: Session, concern: Concern, thread_key: bytes,
                      today: dt.date) -> Message | None:
    """On confirmation: re-seal the proposal's feedback as a message the reporter can read."""
    draft_id = pending_feedback_id(session, concern.id)
    draft = session.get(Message, draft_id) if draft_id else None
    if draft is None or draft.kind != PROPOSED_FEEDBACK:
        return None
    body = crypto.open_sealed(thread_key, draft.body_ct,
                              casekeys.part(concern.id, f"{draft.kind}:{draft.id}")).decode()
    return add_message(session, concern, thread_key, "feedback", "reviewer", draft.reviewer_id,
                       body, today)


def set_overdue(session: Session, concern: Concern, overdue: bool) -> None:
    """Mark the case overdue or not, with the copy its assignments keep for the inbox."""
    if concern.overdue == overdue:
        return
    concern.overdue = overdue
    # Through the ORM, so that the inbox counts (whistle.store.counts) see each change.
    for a in session.scalars(select(Assignment).where(Assignment.concern_id == concern.id)):
        a.overdue = overdue


def _set_status(session: Session, concern: Concern, status: str) -> None:
    concern.status = status
    for a in session.scalars(select(Assignment).where(Assignment.concern_id == concern.id)):
        a.status = status


# -- the policy: a table of moves -------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    """All a guard may consult, as plain values, so that the policy can be decided (and
    tested) without a database, a session or keys."""

    actor_id: str
    proposed_by: str | None = None
    note: str | None = None
    outcome: object = None  # unchecked input: the guard that needs one checks it
    # Who was assigned when the pending closure was proposed (``assigned_at_proposal``).
    # ``transition`` always gives it for a proposed closure; None only in pure tests of the
    # other guards, where it is not consulted.
    assigned_before: frozenset[str] | None = None


@dataclass
class Move:
    """One move being applied: what a step function changes, and the audit event's data it
    adds to (``data`` starts with ``from``)."""

    session: Session
    concern: Concern
    actor_id: str
    keys: casekeys.CaseKeys
    settings: Settings
    today: dt.date
    outcome: str | None
    data: dict[str, Any]


Guard = Callable[[Ask], None]
Effect = Callable[[Move], None]


@dataclass(frozen=True)
class Step:
    """One allowed move. ``guard`` raises the WorkflowError that refuses it, before anything
    changes; ``effect`` is all it changes besides the status, the texts and the event."""

    status: str
    event: str
    guard: Guard
    effect: Effect


def _anyone(ask: Ask) -> None:
    """Any assigned reviewer: being assigned is checked before the workflow is asked."""


def _not_the_proposer(message: str) -> Guard:
    """No one closes alone: confirming or rejecting a proposal is for someone else."""

    def guard(ask: Ask) -> None:
        if ask.proposed_by == ask.actor_id:
            raise WorkflowError("second_reviewer_required", message)

    return guard


def _a_reviewer_the_proposer_did_not_bring(message: str) -> Guard:
    """Closure is confirmed by someone the proposer did not bring: not the proposer, and
    only a reviewer already assigned when the closure was proposed (a reviewer shared in
    afterwards may have been chosen for the purpose)."""
    not_the_proposer = _not_the_proposer(message)

    def guard(ask: Ask) -> None:
        not_the_proposer(ask)
        if ask.assigned_before is not None and ask.actor_id not in ask.assigned_before:
            raise WorkflowError("second_reviewer_required",
                                "only a reviewer assigned before the closure was proposed "
                                "may confirm it")

    return guard


def _with_a_reason(ask: Ask) -> None:
    """A closed case is reopened only for a reason the next reviewer can read."""
    if not ask.note:
        raise WorkflowError("reason_required", "reopening a case needs a written reason", 400)


def _with_an_outcome(ask: Ask) -> None:
    """The second reviewer confirms a stated outcome, never a blank one."""
    if ask.outcome not in OUTCOMES:
        raise WorkflowError("outcome_required",
                            "proposing closure needs an outcome: " + ", ".join(OUTCOMES), 400)


def _start_feedback_clock(move: Move) -> None:
    """Acknowledging moves the deadline for the feedback the reporter is owed (owed from
    submission: received + the acknowledgement window + the feedback window) to
    acknowledged + the feedback window. A moved deadline gets its own reminder and its own
    escalation (whistle.cases.deadlines)."""
    concern = move.concern
    concern.acknowledged_on = move.today
    concern.feedback_by = move.today + dt.timedelta(days=move.settings.feedback_deadline_days)
    concern.reminded_feedback = concern.escalated_feedback = False


def _start_investigating(move: Move) -> None:
    """Investigating without acknowledging first still acknowledges (the reporter is owed
    feedback either way); an earlier acknowledgement keeps its clock."""
    if move.concern.acknowledged_on is None:
        _start_feedback_clock(move)


def _propose_closure(move: Move) -> None:
    """Kept on the case until a second reviewer confirms or rejects it."""
    move.concern.proposed_by, move.concern.proposed_outcome = move.actor_id, move.outcome
    move.data["outcome"] = move.outcome


def _reject_proposal(move: Move) -> None:
    """The trail keeps whose proposal was turned down; the case forgets it."""
    move.data["proposed_by"] = move.concern.proposed_by
    move.concern.proposed_by = move.concern.proposed_outcome = None


def _confirm_closure(move: Move) -> None:
    """The agreed outcome becomes the case's, and the feedback proposed with it goes out."""
    concern = move.concern
    move.data["proposed_by"] = concern.proposed_by
    concern.outcome, concern.closed_on = concern.proposed_outcome, move.today
    move.data["outcome"] = concern.outcome
    released = _release_feedback(move.session, concern, move.keys.thread, move.today)
    if released is not None:
        move.data["released_feedback"] = released.id


def _reopen(move: Move) -> None:
    """A reopened case is open again: no outcome, no closing date, no proposal pending."""
    concern = move.concern
    concern.closed_on = concern.outcome = None
    concern.proposed_by = concern.proposed_outcome = None


_INVESTIGATE = Step(INVESTIGATING, "investigating", _anyone, _start_investigating)
_PROPOSE = Step(CLOSURE_PROPOSED, "closure_proposed", _with_an_outcome, _propose_closure)

# (current status, requested status) -> Step. A reviewer asks for ``closed`` both to propose
# and to confirm, and for ``investigating`` both to reject a proposal and to reopen.
TRANSITIONS: Mapping[tuple[str, str], Step] = MappingProxyType({
    (RECEIVED, ACKNOWLEDGED): Step(ACKNOWLEDGED, "acknowledged", _anyone,
                                   _start_feedback_clock),
    (RECEIVED, INVESTIGATING): _INVESTIGATE,
    (ACKNOWLEDGED, INVESTIGATING): _INVESTIGATE,
    (CLOSURE_PROPOSED, INVESTIGATING): Step(
        INVESTIGATING, "closure_rejected",
        _not_the_proposer("another assigned reviewer must reject or confirm the proposal"),
        _reject_proposal),
    (CLOSED, INVESTIGATING): Step(INVESTIGATING, "reopened", _with_a_reason, _reopen),
    (RECEIVED, CLOSED): _PROPOSE,
    (ACKNOWLEDGED, CLOSED): _PROPOSE,
    (INVESTIGATING, CLOSED): _PROPOSE,
    (CLOSURE_PROPOSED, CLOSED): Step(
        CLOSED, "closed",
        _a_reviewer_the_proposer_did_not_bring(
            "a different assigned reviewer must confirm the closure"),
        _confirm_closure),
})
# What a reviewer may ask for; anything else is not a move at all (400, not 409).
_TARGETS = frozenset(to for _, to in TRANSITIONS)


# Trail events that give reviewers the case, and where their data names them; ``recused``
# also takes the case from its actor. (``escalated`` names those it assigned with keys under
# ``reviewers`` and those assigned to wait for a key holder under ``awaiting_keys``.)
ASSIGNING_EVENTS = frozenset({"assigned", "shared", "share_approved", "escalated", "recused"})
_NAMED_BY = ("reviewer", "reviewers", "replacements", "awaiting_keys")


def assigned_at_proposal(events: Iterable[tuple[str, str, Mapping[str, Any]]]
                         ) -> frozenset[str]:
    """Who was assigned when the latest closure was proposed, from the case's trail as
    (type, actor, data) in order; empty if no closure was proposed (nobody may confirm)."""
    assigned: set[str] = set()
    at_proposal: frozenset[str] = frozenset()
    for type_, actor, data in events:
        if type_ == "closure_proposed":
            at_proposal = frozenset(assigned)
        elif type_ in ASSIGNING_EVENTS:
            if type_ == "recused":
                assigned.discard(actor)
            for key in _NAMED_BY:
                named = data.get(key)
                if isinstance(named, str):
                    assigned.add(named)
                elif isinstance(named, list):
                    assigned.update(x for x in named if isinstance(x, str))
    return at_proposal


_ASSIGNING_TRAIL = select(AuditEvent.type, AuditEvent.actor, AuditEvent.data).where(
    AuditEvent.concern_id == bindparam("cid"),
    AuditEvent.type.in_(sorted(ASSIGNING_EVENTS | {"closure_proposed"}))).order_by(AuditEvent.seq)


def _assigned_before(session: Session, concern: Concern) -> frozenset[str] | None:
    if concern.status != CLOSURE_PROPOSED:
        return None
    rows = session.execute(_ASSIGNING_TRAIL, {"cid": concern.id}).tuples().all()
    return assigned_at_proposal((t, a, json.loads(d)) for t, a, d in rows)


def decide(current: str, to: object, ask: Ask) -> Step:
    """The policy alone, apart from what applying it touches: every refusal is raised here,
    so a refused move changes nothing."""
    if not isinstance(to, str) or to not in _TARGETS:
        raise WorkflowError("invalid_transition", f"unknown status {to!r}", 400)
    step = TRANSITIONS.get((current, to))
    if step is None:
        if to == ACKNOWLEDGED:
            raise WorkflowError("invalid_transition",
                                f"cannot acknowledge a case that is {current}")
        raise WorkflowError("invalid_transition", f"the case is already {current}")
    step.guard(ask)
    return step


def transition(session: Session, concern: Concern, actor_id: str, to: str,
               keys: casekeys.CaseKeys, settings: Settings, now: dt.datetime,
               note: str | None = None, outcome: str | None = None,
               feedback: str | None = None) -> str:
    """Apply one requested move; returns the new status or raises WorkflowError. Decided
    first, so a refused move leaves the case and its trail untouched."""
    step = decide(concern.status, to, Ask(actor_id, concern.proposed_by, note, outcome,
                                          _assigned_before(session, concern)))
    today = now.date()
    move = Move(session, concern, actor_id, keys, settings, today, outcome,
                {"from": concern.status})
    step.effect(move)
    _set_status(session, concern, step.status)
    if concern.overdue and not is_overdue(concern, today):
        set_overdue(session, concern, False)  # the owed step was taken; the trail keeps it
    if note:
        move.data["note"] = add_message(session, concern, keys.case, "note", "reviewer",
                                        actor_id, note, today).id
    if feedback:
        # With a proposal the feedback waits for the second reviewer; otherwise it goes now.
        kind = PROPOSED_FEEDBACK if step.status == CLOSURE_PROPOSED else "feedback"
        move.data["feedback"] = add_message(session, concern, keys.thread, kind, "reviewer",
                                            actor_id, feedback, today).id
    audit.record(session, concern.id, step.event, actor_id, now, move.data)
    return step.status
