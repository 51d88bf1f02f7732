"""Recusal: a reviewer with a conflict of interest steps off a case, and the case never
drops below ``MIN_REVIEWERS`` readers for it.

In one transaction: the replacement is chosen by the routing rules (exclusions and
earlier recusals respected, the case's escalation reviewers first); the case keys are
unwrapped in the recusing reviewer's own session and wrapped for the replacement; only
then are the recusing reviewer's copies of the keys and their assignment deleted, so they
lose access at once. The reason is sealed like an internal note (the other reviewers read
it); the trail's ``recused`` event names the note and the replacements, never the text.

A replacement is needed when the readers left would be fewer than ``MIN_REVIEWERS`` (or
than before, for a case that already had fewer); when none is eligible the recusal is
refused with 409 ``no_replacement``, nothing changes, and the administrators who are not
excluded from the case get a content-free alert.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from whistle import keys as instancekeys
from whistle import notify, routing
from whistle.cases import audit, identity_release, notices, proposals, sharing, workflow
from whistle.cases import keys as casekeys
from whistle.cases.reading import Reader, case_keys
from whistle.config import Settings
from whistle.errors import Refused
from whistle.keys import InstanceKeys
from whistle.store.models import Assignment, Concern, Reviewer, WrappedKey, utcnow


class NoReplacement(Refused):
    def __init__(self) -> None:
        super().__init__("no_replacement", "no eligible reviewer can replace you on this "
                         "case: nothing was changed, and the administrators were alerted")


def readers(session: Session, case_ref: str) -> set[str]:
    """The active reviewers assigned to the case who hold its keys (who can read it)."""
    return set(session.scalars(select(Assignment.reviewer_id).join(Reviewer).where(
        Assignment.concern_id == case_ref, Reviewer.active.is_(True),
        select(WrappedKey.key_kind).where(
            WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == "reviewer",
            WrappedKey.recipient_id == Assignment.reviewer_id).exists())))


def _candidate(r: Reviewer, load: int) -> routing.Candidate:
    return routing.Candidate(
        id=r.id, units=frozenset(json.loads(r.units or "[]")),
        categories=frozenset(json.loads(r.categories or "[]")), independent=r.is_independent,
        open_load=load, admin=r.is_admin, senior=r.is_senior)


def _candidates(session: Session, instance: InstanceKeys, concern: Concern, staying: set[str]
                ) -> tuple[list[routing.Candidate], list[routing.Candidate]]:
    """(those staying, those who could join): who could join is active, verified against
    the signed roster, not assigned, not excluded by the reporter, not recused from it."""
    loads = dict(session.execute(select(Assignment.reviewer_id, func.count()).where(
        Assignment.status != workflow.CLOSED).group_by(Assignment.reviewer_id)).tuples().all())
    assigned = set(session.scalars(select(Assignment.reviewer_id).where(
        Assignment.concern_id == concern.id)))
    recused = sharing.recused_from(session, concern.id)
    kept, others = [], []
    for r in session.scalars(select(Reviewer).where(
            Reviewer.active.is_(True), Reviewer.is_reviewer.is_(True)).order_by(Reviewer.id)):
        if r.id in staying:
            kept.append(_candidate(r, loads.get(r.id, 0)))
        elif (r.id not in assigned and r.id not in recused
              and instancekeys.may_receive(r, instance.signing_public)
              and not sharing.is_excluded(session, instance, concern.id, r.id)):
            others.append(_candidate(r, loads.get(r.id, 0)))
    return kept, others


def recuse(session: Session, signed: Reader, instance: InstanceKeys, settings: Settings,
           case_ref: Any, reason: Any, now: dt.datetime | None = None) -> list[Reviewer]:
    """Step off a case for a conflict of interest; returns the replacements. Commits, also
    when refused for want of a replacement (only the administrators' alert is stored)."""
    from whistle import validation

    text = validation.text(reason, "reason", settings.max_details_chars, required=True) or ""
    concern, ck = case_keys(session, signed, case_ref)  # 404 unless theirs; their session
    me, now = signed.reviewer_id, now or utcnow()
    before = readers(session, concern.id) | {me}
    staying = before - {me}
    needed = max(0, min(settings.min_reviewers, len(before)) - len(staying))
    wanted = max(0, settings.min_reviewers - len(staying))
    kept, others = _candidates(session, instance, concern, staying)
    picked = routing.replacements(
        routing.Need(concern.category, concern.unit, concern.about_senior), kept, others,
        wanted, frozenset(casekeys.withheld(session, concern.id)))
    if len(picked) < needed:
        notices.alert_administrators(session, instance, concern.id)
        session.commit()
        raise NoReplacement()
    was_under_routed = concern.under_routed
    joined = [sharing.add_to_case(session, instance, concern, ck, rid, me, now,
                                  settings.min_reviewers, event="assigned",
                                  data={"replacing": me}) for rid in picked]
    _withdraw_shares(session, concern.id, me, set(picked), now)
    identity_release.leaving(session, concern.id, me, now)  # their identity share (22)
    _leave(session, concern.id, me)
    note = workflow.add_message(session, concern, ck.case, "note", "reviewer", me, text,
                                now.date())
    audit.record(session, concern.id, "recused", me, now,
                 {"note": note.id, "replacements": picked})
    concern.under_routed = was_under_routed and \
        len(staying) + len(picked) < settings.min_reviewers
    notify.queue_many(session, list(session.scalars(select(Reviewer.email).where(
        Reviewer.id.in_(sorted(staying))))), "activity")
    session.commit()
    return joined


def _withdraw_shares(session: Session, case_ref: str, me: str, picked: set[str],
                     now: dt.datetime) -> None:
    """Shares the recusing reviewer proposed do not outlive their conflict; shares with a
    replacement are moot (they have the case now)."""
    for change in sharing.pending_shares(session, case_ref):
        if change.proposed_by == me or proposals.payload(change).get("reviewer") in picked:
            sharing.end_share(session, change, me, now, withdrawn=True)


def _leave(session: Session, case_ref: str, me: str) -> None:
    """Delete the reviewer's copies of the case keys and their assignment (through the ORM,
    so that the inbox counts see it)."""
    session.execute(delete(WrappedKey).where(
        WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == "reviewer",
        WrappedKey.recipient_id == me))
    assignment = session.get(Assignment, (case_ref, me))
    if assignment is not None:
        session.delete(assignment)
