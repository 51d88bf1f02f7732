"""What happened on a case since a reviewer last opened it: the inbox's new-activity markers.

Opening a case page records how far into the case's trail the reviewer had seen (the last
event's ``seq``, in ``case_seen``). The inbox then asks, for the cases of one page only,
which events came after that and were not the reviewer's own: a reporter's reply or file,
a co-reviewer's message or note, a status change, an escalation. Sequence numbers, not
times: reporter-side events carry the day only, so a reply sent later on the day a reviewer
opened the case would otherwise look older than their visit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from whistle.store.models import AuditEvent, CaseSeen

# Events that are not news to anyone: reading, downloading, key bookkeeping, reminders.
QUIET = frozenset({"opened", "attachment_downloaded", "escalation_keys", "deadline_reminder",
                   "rewrapped", "assigned"})


def mark_seen(session: Session, case_ref: str, reviewer_id: str) -> None:
    """The reviewer has now seen everything in the case's trail (caller reads the case
    first). Commits; a concurrent opening that got there first is as good as this one."""
    last = session.scalar(select(func.max(AuditEvent.seq)).where(
        AuditEvent.concern_id == case_ref))
    if last is None:
        return
    row = session.get(CaseSeen, (case_ref, reviewer_id))
    if row is not None and row.seq >= last:
        return
    if row is None:
        session.add(CaseSeen(concern_id=case_ref, reviewer_id=reviewer_id, seq=last))
    else:
        row.seq = last
    try:
        session.commit()
    except IntegrityError:
        session.rollback()


def since_seen(session: Session, reviewer_id: str, case_refs: Sequence[str]
               ) -> dict[str, dict[str, Any]]:
    """For each of ``case_refs`` (one page of the inbox): ``{"opened": bool, "types":
    [event type, ...]}``, the kinds of event that others caused since this reviewer last
    opened the case (most recent kind last). Cases never opened are ``opened: False``."""
    refs = list(dict.fromkeys(case_refs))
    if not refs:
        return {}
    seen = dict(session.execute(select(CaseSeen.concern_id, CaseSeen.seq).where(
        CaseSeen.reviewer_id == reviewer_id, CaseSeen.concern_id.in_(refs))).tuples().all())
    out: dict[str, dict[str, Any]] = {
        ref: {"opened": ref in seen, "types": []} for ref in refs}
    opened = [ref for ref in refs if ref in seen]
    if not opened:
        return out
    rows = session.execute(
        select(AuditEvent.concern_id, AuditEvent.type, func.max(AuditEvent.seq))
        .join(CaseSeen, and_(CaseSeen.concern_id == AuditEvent.concern_id,
                             CaseSeen.reviewer_id == reviewer_id))
        .where(AuditEvent.concern_id.in_(opened), AuditEvent.seq > CaseSeen.seq,
               AuditEvent.actor != reviewer_id, AuditEvent.type.not_in(QUIET))
        .group_by(AuditEvent.concern_id, AuditEvent.type)).all()
    for ref, type_, last in sorted(rows, key=lambda r: (r[0], r[2])):
        out[ref]["types"].append(type_)
    return out
