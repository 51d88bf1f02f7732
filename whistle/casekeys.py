"""Where case content is sealed and keys are wrapped: the names of every context.

Contexts bind ciphertext to its case, its part and its recipient (see
whistle.crypto), so moving a blob between rows makes it fail to open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.models import WrappedKey

CASE = "case"
THREAD = "thread"


def part(case_id: str, name: str) -> str:
    return f"case:{case_id}:{name}"


def wrap_context(case_id: str, key_kind: str, recipient_kind: str, recipient_id: str) -> str:
    return f"case:{case_id}:{key_kind}:{recipient_kind}:{recipient_id}"


@dataclass(frozen=True)
class CaseKeys:
    case: bytes
    thread: bytes

    @staticmethod
    def fresh() -> CaseKeys:
        return CaseKeys(crypto.random_key(), crypto.random_key())


def wrap(session: Session, case_id: str, keys: CaseKeys, recipient_kind: str,
         recipient_id: str, public: bytes, thread_only: bool = False) -> None:
    """Add wrapped copies of the case's keys for one recipient (caller's transaction)."""
    session.add_all([WrappedKey(**row) for row in wrapped_rows(
        case_id, keys, recipient_kind, recipient_id, public, thread_only)])


def wrapped_rows(case_id: str, keys: CaseKeys, recipient_kind: str, recipient_id: str,
                 public: bytes, thread_only: bool = False) -> list[dict[str, Any]]:
    """The ``wrapped_keys`` rows ``wrap`` adds, as dicts (for one bulk INSERT of many)."""
    kinds = [(THREAD, keys.thread)] if thread_only else [(CASE, keys.case), (THREAD, keys.thread)]
    blobs = crypto.wrap_keys([(key, wrap_context(case_id, kind, recipient_kind, recipient_id))
                              for kind, key in kinds], public)
    return [{"concern_id": case_id, "recipient_kind": recipient_kind,
             "recipient_id": recipient_id, "key_kind": kind, "blob": blob}
            for (kind, _key), blob in zip(kinds, blobs)]


def unwrap(session: Session, case_id: str, recipient_kind: str, recipient_id: str,
           private: bytes, kinds: tuple[str, ...] = (CASE, THREAD)) -> dict[str, bytes]:
    """The recipient's keys for a case; CryptoError if absent or they do not open."""
    found = held_keys(session, case_id, recipient_kind, recipient_id)
    return unwrap_found(found, case_id, recipient_kind, recipient_id, private, kinds)


# Built once: on every status check and case view, building the statement (and its
# cache key) cost more than running it. Two columns, not entities.
_HELD = select(WrappedKey.key_kind, WrappedKey.blob).where(
    WrappedKey.concern_id == bindparam("case_id"),
    WrappedKey.recipient_kind == bindparam("recipient_kind"),
    WrappedKey.recipient_id == bindparam("recipient_id"))


def held_keys(session: Session, case_id: str, recipient_kind: str, recipient_id: str
              ) -> dict[str, bytes]:
    """The recipient's wrapped keys for a case, still wrapped: {key kind: blob}."""
    return dict(session.execute(_HELD, {"case_id": case_id, "recipient_kind": recipient_kind,
                                        "recipient_id": recipient_id}).tuples().all())


def unwrap_found(found: dict[str, bytes], case_id: str, recipient_kind: str, recipient_id: str,
                 private: bytes, kinds: tuple[str, ...] = (CASE, THREAD)) -> dict[str, bytes]:
    """``unwrap`` for wrapped keys the caller already read ({key kind: blob})."""
    found = {k: v for k, v in found.items() if k in kinds}
    if set(found) != set(kinds):
        raise crypto.CryptoError("no key for this recipient")
    opened = crypto.unwrap_keys([(blob, wrap_context(case_id, kind, recipient_kind, recipient_id))
                                 for kind, blob in found.items()], private)
    return dict(zip(found, opened))


def exclusion_tag(index_pepper: bytes, case_id: str, reviewer_id: str) -> bytes:
    return crypto.keyed_hash(index_pepper, "exclusion", f"{case_id}:{reviewer_id}".encode())
