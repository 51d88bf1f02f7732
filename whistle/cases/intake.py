"""What happens to a concern from the reporter's side: submit, check status, talk, rotate the token.

The flow of a submission (see DESIGN.md): validate -> route -> seal -> one
transaction (case, ciphertext, wrapped keys, token hash, exclusions, audit
event, outbox rows) -> receipt with the token, shown once.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, literal_column, select, update
from sqlalchemy.orm import Session

from whistle import crypto, notify, routing, tokens, validation
from whistle.cases import audit, workflow
from whistle.cases import keys as casekeys
from whistle.keys import InstanceKeys
from whistle.store import counts, settings
from whistle.store.models import (
    Assignment,
    AuditEvent,
    Concern,
    Exclusion,
    InboxCount,
    Message,
    Reviewer,
    WrappedKey,
    utcnow,
)
from whistle.store.prepared import Prepared, PreparedQuery
from whistle.errors import InvalidInput, Refused

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_case_ref() -> str:
    """A public case reference: 140 random bits in Crockford base32, in groups of four."""
    n = secrets.randbits(140)
    chars = "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in range(28))
    return "WH-" + "-".join(chars[i:i + 4] for i in range(0, 28, 4))


@dataclass(frozen=True)
class Identity:
    name: str
    role: str | None = None
    contact: str | None = None


@dataclass(frozen=True)
class Submission:
    category: str
    details: str
    unit: str | None = None
    about_senior: bool = False
    exclude_reviewers: tuple[str, ...] = ()
    identity: Identity | None = None
    attachments: tuple[Any, ...] = field(default=())  # whistle.attachments.Upload


@dataclass(frozen=True)
class Receipt:
    case_ref: str
    token: str
    status: str
    reviewer_count: int
    acknowledge_by: dt.date
    under_routed: bool
    attachment_notes: tuple[str, ...] = ()


def parse_submission(data: Any, session: Session, config: Mapping[str, Any]) -> Submission:
    """Check a decoded JSON object (or form turned into one) against the intake rules."""
    if not isinstance(data, dict):
        raise InvalidInput("the concern must be a JSON object")
    allowed = {"category", "details", "unit", "about_senior", "exclude_reviewers", "identity",
               "idempotency_key", "clean_metadata"}
    unknown = set(data) - allowed
    if unknown:
        raise InvalidInput(f"unknown field: {sorted(unknown)[0]}", sorted(unknown)[0])
    max_line = config["MAX_FIELD_CHARS"]
    category = validation.line(data.get("category"), "category", 64, required=True)
    categories, units = settings.intake_lists(session)
    if category not in {c["id"] for c in categories}:
        raise InvalidInput("unknown category", "category")
    unit = validation.line(data.get("unit"), "unit", max_line)
    if unit is not None and unit not in units:
        raise InvalidInput("unknown unit", "unit")
    details = validation.text(data.get("details"), "details", config["MAX_DETAILS_CHARS"],
                              required=True)
    excluded = validation.id_list(data.get("exclude_reviewers"), "exclude_reviewers")
    if excluded:
        known = set(session.scalars(select(Reviewer.id).where(Reviewer.id.in_(excluded))))
        if set(excluded) - known:
            raise InvalidInput("unknown reviewer in exclude_reviewers", "exclude_reviewers")
    identity = None
    raw_identity = data.get("identity")
    if raw_identity is not None:
        if not isinstance(raw_identity, dict) or set(raw_identity) - {"name", "role", "contact"}:
            raise InvalidInput("identity must be an object with name, role, contact", "identity")
        name = validation.line(raw_identity.get("name"), "identity.name", max_line, required=True)
        identity = Identity(
            name=name or "",
            role=validation.line(raw_identity.get("role"), "identity.role", max_line),
            contact=validation.line(raw_identity.get("contact"), "identity.contact", max_line),
        )
    return Submission(
        category=category or "", details=details or "", unit=unit,
        about_senior=validation.boolean(data.get("about_senior"), "about_senior"),
        exclude_reviewers=tuple(dict.fromkeys(excluded)), identity=identity,
    )


def _constants(values: Any) -> list[Any]:
    """Fixed SQL literals for an IN list of names from our own code: an expanding bound
    list would be rendered again on every execution (measured: a third of a status check)."""
    return [literal_column("'" + v + "'") for v in sorted(values)
            if v.replace("_", "").isalnum()]


# Each reviewer's open-case load from the inbox counts (whistle.store.counts): a handful of rows,
# however many cases there are (a GROUP BY over every assignment cost 370 ms per submission
# at 1M cases; counting the open index range still grew with the cases).
_OPEN_LOAD = (select(func.coalesce(func.sum(InboxCount.n), 0))
              .where(InboxCount.reviewer_id == Reviewer.id,
                     InboxCount.status.in_(_constants(workflow.OPEN_STATUSES)))
              .correlate(Reviewer).scalar_subquery())
# What routing and sealing use of each eligible reviewer (columns, not entities).
_ROUTING_COLUMNS = (Reviewer.id, Reviewer.units, Reviewer.categories, Reviewer.is_independent,
                    Reviewer.is_admin, Reviewer.email, Reviewer.public_key)
_ACTIVE_REVIEWERS = PreparedQuery(select(*_ROUTING_COLUMNS, _OPEN_LOAD).where(
    Reviewer.active.is_(True), Reviewer.is_reviewer.is_(True)).order_by(Reviewer.id))


# What routing and sealing used, without the loads: compared again under the lock.
_ROUTED = PreparedQuery(select(*_ROUTING_COLUMNS).where(
    Reviewer.active.is_(True), Reviewer.is_reviewer.is_(True)).order_by(Reviewer.id))


def _active_reviewers(session: Session) -> list[Any]:
    """Active reviewers (rows of _ACTIVE_REVIEWERS' columns, the load last)."""
    return _ACTIVE_REVIEWERS.all(session.connection(), {})


@functools.lru_cache(maxsize=1024)
def _name_set(text: str) -> frozenset[str]:
    """A reviewer's units or categories (a JSON list), parsed once per distinct value."""
    return frozenset(json.loads(text))


def _candidates(session: Session, rows: list[Any] | None = None) -> list[routing.Candidate]:
    return [
        routing.Candidate(
            id=r.id, units=_name_set(r.units),
            categories=_name_set(r.categories), independent=r.is_independent,
            open_load=r[-1] or 0, admin=r.is_admin,
        )
        for r in (rows if rows is not None else _active_reviewers(session))
    ]


# The submission's inserts, compiled once (see whistle.store.prepared).
_INSERT_CONCERN = Prepared(insert(Concern))
_INSERT_ASSIGNMENTS = Prepared(insert(Assignment))
_INSERT_WRAPPED = Prepared(insert(WrappedKey))
_INSERT_EXCLUSIONS = Prepared(insert(Exclusion))


class AlreadySubmitted(Refused):
    """A concern with this idempotency key is already stored."""

    def __init__(self) -> None:
        super().__init__("already_submitted",
                         "this concern was already received; its token was shown then")


@dataclass
class _Sealed:
    """A submission routed and sealed, ready to store: everything but the write."""

    case_ref: str
    token: str
    keys: casekeys.CaseKeys
    route: routing.Route
    reviewers: dict[str, Any]  # id -> row of _ACTIVE_REVIEWERS
    concern: dict[str, Any]  # the concerns row
    wrapped: list[dict[str, Any]]
    snapshot: list[tuple[Any, ...]]  # the reviewers as routed, without their loads
    exclusions: list[bytes]  # keyed tags of the reviewers the reporter excluded


def _seal(session: Session, keys: InstanceKeys, config: Mapping[str, Any], sub: Submission,
          today: dt.date, idempotency_key: bytes | None) -> _Sealed:
    active = _active_reviewers(session)
    route = routing.route(
        routing.Need(sub.category, sub.unit, sub.about_senior, frozenset(sub.exclude_reviewers)),
        _candidates(session, active), config["MIN_REVIEWERS"],
    )
    reviewers = {r.id: r for r in active}  # route only picks among these
    case_ref = new_case_ref()
    token, entropy = tokens.new_token()
    ck = casekeys.CaseKeys.fresh()
    concern = dict(
        id=case_ref, category=sub.category, unit=sub.unit, about_senior=sub.about_senior,
        status=workflow.RECEIVED, created=today,
        acknowledge_by=today + dt.timedelta(days=config["ACK_DEADLINE_DAYS"]),
        under_routed=route.under_routed,
        details_ct=crypto.seal(ck.case, sub.details.encode(), casekeys.part(case_ref, "details")),
        identity_ct=(crypto.seal(ck.case, json.dumps(sub.identity.__dict__).encode(),
                                 casekeys.part(case_ref, "identity"))
                     if sub.identity else None),
        token_lookup=tokens.lookup_id(keys.token_pepper, entropy),
        idempotency=(crypto.keyed_hash(keys.index_pepper, "idempotency", idempotency_key)
                     if idempotency_key else None),
    )
    wrapped: list[dict[str, Any]] = []
    for rid in route.reviewer_ids:
        wrapped += casekeys.wrapped_rows(case_ref, ck, "reviewer", rid, reviewers[rid].public_key)
    wrapped += casekeys.wrapped_rows(case_ref, ck, "recovery", "org", keys.recovery_public)
    reporter = crypto.reporter_keypair(entropy, keys.reporter_pepper)
    wrapped += casekeys.wrapped_rows(case_ref, ck, "reporter", "reporter", reporter.public,
                                     thread_only=True)
    return _Sealed(case_ref, token, ck, route, reviewers, concern, wrapped,
                   [tuple(r)[:-1] for r in active],
                   [casekeys.exclusion_tag(keys.index_pepper, case_ref, rid)
                    for rid in sub.exclude_reviewers])


def submit(session: Session, keys: InstanceKeys, config: Mapping[str, Any], sub: Submission,
           idempotency_key: bytes | None = None, now: dt.datetime | None = None,
           write_lock: Callable[[Session], None] | None = None) -> Receipt:
    """Store a concern, sealed for its reviewers and the recovery key, in one transaction.

    Never rejects for lack of reviewers: an under-routed concern is stored for
    whoever is eligible plus the recovery key, and administrators are alerted.
    The returned token exists nowhere else; only its keyed hash is stored.

    ``write_lock``: when given, routing and sealing (the hybrid KEM work) run before
    the write transaction, which ``write_lock`` starts (``db.take_write_lock``: on
    SQLite it ends the reads and takes the database's write lock). Then the eligible
    reviewers are read again and, if anything routing or sealing used changed
    meanwhile, the concern is routed and sealed again there. So the lock
    is held for the inserts and the commit only, and two workers seal side by side.
    """
    now = now or utcnow()
    today = now.date()
    sealed = _seal(session, keys, config, sub, today, idempotency_key)
    if write_lock is not None:
        write_lock(session)
        if idempotency_key is not None and replay(session, keys, idempotency_key) is not None:
            raise AlreadySubmitted()
        if [tuple(r) for r in _ROUTED.all(session.connection(), {})] != sealed.snapshot:
            sealed = _seal(session, keys, config, sub, today, idempotency_key)
    return _store(session, config, sub, sealed, today)


def _store(session: Session, config: Mapping[str, Any], sub: Submission, sealed: _Sealed,
           today: dt.date) -> Receipt:
    """The write: Core inserts, one statement per table, while the lock is held."""
    case_ref, route, reviewers = sealed.case_ref, sealed.route, sealed.reviewers
    concern = sealed.concern
    conn = session.connection()
    _INSERT_CONCERN.run(conn, [concern])  # the case row first (foreign keys)
    if route.reviewer_ids:  # none when no one is eligible (stored for the recovery key)
        _INSERT_ASSIGNMENTS.run(conn, [
            {"concern_id": case_ref, "reviewer_id": rid, "status": concern["status"],
             "created": today} for rid in route.reviewer_ids])
        counts.count_new(session, [(rid, concern["status"]) for rid in route.reviewer_ids])
    _INSERT_WRAPPED.run(conn, sealed.wrapped)
    notify.queue_many(session, [reviewers[rid].email for rid in route.reviewer_ids], "activity")
    if sealed.exclusions:
        _INSERT_EXCLUSIONS.run(conn, [{"tag": tag, "concern_id": case_ref}
                                         for tag in sealed.exclusions])
    notes: tuple[str, ...] = ()
    if sub.attachments:
        from whistle.cases import attachments

        notes = attachments.store_all(session, case_ref, sealed.keys.case, sub.attachments,
                                       today)
    # Reporter-side time is kept to the day (no time of day to correlate).
    day = dt.datetime.combine(today, dt.time())
    # A new chain (the case row was flushed above): one bulk INSERT, no reading back.
    events: list[tuple[str, str, dt.datetime, dict[str, Any] | None]] = [
        ("received", "reporter", day, {"reviewers": len(route.reviewer_ids),
                                       "under_routed": route.under_routed,
                                       "attachments": len(sub.attachments)})]
    events += [("assigned", "system", day, {"reviewer": rid}) for rid in route.reviewer_ids]
    if route.under_routed:
        events.append(("under_routed", "system", day, None))
    audit.record_many(session, case_ref, events, audit.NEW_CHAIN)
    if route.under_routed:
        notify.queue_many(session, list(session.scalars(select(Reviewer.email).where(
            Reviewer.is_admin.is_(True), Reviewer.active.is_(True)))), "admin_attention")
    session.commit()
    return Receipt(case_ref, sealed.token, concern["status"], len(route.reviewer_ids),
                   concern["acknowledge_by"], route.under_routed, notes)


def replay(session: Session, keys: InstanceKeys, idempotency_key: bytes) -> Concern | None:
    """The concern already stored under this idempotency key, if any."""
    tag = crypto.keyed_hash(keys.index_pepper, "idempotency", idempotency_key)
    return session.scalars(select(Concern).where(Concern.idempotency == tag)).first()


# -- the reporter's side after submission --------------------------------


# The reporter's hot path: statements built once (building one costs more than running it).
# What the status check shows of a case: columns, not the entity with its ciphertext.
_REPORTER_KINDS = _constants(("message", "feedback"))
# "Is there a conversation?" rides on the lookup: most cases have none yet, and then
# neither the thread query nor the thread key is needed.
_HAS_THREAD = select(Message.id).where(Message.concern_id == Concern.id,
                                       Message.kind.in_(_REPORTER_KINDS)).exists()
_REPORTER_TYPES = _constants(workflow.REPORTER_EVENTS)
# The case and its reporter timeline in one read: one row per event (the case's columns
# repeated), or one row without an event. A second query cost a round trip on every check.
_BY_TOKEN = PreparedQuery(select(Concern.id, Concern.status, Concern.created, Concern.acknowledge_by,
                   Concern.feedback_by, Concern.overdue, Concern.outcome,
                   Concern.token_last_used, _HAS_THREAD.label("has_thread"),
                   AuditEvent.at.label("event_at"), AuditEvent.type.label("event_type")
                   ).select_from(Concern).outerjoin(AuditEvent, and_(
                       AuditEvent.concern_id == Concern.id,
                       AuditEvent.type.in_(_REPORTER_TYPES))).where(
    Concern.token_lookup == bindparam("lookup")).order_by(AuditEvent.seq))
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
                  now: dt.datetime | None = None,
                  read: Callable[[PreparedQuery, Mapping[str, Any]], list[Any]] | None = None
                  ) -> ReporterView | None:
    """The case a token opens, or None. A miss costs the same work whatever the input.

    The first check of a day records the day of use in its own short write
    transaction (so "last used" cannot be skipped); the other checks of the day
    only read, and a caller that only reads afterwards (the status check) can run
    the lookup without SQLite's write lock (``db.read_first``).
    The keyed lookup hash is the proof of the token (HMAC with the token pepper over
    its full entropy); the thread key is unwrapped when needed (``thread_key``).
    ``read``: how to run the lookup (``db.single_read`` for the status check); by
    default in the session.
    """
    if not isinstance(token_text, str):
        raise InvalidInput("token must be text", "token")
    if len(token_text) > tokens.MAX_TOKEN_CHARS:
        raise InvalidInput("token is too long", "token")
    entropy = tokens.parse(token_text)
    probe = entropy if entropy is not None else secrets.token_bytes(tokens.TOKEN_BYTES)
    params = {"lookup": tokens.lookup_id(keys.token_pepper, probe)}
    # Core, not the ORM (which doubled the cost of this read).
    rows = (read(_BY_TOKEN, params) if read is not None
            else _BY_TOKEN.all(session.connection(), params))
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
    cid = view.case.id
    if not view.has_thread:  # read with the case; set when this request adds a message
        return []
    rows = session.connection().execute(_THREAD, {"cid": cid}).all()
    return [
        {"id": mid, "from": sender, "at": created.isoformat(), "kind": kind,
         "body": crypto.open_sealed(view.thread_key, body_ct,
                                    casekeys.part(cid, f"{kind}:{mid}")).decode()}
        for mid, sender, created, kind, body_ct in rows
    ]


