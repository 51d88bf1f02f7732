"""Where case content is sealed and keys are wrapped: the names of every context.

Contexts bind ciphertext to its case, its part and its recipient (see
whistle.crypto), so moving a blob between rows makes it fail to open.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
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
    kinds = [(THREAD, keys.thread)] if thread_only else [(CASE, keys.case), (THREAD, keys.thread)]
    for kind, key in kinds:
        blob = crypto.wrap_key(key, public, wrap_context(case_id, kind, recipient_kind,
                                                         recipient_id))
        session.add(WrappedKey(concern_id=case_id, recipient_kind=recipient_kind,
                               recipient_id=recipient_id, key_kind=kind, blob=blob))


def unwrap(session: Session, case_id: str, recipient_kind: str, recipient_id: str,
           private: bytes, kinds: tuple[str, ...] = (CASE, THREAD)) -> dict[str, bytes]:
    """The recipient's keys for a case; CryptoError if absent or they do not open."""
    rows = session.scalars(select(WrappedKey).where(
        WrappedKey.concern_id == case_id, WrappedKey.recipient_kind == recipient_kind,
        WrappedKey.recipient_id == recipient_id, WrappedKey.key_kind.in_(kinds)))
    found = {r.key_kind: r.blob for r in rows}
    if set(found) != set(kinds):
        raise crypto.CryptoError("no key for this recipient")
    return {kind: crypto.unwrap_key(blob, private, wrap_context(case_id, kind, recipient_kind,
                                                                recipient_id))
            for kind, blob in found.items()}


def exclusion_tag(index_pepper: bytes, case_id: str, reviewer_id: str) -> bytes:
    return crypto.keyed_hash(index_pepper, "exclusion", f"{case_id}:{reviewer_id}".encode())
