"""The reporter's side after submission: the token opens the case's status, timeline and
conversation; the reporter replies and can replace the token.

The token is never stored: only its keyed lookup hash (HMAC under a pepper kept in
``keys/``) finds the case, and the reporter's key pair, derived from the token, unwraps
the thread key only when a message needs it.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle import crypto, tokens, validation
from whistle.cases import audit, notices, workflow
from whistle.cases import keys as casekeys
from whistle.keys import InstanceKeys
from whistle.store import db
from whistle.store.models import (
    AuditEvent,
    CaseIdentity,
    CaseReceipt,
    Concern,
    Message,
    OralReport,
    WrappedKey,
    utcnow,
)
from whistle.store.prepared import PreparedQuery
from whistle.errors import InvalidInput

from whistle.cases.intake import constants


# The reporter's hot path: statements built once (building one costs more than running it).
# What the status check shows of a case: columns, not the entity with its ciphertext.
_REPORTER_KINDS = constants(("message", "feedback"))
# "Is there a conversation?" rides on the lookup: most cases have none yet, and then
# neither the thread query nor the thread key is needed.
_HAS_THREAD = select(Message.id).where(Message.concern_id == Concern.id,
                                       Message.kind.in_(_REPORTER_KINDS)).exists()
_REPORTER_TYPES = constants(workflow.REPORTER_EVENTS)
# The case and its reporter timeline in one read: one row per event (the case's columns
# repeated), or one row without an event. A second query cost a round trip on every check.
# The same read carries what every status check adds (each was a read of its own): whether
# an operator filed the concern and its token still waits for replacement (issue 24; NULL:
# filed online), the identity's state and the stored receipt (issue 22).
_BY_TOKEN = PreparedQuery(select(Concern.id, Concern.status, Concern.created, Concern.acknowledge_by,
                   Concern.feedback_by, Concern.overdue, Concern.outcome,
                   Concern.token_last_used, _HAS_THREAD.label("has_thread"),
                   AuditEvent.at.label("event_at"), AuditEvent.type.label("event_type"),
                   OralReport.token_pending.label("oral_pending"),
                   Concern.identity_ct.is_not(None).label("has_identity"),
                   CaseIdentity.state.label("identity_state"),
                   CaseIdentity.release.label("identity_release"),
                   CaseIdentity.approved_request.label("identity_request"),
                   CaseReceipt.receipt_ct.label("receipt_ct"),
                   ).select_from(Concern).outerjoin(AuditEvent, and_(
                       AuditEvent.concern_id == Concern.id,
                       AuditEvent.type.in_(_REPORTER_TYPES))
                   ).outerjoin(OralReport, OralReport.concern_id == Concern.id
                   ).outerjoin(CaseIdentity, CaseIdentity.concern_id == Concern.id
                   ).outerjoin(CaseReceipt, CaseReceipt.concern_id == Concern.id
                   ).where(Concern.token_lookup == bindparam("lookup")).order_by(AuditEvent.seq))
_THREAD = select(Message.id, Message.sender, Message.created, Message.kind, Message.body_ct).where(
    Message.concern_id == bindparam("cid"), Message.kind.in_(_REPORTER_KINDS)
).order_by(Message.seq)
_TIMELINE = select(AuditEvent.at, AuditEvent.type).where(
    AuditEvent.concern_id == bindparam("cid"),
    AuditEvent.type.in_(_REPORTER_TYPES)).order_by(AuditEvent.seq)
_RECORD_USE = (update(Concern).where(Concern.id == bindparam("cid"))
               .values(token_last_used=bindparam("today")))


class ReporterView:
    """The case a token opened. The thread key is unwrapped only when something needs it
    (a status check of a case without messages needs no key: two hybrid KEM operations
    saved on the reporter's hot path)."""

    def __init__(self, session: Session, keys: InstanceKeys, case: Any, entropy: bytes,
                 previous_use: dt.date | None, events: list[dict[str, Any]] | None = None
                 ) -> None:
        self.case = case  # a row of _BY_TOKEN's columns
        # The timeline as the lookup read it; None: read it when needed (reporter_events).
        self.events_at_lookup = events
        self.has_thread: bool = bool(case.has_thread)  # any message or feedback to show
        self.previous_use = previous_use
        self._session, self._keys, self._entropy = session, keys, entropy
        self._thread: bytes | None = None
        self._concern: Concern | None = None

    @property
    def concern(self) -> Concern:
        """The case as an entity, loaded when a change needs it (messages, files, tokens)."""
        if self._concern is None:
            self._concern = self._session.get_one(Concern, self.case.id)
        return self._concern

    @property
    def thread_key(self) -> bytes:
        """The case's thread key, unwrapped with the reporter key the token derives.
        CryptoError if it does not open (a tampered or mismatched wrapped key)."""
        if self._thread is None:
            self._thread = casekeys.unwrap(
                self._session, self.case.id, "reporter", "reporter",
                crypto.reporter_private_key(self._entropy, self._keys.reporter_pepper),
                (casekeys.THREAD,))[casekeys.THREAD]
        return self._thread


def find_by_token(session: Session, keys: InstanceKeys, token_text: Any,
                  now: dt.datetime | None = None) -> ReporterView | None:
    """The case a token opens, or None. A miss costs the same work whatever the input.

    The first check of a day records the day of use in its own short write
    transaction (so "last used" cannot be skipped); the other checks of the day
    only read, and a caller that only reads afterwards (the status check, a
    ``SINGLE_READS`` unit) runs the lookup without SQLite's write lock.
    The keyed lookup hash is the proof of the token (HMAC with the token pepper over
    its full entropy); the thread key is unwrapped when needed (``thread_key``).
    """
    if not isinstance(token_text, str):
        raise InvalidInput("token must be text", "token")
    if len(token_text) > tokens.MAX_TOKEN_CHARS:
        raise InvalidInput("token is too long", "token")
    entropy = tokens.parse(token_text)
    probe = entropy if entropy is not None else secrets.token_bytes(tokens.TOKEN_BYTES)
    params = {"lookup": tokens.lookup_id(keys.token_pepper, probe)}
    # Core, not the ORM (whose own work was a large part of this read's cost).
    rows = db.single_read(session, _BY_TOKEN, params)
    if not rows or entropy is None:
        return None
    case = rows[0]
    events = [{"at": r.event_at.date().isoformat(), "type": r.event_type}
              for r in rows if r.event_type is not None]
    previous = case.token_last_used
    today = (now or utcnow()).date()
    if previous != today:
        # Day granularity: only the first check of a day writes (and syncs to disk).
        # End the read first: a fresh transaction whose first statement writes waits for
        # the lock; a read transaction upgraded to a write fails if another one committed.
        session.commit()
        session.execute(_RECORD_USE, {"cid": case.id, "today": today})
        session.commit()
    return ReporterView(session, keys, case, entropy, previous, events)


def reporter_messages(session: Session, view: ReporterView) -> list[dict[str, Any]]:
    """The conversation the reporter may read (messages and feedback), decrypted."""
    case_ref = view.case.id
    if not view.has_thread:  # read with the case; set when this request adds a message
        return []
    rows = session.connection().execute(_THREAD, {"cid": case_ref}).all()
    return [
        {"id": mid, "from": sender, "at": created.isoformat(), "kind": kind,
         "body": crypto.open_sealed(view.thread_key, body_ct,
                                    casekeys.part(case_ref, f"{kind}:{mid}")).decode()}
        for mid, sender, created, kind, body_ct in rows
    ]


def reporter_events(session: Session, concern_id: str) -> list[dict[str, Any]]:
    """The reporter's timeline: dates and event types only."""
    rows = session.connection().execute(_TIMELINE, {"cid": concern_id}).all()
    return [{"at": at.date().isoformat(), "type": type_} for at, type_ in rows]


def add_reporter_message(session: Session, view: ReporterView, body: Any,
                         settings: Settings, now: dt.datetime | None = None) -> Message:
    """A message from the reporter to the case's reviewers, sealed with the thread key."""
    text = validation.text(body, "body", settings.max_details_chars, required=True) or ""
    today = (now or utcnow()).date()
    msg = workflow.add_message(session, view.concern, view.thread_key, "message", "reporter",
                               None, text, today)
    view.has_thread = True
    audit.record(session, view.concern.id, "reporter_message", "reporter",
                 dt.datetime.combine(today, dt.time()), {"message": msg.id})
    notices.tell_reviewers(session, view.concern)
    session.commit()
    return msg


def rotate_token(session: Session, keys: InstanceKeys, view: ReporterView,
                 now: dt.datetime | None = None) -> str:
    """Replace the token: re-wrap the thread key for the new reporter key; the old one dies now."""
    thread = view.thread_key  # before its wrapped copy is deleted below
    token, entropy = tokens.new_token()

    concern = view.concern
    for row in session.scalars(select(WrappedKey).where(
            WrappedKey.concern_id == concern.id, WrappedKey.recipient_kind == "reporter")):
        session.delete(row)
    session.flush()
    reporter = crypto.reporter_keypair(entropy, keys.reporter_pepper)
    casekeys.wrap(session, concern.id, casekeys.CaseKeys(b"", thread), "reporter",
                  "reporter", reporter.public, thread_only=True)
    concern.token_lookup = tokens.lookup_id(keys.token_pepper, entropy)
    today = (now or utcnow()).date()
    audit.record(session, concern.id, "token_replaced", "reporter",
                 dt.datetime.combine(today, dt.time()))
    session.commit()
    return token
