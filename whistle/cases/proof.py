"""What a submission adds for issue 22, in its own transaction: the reporter's identity
sealed apart (whistle.cases.identity) and the signed receipt (whistle.cases.receipts)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ReporterProof:
    """The columns ``reporter_part`` needs: read by ``_REPORTER``, or by the token lookup
    itself (``reporter._BY_TOKEN``), which carries them for the status check."""

    has_identity: bool
    identity_state: str | None
    identity_release: str | None
    identity_request: str | None
    receipt_ct: bytes | None


def reporter_part(session: Session, keys: InstanceKeys, case_ref: str,
                  thread_key: Callable[[], bytes], events: list[dict[str, Any]],
                  looked_up: Any | None = None) -> dict[str, Any]:
    """What ``POST /api/v1/status`` adds: ``identity_state``, ``identity_release``,
    ``receipt``; and the reason beside ``identity_released`` on the reporter's timeline
    (``thread_key`` is called only then). ``looked_up``: those columns as the token lookup
    read them in this request (nothing changed since), saving a read."""
    if looked_up is not None:
        row = ReporterProof(bool(looked_up.has_identity), looked_up.identity_state,
                            looked_up.identity_release, looked_up.identity_request,
                            looked_up.receipt_ct)
    else:
        rows = db.single_read(session, _REPORTER, {"cid": case_ref})
        if not rows:
            return {}
        found = rows[0]
        row = ReporterProof(found.identity_ct is not None, found.state, found.release,
                            found.approved_request, found.receipt_ct)
    if row.identity_state is not None:
        state = row.identity_state
    else:
        state = identity.RELEASED if row.has_identity else identity.NONE
    released = [e for e in events if e.get("type") == "identity_released"]
    if released and row.identity_request:
        request = session.get(IdentityRequest, row.identity_request)
        if request is not None:
            reason = crypto.open_sealed(thread_key(), request.reason_ct, casekeys.part(
                case_ref, f"identity-reason:{request.id}")).decode()
            for event in released:
                event["reason"] = reason
    receipt = (receipts.opened(case_ref, receipts.storage_key(keys.reporter_pepper),
                               row.receipt_ct) if row.receipt_ct is not None else None)
    return {"identity_state": state, "identity_release": row.identity_release,
            "receipt": receipt}
