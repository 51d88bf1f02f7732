"""What a submission adds for issue 22, in its own transaction: the reporter's identity
sealed apart (whistle.cases.identity) and the signed receipt (whistle.cases.receipts)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from collections.abc import Callable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.cases import identity, receipts
from whistle.cases import keys as casekeys
from whistle.keys import InstanceKeys
from whistle.store import db
from whistle.store.models import CaseIdentity, CaseReceipt, Concern, IdentityRequest
from whistle.store.prepared import PreparedQuery


def at_intake(keys: InstanceKeys, sub: Any, case_ref: str, today: dt.date,
              ck: casekeys.CaseKeys, holders: list[tuple[str, bytes]]
              ) -> tuple[list[Any], str]:
    """(rows to add, the receipt's text) for a submission (``whistle.cases.intake``):
    ``holders`` are the reviewers given the case and its escalation reviewers, with their
    public keys, who each hold a share of an identity released on request."""
    rows: list[Any] = []
    if sub.identity is not None:
        fields = {"name": sub.identity.name, "role": sub.identity.role,
                  "contact": sub.identity.contact}
        rows += identity.sealed_rows(case_ref, fields, sub.identity.release, ck.thread,
                                     holders, keys.recovery_public)
    text = receipts.issue(keys.signing_key, case_ref, today, sub.details,
                          [receipts.stream_sha256(u.stream) for u in sub.attachments])
    rows.append(receipts.stored(case_ref, receipts.storage_key(keys.reporter_pepper), text))
    return rows, text


# The reporter's status check (a hot path: one read, outside a transaction where the store
# allows it, and no key unwrapped unless a released identity's reason must be shown).
_REPORTER = PreparedQuery(select(
    Concern.identity_ct, CaseIdentity.state, CaseIdentity.release,
    CaseIdentity.approved_request, CaseReceipt.receipt_ct).select_from(Concern).outerjoin(
    CaseIdentity, CaseIdentity.concern_id == Concern.id).outerjoin(
    CaseReceipt, CaseReceipt.concern_id == Concern.id).where(
    Concern.id == bindparam("cid")))


def reporter_part(session: Session, keys: InstanceKeys, case_ref: str,
                  thread_key: Callable[[], bytes], events: list[dict[str, Any]]
                  ) -> dict[str, Any]:
    """What ``POST /api/v1/status`` adds: ``identity_state``, ``identity_release``,
    ``receipt``; and the reason beside ``identity_released`` on the reporter's timeline
    (``thread_key`` is called only then)."""
    rows = db.single_read(session, _REPORTER, {"cid": case_ref})
    if not rows:
        return {}
    row = rows[0]
    if row.state is not None:
        state = row.state
    else:
        state = identity.RELEASED if row.identity_ct else identity.NONE
    released = [e for e in events if e.get("type") == "identity_released"]
    if released and row.approved_request:
        request = session.get(IdentityRequest, row.approved_request)
        if request is not None:
            reason = crypto.open_sealed(thread_key(), request.reason_ct, casekeys.part(
                case_ref, f"identity-reason:{request.id}")).decode()
            for event in released:
                event["reason"] = reason
    receipt = (receipts.opened(case_ref, receipts.storage_key(keys.reporter_pepper),
                               row.receipt_ct) if row.receipt_ct is not None else None)
    return {"identity_state": state, "identity_release": row.release, "receipt": receipt}
