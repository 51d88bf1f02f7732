"""Who is told that something happened to a case: content-free mail to its active reviewers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import notify
from whistle.cases import keys as casekeys
from whistle.keys import InstanceKeys
from whistle.store.models import Concern, Exclusion, Reviewer


def tell_reviewers(session: Session, concern: Concern, kind: str = "activity",
                   besides: str | None = None) -> int:
    """Queue mail of ``kind`` for every active reviewer assigned to ``concern``, except the
    one whose id is ``besides`` (who did the thing). Returns how many were told."""
    told = 0
    for a in concern.assignments:
        if a.reviewer.active and a.reviewer_id != besides:
            notify.queue(session, a.reviewer.email, kind)
            told += 1
    return told


def excluded(session: Session, instance: InstanceKeys, case_ref: str, reviewer_id: str) -> bool:
    """Did the reporter exclude this person from the case? (Only a keyed tag is stored.)"""
    tag = casekeys.exclusion_tag(instance.index_pepper, case_ref, reviewer_id)
    return session.get(Exclusion, tag) is not None


def alert_administrators(session: Session, instance: InstanceKeys, case_ref: str) -> int:
    """Content-free mail to the active administrators, never to one the reporter excluded
    from the case. Returns how many were told."""
    told = [r.email for r in session.scalars(select(Reviewer).where(
        Reviewer.is_admin.is_(True), Reviewer.active.is_(True)).order_by(Reviewer.id))
        if not excluded(session, instance, case_ref, r.id)]
    notify.queue_many(session, told, "admin_attention")
    return len(told)
