"""Who is told that something happened to a case: content-free mail to its active reviewers."""

from __future__ import annotations

from sqlalchemy.orm import Session

from whistle import notify
from whistle.store.models import Concern


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
