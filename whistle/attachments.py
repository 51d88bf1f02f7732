"""Attachments: sealed in fixed-size chunks under a per-file key derived from the case key."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import casekeys, crypto
from whistle.models import Attachment


def meta_context(case_id: str, attachment_id: str) -> str:
    return casekeys.part(case_id, f"attachment:{attachment_id}:meta")


def listing(session: Session, case_id: str, case_key: bytes) -> list[dict[str, Any]]:
    """Decrypted names, sizes and types of a case's attachments."""
    out = []
    for att in session.scalars(select(Attachment).where(Attachment.concern_id == case_id)
                               .order_by(Attachment.created, Attachment.id)):
        meta = json.loads(crypto.open_sealed(case_key, att.meta_ct,
                                             meta_context(case_id, att.id)))
        out.append({"id": att.id, "filename": meta["filename"], "size": meta["size"],
                    "content_type": meta["content_type"]} | {
                        k: meta[k] for k in ("detected_type", "mismatch", "cleaned")
                        if k in meta})
    return out


def store_all(session: Session, case_id: str, case_key: bytes, uploads: Any, today: Any
              ) -> tuple[str, ...]:
    raise NotImplementedError("attachments are not stored yet")
