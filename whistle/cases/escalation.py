"""Escalation with access (issue 19): no desk a concern can die on.

At submission the case keys are also wrapped for up to ``ESCALATION_REVIEWERS``
*escalation reviewers* (``routing.escalation_reviewers``): their copies are stored with
``recipient_kind = "escalation"`` but wrapped with the context of their own reviewer copy,
so that nothing shows the case to them (lists, counts, mail and statistics all go through
assignments or ``recipient_kind = "reviewer"``) until it escalates, and releasing a copy
is an ``UPDATE`` of that kind plus an assignment (``release``). That is Whistle's access
control, not cryptography: see docs/security.md.

When a deadline passes untouched, ``whistle.cases.deadlines`` escalates:

* **tier 1** (``tier_one``): the escalation reviewers who are still eligible are assigned,
  their copies released, and mailed; the trail gets ``escalated`` ``{"tier": 1}`` (the
  reporter's timeline shows it). With no one to release to, administrators are alerted.
* **tier 2** (``tier_two``), when nobody acted on the case (``ACTS``) within
  ``ESCALATION_DAYS`` after the last escalation step: every remaining eligible independent
  reviewer and every administrator who reviews is assigned, and administrators are
  alerted. The server holds no key that opens the case (the recovery key is offline), so
  each of them gets the keys from a withheld copy if one exists, and otherwise from the
  next key holder who reads the case (``hand_over``, which at tier 1 also makes withheld
  copies for the tier-2 people, so that tier 2 needs no key holder then).
* a later deadline passing once the case has escalated (``again``) tells the assigned
  reviewers (and administrators, at tier 2) and starts the wait for the next tier again.

Each tier happens once (``Concern.escalation_tier``). An excluded person is never
assigned and never mailed; the roster check (``whistle.keys.may_receive``) comes before
every release and every wrap.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from whistle import keys as instancekeys
from whistle import notify, routing
from whistle.cases import audit, notices, sharing, workflow
from whistle.cases import keys as casekeys
from whistle.config import Settings
from whistle.keys import InstanceKeys
from whistle.store.models import Assignment, AuditEvent, Concern, Reviewer, WrappedKey

ESCALATION = casekeys.ESCALATION
# Acting on a case: what stops the next tier (opening or downloading a file does not).
ACTS = frozenset(step.event for step in workflow.TRANSITIONS.values()) | {
    "reviewer_message", "note"}
# The steps the wait for the next tier counts from.
STEPS = ("escalated", "acknowledge_overdue", "feedback_overdue")


# -- the withheld copies ----------------------------------------------------------------


withheld = casekeys.withheld


def release(session: Session, concern: Concern, reviewer_id: str) -> bool:
    """Make a reviewer's withheld copy theirs and assign them the case (as a share does:
    the case's status, created day and overdue flag), in the caller's transaction. False,
    and nothing changed, when they hold no withheld copy."""
    mine = (WrappedKey.concern_id == concern.id, WrappedKey.recipient_kind == ESCALATION,
            WrappedKey.recipient_id == reviewer_id)
    if session.scalars(select(WrappedKey.key_kind).where(*mine).limit(1)).first() is None:
        return False
    session.execute(update(WrappedKey).where(*mine).values(recipient_kind="reviewer"))
    _assign(session, concern, reviewer_id)
    return True


def _assign(session: Session, concern: Concern, reviewer_id: str) -> None:
    if session.get(Assignment, (concern.id, reviewer_id)) is None:  # through the ORM: counts
        session.add(Assignment(concern_id=concern.id, reviewer_id=reviewer_id,
                               status=concern.status, created=concern.created,
                               overdue=concern.overdue))
        session.flush()


# -- who may be given the case ------------------------------------------------------------


def _eligible(session: Session, instance: InstanceKeys, concern: Concern,
              person: Reviewer, recused: set[str]) -> bool:
    """Active, reviewing, verified against the signed roster, not excluded by the reporter,
    not recused from the case, not a senior of its unit when it is about a senior person."""
    candidate = routing.Candidate(id=person.id, units=frozenset(json.loads(person.units or "[]")),
                                  senior=person.is_senior)
    need = routing.Need(concern.category, concern.unit, concern.about_senior)
    return (person.active and person.is_reviewer and person.id not in recused
            and instancekeys.may_receive(person, instance.signing_public)
            and not routing.senior_of_unit(need, candidate)
            and not sharing.is_excluded(session, instance, concern.id, person.id))


def _tier_two_people(session: Session, instance: InstanceKeys, concern: Concern
                     ) -> list[Reviewer]:
    """Every eligible independent reviewer and administrator who reviews."""
    recused = sharing.recused_from(session, concern.id)
    people = session.scalars(select(Reviewer).where(
        Reviewer.active.is_(True), Reviewer.is_reviewer.is_(True),
        Reviewer.is_independent.is_(True) | Reviewer.is_admin.is_(True)).order_by(Reviewer.id))
    return [p for p in people if _eligible(session, instance, concern, p, recused)]


def _assigned(session: Session, case_ref: str) -> set[str]:
    return set(session.scalars(select(Assignment.reviewer_id).where(
        Assignment.concern_id == case_ref)))


# -- mail, never to anyone excluded ----------------------------------------------------------


def tell(session: Session, instance: InstanceKeys, case_ref: str, people: list[Reviewer],
         template: str) -> int:
    """Queue ``template`` for each active person of ``people`` whom the reporter did not
    exclude from the case (checked for each mail); returns how many."""
    told = [p.email for p in people if p.active
            and not sharing.is_excluded(session, instance, case_ref, p.id)]
    notify.queue_many(session, told, template)
    return len(told)


# -- the tiers --------------------------------------------------------------------------------


def tier_one(session: Session, instance: InstanceKeys, concern: Concern, now: dt.datetime,
             deadline: str) -> list[str]:
    """Release the withheld copies of the escalation reviewers still eligible; returns who
    was given the case (caller's transaction)."""
    recused = sharing.recused_from(session, concern.id)
    assigned = _assigned(session, concern.id)
    given: list[Reviewer] = []
    for rid in withheld(session, concern.id):
        person = session.get(Reviewer, rid)
        if (person is not None and rid not in assigned
                and _eligible(session, instance, concern, person, recused)
                and release(session, concern, rid)):
            given.append(person)
    concern.escalation_tier, concern.escalated_on = 1, now.date()
    concern.handover_due = True  # a key holder's next reading prepares tier 2's copies
    mailed = tell(session, instance, concern.id, given, "escalation")
    admins = 0 if given else notices.alert_administrators(session, instance, concern.id)
    audit.record(session, concern.id, "escalated", "system", now, {
        "tier": 1, "deadline": deadline, "reviewers": [p.id for p in given],
        "reviewers_told": mailed, "administrators_told": admins})
    return [p.id for p in given]


def tier_two_due(session: Session, settings: Settings, concern: Concern,
                 today: dt.date) -> bool:
    """Tier 1 was reached, the case is still overdue, ``ESCALATION_DAYS`` full days have
    passed since the last escalation step, and nobody acted on the case since."""
    if concern.escalation_tier != 1 or not concern.overdue or concern.escalated_on is None:
        return False
    if today <= concern.escalated_on + dt.timedelta(days=settings.escalation_days):
        return False
    return not acted_since_escalation(session, concern.id)


def acted_since_escalation(session: Session, case_ref: str) -> bool:
    """Whether a reviewer acted on the case (``ACTS``) after its last escalation step
    (counted in the trail's order, not by the clock: ``deadlines --as-of`` runs ahead)."""
    last_step = select(func.max(AuditEvent.seq)).where(
        AuditEvent.concern_id == case_ref, AuditEvent.type.in_(STEPS)).scalar_subquery()
    return session.scalars(select(AuditEvent.seq).where(
        AuditEvent.concern_id == case_ref, AuditEvent.seq > func.coalesce(last_step, 0),
        AuditEvent.type.in_(sorted(ACTS))).limit(1)).first() is not None


def tier_two(session: Session, instance: InstanceKeys, concern: Concern,
             now: dt.datetime) -> list[str]:
    """Assign every remaining eligible independent reviewer and administrator who reviews,
    with their withheld copy where one exists; the others wait for a key holder
    (``hand_over``). Alerts administrators. Returns who was assigned (caller's
    transaction)."""
    assigned = _assigned(session, concern.id)
    joining = [p for p in _tier_two_people(session, instance, concern) if p.id not in assigned]
    with_keys, waiting = [], []
    for person in joining:
        if release(session, concern, person.id):
            with_keys.append(person.id)
        else:
            _assign(session, concern, person.id)
            waiting.append(person.id)
    concern.escalation_tier, concern.escalated_on = 2, now.date()
    concern.handover_due = bool(waiting)
    mailed = tell(session, instance, concern.id, joining, "escalation")
    admins = notices.alert_administrators(session, instance, concern.id)
    audit.record(session, concern.id, "escalated", "system", now, {
        "tier": 2, "reviewers": with_keys, "awaiting_keys": waiting,
        "reviewers_told": mailed, "administrators_told": admins})
    return [p.id for p in joining]


def again(session: Session, instance: InstanceKeys, concern: Concern, now: dt.datetime
          ) -> dict[str, Any]:
    """A later deadline passed on a case that already escalated: tell its reviewers (and
    the administrators, once every tier is reached) and start the wait for the next tier
    again. Returns what the deadline's event records."""
    concern.escalated_on = now.date()
    people = [a.reviewer for a in concern.assignments]
    told = tell(session, instance, concern.id, people, "escalation")
    admins = (notices.alert_administrators(session, instance, concern.id)
              if concern.escalation_tier >= 2 else 0)
    return {"tier": concern.escalation_tier, "reviewers_told": told,
            "administrators_told": admins}


# -- a key holder hands the keys over ------------------------------------------------------


def hand_over(session: Session, instance: InstanceKeys, case_ref: str,
              ck: casekeys.CaseKeys, actor: str, now: dt.datetime) -> int:
    """Wrap the case keys, which the reader's session just opened, for the escalation people
    who lack them, in a transaction of its own, and commit: at tier 1 withheld copies for
    the tier-2 people (released only at tier 2), at tier 2 the copies of those assigned
    without one. Returns how many copies were made; an ``escalation_keys`` event names
    them."""
    with Session(bind=session.get_bind(), expire_on_commit=False) as own:
        try:
            return _hand_over(own, instance, case_ref, ck, actor, now)
        except IntegrityError:  # another reader handed over at the same moment
            own.rollback()
            return 0


def _hand_over(own: Session, instance: InstanceKeys, case_ref: str, ck: casekeys.CaseKeys,
               actor: str, now: dt.datetime) -> int:
    concern = own.get(Concern, case_ref)
    if concern is None or not concern.handover_due:
        return 0
    assigned = _assigned(own, case_ref)
    held = set(own.execute(select(WrappedKey.recipient_kind, WrappedKey.recipient_id).where(
        WrappedKey.concern_id == case_ref,
        WrappedKey.recipient_kind.in_(("reviewer", ESCALATION)))).tuples().all())
    rows: list[dict[str, Any]] = []
    given: list[Reviewer] = []
    kept: list[str] = []
    for person in _tier_two_people(own, instance, concern):
        if ("reviewer", person.id) in held:
            continue
        if person.id in assigned and concern.escalation_tier >= 2:
            given.append(person)
            rows += casekeys.wrapped_rows(case_ref, ck, "reviewer", person.id,
                                          person.public_key)
        elif person.id not in assigned and (ESCALATION, person.id) not in held:
            kept.append(person.id)
            rows += casekeys.wrapped_rows(case_ref, ck, "reviewer", person.id,
                                          person.public_key, stored_as=ESCALATION)
    own.add_all([WrappedKey(**row) for row in rows])
    if rows:
        audit.record(own, case_ref, "escalation_keys", actor, now,
                     {"reviewers": [p.id for p in given], "withheld": kept})
    tell(own, instance, case_ref, given, "activity")  # the case opens for them now
    concern.handover_due = False
    own.commit()
    return len(rows)
