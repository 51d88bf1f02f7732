"""Where case content is sealed and keys are wrapped: the names of every context.

Contexts bind ciphertext to its case, its part and its recipient (see
whistle.crypto), so moving a blob between rows makes it fail to open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.store.models import WrappedKey

CASE = "case"
THREAD = "thread"
# Both keys in one wrap (case key | thread key, 64 bytes): one hybrid KEM operation per
# recipient instead of two. Reviewers and the recovery key get this; the reporter gets
# the thread key alone. Cases wrapped before it (a CASE and a THREAD row) still open.
BOTH = "case+thread"
# The recipient kind of a reviewer's copy withheld until the case escalates
# (whistle.cases.escalation). It is wrapped with the context of that reviewer's own copy
# (recipient kind "reviewer"), so releasing it changes the row's kind and nothing else.
ESCALATION = "escalation"


def part(case_ref: str, name: str) -> str:
    return f"case:{case_ref}:{name}"


def wrap_context(case_ref: str, key_kind: str, recipient_kind: str, recipient_id: str) -> str:
    return f"case:{case_ref}:{key_kind}:{recipient_kind}:{recipient_id}"


@dataclass(frozen=True)
class CaseKeys:
    case: bytes
    thread: bytes

    @staticmethod
    def fresh() -> CaseKeys:
        return CaseKeys(crypto.random_key(), crypto.random_key())


def wrap(session: Session, case_ref: str, keys: CaseKeys, recipient_kind: str,
         recipient_id: str, public: bytes, thread_only: bool = False) -> None:
    """Add wrapped copies of the case's keys for one recipient (caller's transaction)."""
    session.add_all([WrappedKey(**row) for row in wrapped_rows(
        case_ref, keys, recipient_kind, recipient_id, public, thread_only)])


def wrapped_rows(case_ref: str, keys: CaseKeys, recipient_kind: str, recipient_id: str,
                 public: bytes, thread_only: bool = False, stored_as: str | None = None
                 ) -> list[dict[str, Any]]:
    """The ``wrapped_keys`` rows ``wrap`` adds, as dicts (for one bulk INSERT of many).
    ``stored_as``: the row's recipient kind when it is not the one wrapped for (a withheld
    ``ESCALATION`` copy of a ``reviewer`` one)."""
    kinds = [(THREAD, keys.thread)] if thread_only else [(BOTH, keys.case + keys.thread)]
    blobs = crypto.wrap_keys([(key, wrap_context(case_ref, kind, recipient_kind, recipient_id))
                              for kind, key in kinds], public)
    return [{"concern_id": case_ref, "recipient_kind": stored_as or recipient_kind,
             "recipient_id": recipient_id, "key_kind": kind, "blob": blob}
            for (kind, _key), blob in zip(kinds, blobs)]


def unwrap(session: Session, case_ref: str, recipient_kind: str, recipient_id: str,
           private: bytes, kinds: tuple[str, ...] = (CASE, THREAD)) -> dict[str, bytes]:
    """The recipient's keys for a case; CryptoError if absent or they do not open."""
    found = held_keys(session, case_ref, recipient_kind, recipient_id)
    return unwrap_found(found, case_ref, recipient_kind, recipient_id, private, kinds)


# Built once: on every status check and case view, building the statement (and its
# cache key) cost more than running it. Two columns, not entities.
_HELD = select(WrappedKey.key_kind, WrappedKey.blob).where(
    WrappedKey.concern_id == bindparam("case_id"),
    WrappedKey.recipient_kind == bindparam("recipient_kind"),
    WrappedKey.recipient_id == bindparam("recipient_id"))


def held_keys(session: Session, case_ref: str, recipient_kind: str, recipient_id: str
              ) -> dict[str, bytes]:
    """The recipient's wrapped keys for a case, still wrapped: {key kind: blob}."""
    return dict(session.execute(_HELD, {"case_id": case_ref, "recipient_kind": recipient_kind,
                                        "recipient_id": recipient_id}).tuples().all())


def unwrap_found(found: dict[str, bytes], case_ref: str, recipient_kind: str, recipient_id: str,
                 private: bytes, kinds: tuple[str, ...] = (CASE, THREAD)) -> dict[str, bytes]:
    """``unwrap`` for wrapped keys the caller already read ({key kind: blob}).

    Returns {CASE: key, THREAD: key} (the kinds asked for), from one BOTH wrap or from
    separate CASE and THREAD wraps (cases wrapped before BOTH existed)."""
    if BOTH in found:
        both = crypto.unwrap_key(found[BOTH], private,
                                 wrap_context(case_ref, BOTH, recipient_kind, recipient_id),
                                 size=2 * crypto.KEY_SIZE)
        opened_both = {CASE: both[:crypto.KEY_SIZE], THREAD: both[crypto.KEY_SIZE:]}
        return {k: opened_both[k] for k in kinds}
    found = {k: v for k, v in found.items() if k in kinds}
    if set(found) != set(kinds):
        raise crypto.CryptoError("no key for this recipient")
    opened = crypto.unwrap_keys([(blob, wrap_context(case_ref, kind, recipient_kind, recipient_id))
                                 for kind, blob in found.items()], private)
    return dict(zip(found, opened))


def exclusion_tag(index_pepper: bytes, case_ref: str, reviewer_id: str) -> bytes:
    return crypto.keyed_hash(index_pepper, "exclusion", f"{case_ref}:{reviewer_id}".encode())


def withheld(session: Session, case_ref: str) -> list[str]:
    """The reviewers holding a withheld (``ESCALATION``) copy of the case's keys, in id
    order: released only when the case escalates (whistle.cases.escalation)."""
    return list(session.scalars(select(WrappedKey.recipient_id).distinct().where(
        WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == ESCALATION)
        .order_by(WrappedKey.recipient_id)))


def drop_withheld(session: Session, case_ref: str, reviewer_id: str) -> None:
    """A reviewer given the case now holds their own copy: their withheld copy goes."""
    session.execute(delete(WrappedKey).where(
        WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == ESCALATION,
        WrappedKey.recipient_id == reviewer_id))