def reporter_events(session: Session, concern_id: str) -> list[dict[str, Any]]:
    """The reporter's timeline: dates and event types only."""
    rows = session.connection().execute(_TIMELINE, {"cid": concern_id}).all()
    return [{"at": at.date().isoformat(), "type": type_} for at, type_ in rows]


def add_reporter_message(session: Session, view: ReporterView, body: Any,
                         config: Mapping[str, Any], now: dt.datetime | None = None) -> Message:
    """A message from the reporter to the case's reviewers, sealed with the thread key."""
    text = validation.text(body, "body", config["MAX_DETAILS_CHARS"], required=True) or ""
    today = (now or utcnow()).date()
    msg = workflow.add_message(session, view.concern, view.thread_key, "message", "reporter",
                               None, text, today)
    view.has_thread = True
    audit.record(session, view.concern.id, "reporter_message", "reporter",
                 dt.datetime.combine(today, dt.time()), {"message": msg.id})
    for a in view.concern.assignments:
        if a.reviewer.active:
            notify.queue(session, a.reviewer.email, "activity")
    session.commit()
    return msg


def rotate_token(session: Session, keys: InstanceKeys, view: ReporterView,
                 now: dt.datetime | None = None) -> str:
    """Replace the token: re-wrap the thread key for the new reporter key; the old one dies now."""
    thread = view.thread_key  # before its wrapped copy is deleted below
    token, entropy = tokens.new_token()
    from whistle.store.models import WrappedKey

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
