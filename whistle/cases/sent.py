"""What the reporter sent, as they may read it back with their token (issue 21, item 2).

The concern and its first files are sealed with the case key, which the token never opens
(it also seals the identity and the reviewers' internal notes). So at submission a copy of
the concern's text and of its files' names and sizes is sealed with the thread key, which
the token does open; files added later from the status page are already sealed with the
thread key and are listed from their own records. Nothing here reaches a reviewer's note.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.cases import attachments
from whistle.cases import keys as casekeys
from whistle.store.models import Attachment, ReporterCopy

PART = "reporter_copy"


def keep(session: Session, case_ref: str, thread_key: bytes, details: str,
         uploads: Sequence[Any]) -> None:
    """Seal the reporter's copy in the caller's transaction (at submission)."""
    body = json.dumps({"details": details, "files": [
        {"filename": u.filename, "size": u.size} for u in uploads]}).encode()
    session.add(ReporterCopy(concern_id=case_ref, body_ct=crypto.seal(
        thread_key, body, casekeys.part(case_ref, PART))))


def read_back(session: Session, case_ref: str, thread_key: bytes) -> dict[str, Any]:
    """``{"details": text or None, "files": [{"filename", "size", "added_later"}]}``.
    ``details`` is None for a concern sent before copies were kept (nothing to show)."""
    row = session.get(ReporterCopy, case_ref)
    copy: dict[str, Any] = {"details": None, "files": []}
    if row is not None:
        try:
            copy = json.loads(crypto.open_sealed(thread_key, row.body_ct,
                                                 casekeys.part(case_ref, PART)))
        except (crypto.CryptoError, ValueError):
            copy = {"details": None, "files": [], "damaged": True}
    files = [dict(f, added_later=False) for f in copy.get("files", [])]
    for att in session.execute(select(Attachment.id, Attachment.concern_id, Attachment.created,
                                      Attachment.meta_ct).where(
            Attachment.concern_id == case_ref).order_by(Attachment.created, Attachment.id)):
        if att.meta_ct[:1] != attachments.KIND_THREAD.encode():
            continue  # sealed with the case key: listed from the copy above
        try:
            _kind, _key, meta = attachments._open_meta(att, casekeys.CaseKeys(b"", thread_key))
        except (crypto.CryptoError, ValueError):
            continue
        files.append({"filename": meta.get("filename"), "size": meta.get("size"),
                      "added_later": True, "at": att.created.isoformat()})
    return {"details": copy.get("details"), "files": files,
            "damaged": bool(copy.get("damaged"))}
