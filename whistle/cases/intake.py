"""Submitting a concern (the reporter's side after it is ``whistle.cases.reporter``).

The flow of a submission (see DESIGN.md): validate -> route -> seal -> one
transaction (case, ciphertext, wrapped keys, token hash, exclusions, audit
event, outbox rows) -> receipt with the token, shown once.

Routing considers only reviewers whose row matches their signed roster entry
(``whistle.keys.may_receive``): a key swapped or a reviewer inserted in the database
receives nothing; the concern is flagged under-routed and administrators are alerted.
The first concern stored seals the roster (whistle.people.roster).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, literal_column, select
from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle import crypto, notify, routing, tokens, validation
from whistle.cases import audit, clocks, proof, registry, workflow
from whistle.cases.identity import release_choice as identity_release_choice
from whistle.cases import keys as casekeys
from whistle import keys as instancekeys
from whistle.keys import InstanceKeys
from whistle.store import counts, db, options
from whistle.store.models import (
    Assignment,
    Concern,
    Exclusion,
    InboxCount,
    Reviewer,
    WrappedKey,
    utcnow,
)
from whistle.store.prepared import Prepared, PreparedQuery
from whistle.errors import InvalidInput, Refused, Text

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
    release: str = "on_request"  # or "to_reviewers" (whistle.cases.identity)


@dataclass(frozen=True)
class Submission:
    category: str
    details: str
    unit: str | None = None
    about_senior: bool = False
    exclude_reviewers: tuple[str, ...] = ()
    identity: Identity | None = None
    attachments: tuple[Any, ...] = field(default=())  # whistle.attachments.Upload
    # Read with the intake lists (``parse_submission``): once the roster is sealed, storing a
    # concern does not look again. False: not known, so the store step checks.
    roster_sealed: bool = False
    # Matching escrow (issue 25, whistle.cases.about and escrow): whom it is about, whether
    # to hold it until someone else names them, and how a held one arrives here
    # (``escrow.MATCHED`` or ``escrow.RELEASED``; None for a concern sent at once).
    about: Any = None  # whistle.cases.about.About
    escrow: bool = False
    arrival: str | None = None


@dataclass(frozen=True)
class Receipt:
    case_ref: str
    token: str
    status: str
    reviewer_count: int
    acknowledge_by: dt.date
    under_routed: bool
    attachment_notes: tuple[str, ...] = ()
    receipt: str | None = None  # the signed receipt (whistle.cases.receipts)


def parse_submission(data: Any, session: Session, settings: Settings) -> Submission:
    """Check a decoded JSON object (or form turned into one) against the intake rules."""
    if not isinstance(data, dict):
        raise InvalidInput("the concern must be a JSON object")
    allowed = {"category", "details", "unit", "about_senior", "exclude_reviewers", "identity",
               "idempotency_key", "clean_metadata", "about", "escrow"}
    unknown = set(data) - allowed
    if unknown:
        raise InvalidInput(Text("unknown field: %(name)s", name=sorted(unknown)[0]),
                           sorted(unknown)[0])
    max_line = settings.max_field_chars
    category = validation.line(data.get("category"), "category", 64, required=True)
    categories, units, roster_sealed = options.intake_state(session)
    if category not in {c["id"] for c in categories}:
        raise InvalidInput("unknown category", "category")
    unit = validation.line(data.get("unit"), "unit", max_line)
    if unit is not None and unit not in units:
        raise InvalidInput("unknown unit", "unit")
    details = validation.text(data.get("details"), "details", settings.max_details_chars,
                              required=True)
    excluded = validation.id_list(data.get("exclude_reviewers"), "exclude_reviewers")
    if excluded:
        known = set(session.scalars(select(Reviewer.id).where(Reviewer.id.in_(excluded))))
        if set(excluded) - known:
            raise InvalidInput("unknown reviewer in exclude_reviewers", "exclude_reviewers")
    identity = None
    raw_identity = data.get("identity")
    if raw_identity is not None:
        if not isinstance(raw_identity, dict) or set(raw_identity) - {"name", "role", "contact",
                                                                      "release"}:
            raise InvalidInput("identity must be an object with name, role, contact", "identity")
        name = validation.line(raw_identity.get("name"), "identity.name", max_line, required=True)
        identity = Identity(
            name=name or "",
            role=validation.line(raw_identity.get("role"), "identity.role", max_line),
            contact=validation.line(raw_identity.get("contact"), "identity.contact", max_line),
            release=identity_release_choice(raw_identity.get("release")),
        )
    from whistle.cases import about

    about_whom, escrow = about.parse(data, max_line)
    return Submission(
        about=about_whom, escrow=escrow,
        category=category or "", details=details or "", unit=unit,
        about_senior=validation.boolean(data.get("about_senior"), "about_senior"),
        exclude_reviewers=tuple(dict.fromkeys(excluded)), identity=identity,
        roster_sealed=roster_sealed,
    )


def constants(values: Any) -> list[Any]:
    """Fixed SQL literals for an IN list of names from our own code: an expanding bound
    list would be rendered again on every execution, a large share of a status check (see
    bench/results/README.md, 'Why the hot paths look as they do')."""
    return [literal_column("'" + v + "'") for v in sorted(values)
            if v.replace("_", "").isalnum()]


# Each reviewer's open-case load from the inbox counts (whistle.store.counts): a handful of rows,
# however many cases there are (a GROUP BY over every assignment grew with the cases and
# dominated a submission at a million cases; counting the open index range still grew with
# the cases).
_OPEN_LOAD = (select(func.coalesce(func.sum(InboxCount.n), 0))
              .where(InboxCount.reviewer_id == Reviewer.id,
                     InboxCount.status.in_(constants(workflow.OPEN_STATUSES)))
              .correlate(Reviewer).scalar_subquery())
# What routing and sealing use of each eligible reviewer (columns, not entities).
# The signed roster entry's columns too: no key is wrapped for a row that does not match it.
_ROUTING_COLUMNS = (Reviewer.id, Reviewer.units, Reviewer.categories, Reviewer.is_independent,
                    Reviewer.is_senior, Reviewer.is_admin, Reviewer.email, Reviewer.public_key,
                    Reviewer.name, Reviewer.is_reviewer, Reviewer.state,
                    Reviewer.roster_signature)
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
            senior=r.is_senior, open_load=r[-1] or 0, admin=r.is_admin,
        )
        for r in (rows if rows is not None else _active_reviewers(session))
    ]


# The submission's inserts, compiled once (see whistle.store.prepared).
_INSERT_CONCERN = Prepared(insert(Concern))
_INSERT_ASSIGNMENTS = Prepared(insert(Assignment))
_INSERT_WRAPPED = Prepared(insert(WrappedKey))
_INSERT_EXCLUSIONS = Prepared(insert(Exclusion))


# What a caller adds to a submission's own transaction (whistle.cases.oral.filing_hook).
OnStored = Callable[[Session, str, casekeys.CaseKeys, dt.date], None]


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
    # Those reviewers, and any account whose address is the one the concern is about.
    excluded: tuple[str, ...] = ()
    # The identity sealed apart and the signed receipt (whistle.cases.identity, receipts).
    proof_rows: list[Any] = field(default_factory=list)
    receipt: str | None = None


UNVERIFIED = ("an active reviewer's key does not match their signed roster entry: left out "
              "(see `flask --app app roster verify`)")


def _trusted(rows: list[Any], signing_public: bytes) -> tuple[list[Any], bool]:
    """The rows that may receive keys (``whistle.keys.may_receive``: a cached lookup per row,
    no signature verified again for an unchanged entry), and whether an active one was left
    out for not matching its signed entry."""
    trusted = [r for r in rows if instancekeys.may_receive(r, signing_public)]
    return trusted, len(trusted) < sum(1 for r in rows if r.state == instancekeys.ACTIVE)


def _excluded(session: Session, sub: Submission) -> tuple[str, ...]:
    """The reviewers the reporter excluded and, when the concern says whom it is about
    (issue 25), every account whose own address is that one: a concern is never routed to,
    counted for or mailed about the person it names, whether or not the reporter thought
    to exclude them (DESIGN promise 3). The address is compared normalised, in memory."""
    if sub.about is None:
        return sub.exclude_reviewers
    from whistle.cases import about

    named = [rid for rid, email in session.execute(select(Reviewer.id, Reviewer.email))
             if about.normalise_email(email) == sub.about.email]
    return tuple(dict.fromkeys([*sub.exclude_reviewers, *sorted(named)]))


def _seal(session: Session, keys: InstanceKeys, settings: Settings, sub: Submission,
          today: dt.date, idempotency_key: bytes | None, preset: Any = None) -> _Sealed:
    """``preset``: a held concern's reference, token lookup and reporter key
    (whistle.cases.escrow.Preset), kept when it is released."""
    active = _active_reviewers(session)
    trusted, lost = _trusted(active, keys.signing_public)
    excluded = _excluded(session, sub)
    need = routing.Need(sub.category, sub.unit, sub.about_senior, frozenset(excluded))
    candidates = _candidates(session, trusted)
    route = routing.route(need, candidates, settings.min_reviewers)
    # From the same read: the escalation reviewers, whose copies are withheld until the case
    # escalates (whistle.cases.escalation; never assigned, listed, counted or mailed before).
    standby = routing.escalation_reviewers(need, candidates, route.reviewer_ids,
                                           settings.escalation_reviewers)
    if lost:  # a concern that loses a reviewer this way is under-routed: administrators look
        route = routing.Route(route.reviewer_ids, True, [*route.reasons, UNVERIFIED])
    reviewers = {r.id: r for r in trusted}  # route only picks among these
    case_ref = preset.case_ref if preset else new_case_ref()
    token, entropy = tokens.new_token()
    ck = casekeys.CaseKeys.fresh()
    concern = dict(
        id=case_ref, category=sub.category, unit=sub.unit, about_senior=sub.about_senior,
        status=workflow.RECEIVED, created=today,
        # The category's clock (whistle.cases.clocks): acknowledge_by, ack_clock, and
        # feedback_by, owed from submission (Directive 2019/1937 Art. 9(1)(f)) from the end
        # of the acknowledgement window; acknowledging moves it (workflow).
        **clocks.deadlines_at_intake(session, settings, sub.category, today),
        under_routed=route.under_routed,
        details_ct=crypto.seal(ck.case, sub.details.encode(), casekeys.part(case_ref, "details")),
        identity_ct=None,  # sealed apart under its own key (whistle.cases.identity)
        token_lookup=(preset.token_lookup if preset
                      else tokens.lookup_id(keys.token_pepper, entropy)),
        idempotency=(crypto.keyed_hash(keys.index_pepper, "idempotency", idempotency_key)
                     if idempotency_key else None),
    )
    wrapped: list[dict[str, Any]] = []
    for rid in route.reviewer_ids:
        wrapped += casekeys.wrapped_rows(case_ref, ck, "reviewer", rid, reviewers[rid].public_key)
    for rid in standby:  # a reviewer's copy, stored withheld
        wrapped += casekeys.wrapped_rows(case_ref, ck, "reviewer", rid, reviewers[rid].public_key,
                                         stored_as=casekeys.ESCALATION)
    wrapped += casekeys.wrapped_rows(case_ref, ck, "recovery", "org", keys.recovery_public)
    reporter_public = (preset.reporter_public if preset
                       else crypto.reporter_keypair(entropy, keys.reporter_pepper).public)
    wrapped += casekeys.wrapped_rows(case_ref, ck, "reporter", "reporter", reporter_public,
                                     thread_only=True)
    return _Sealed(case_ref, token, ck, route, reviewers, concern, wrapped,
                   [tuple(r)[:-1] for r in active],
                   [casekeys.exclusion_tag(keys.index_pepper, case_ref, rid)
                    for rid in excluded], excluded,
                   *proof.at_intake(keys, sub, case_ref, today, ck, [
                       (rid, reviewers[rid].public_key) for rid in [*route.reviewer_ids,
                                                                    *standby]]))


def submit(session: Session, keys: InstanceKeys, settings: Settings, sub: Submission,
           idempotency_key: bytes | None = None, now: dt.datetime | None = None,
           on_sealed: Callable[[Session], None] | None = None,
           on_stored: OnStored | None = None) -> Receipt:
    """Store a concern, sealed for its reviewers and the recovery key, in one transaction.

    Never rejects for lack of reviewers: an under-routed concern is stored for
    whoever is eligible plus the recovery key, and administrators are alerted.
    The returned token exists nowhere else; only its keyed hash is stored.

    Routing and sealing (the hybrid KEM work) run before the write transaction, which
    ``db.take_write_lock`` starts (in a ``WRITE_WITH_LOCK`` unit on SQLite it ends the
    reads and takes the database's write lock). Then the eligible reviewers are read
    again and, if anything routing or sealing used changed meanwhile, the concern is
    routed and sealed again there. So the lock is held for the inserts and the commit
    only, and two workers seal side by side.

    The first concern stored seals the roster, in its own transaction; ``on_sealed`` (the
    web layer passes whistle.people.roster's) then logs it, in that transaction too.
    ``on_stored(session, case_ref, case keys, today)`` adds to the concern's transaction
    (an operator's filing, whistle.cases.oral).
    """
    now = now or utcnow()
    today = now.date()
    if sub.escrow:  # held until someone else names the same person (whistle.cases.escrow)
        from whistle.cases import escrow

        return escrow.hold(session, keys, settings, sub, idempotency_key, now, on_sealed,
                           filed_for=on_stored is not None)
    sealed = _seal(session, keys, settings, sub, today, idempotency_key)
    db.take_write_lock(session)
    if idempotency_key is not None and replay(session, keys, idempotency_key) is not None:
        raise AlreadySubmitted()
    if [tuple(r) for r in _ROUTED.all(session.connection(), {})] != sealed.snapshot:
        sealed = _seal(session, keys, settings, sub, today, idempotency_key)
    if on_stored is None:
        return _store(session, settings, sub, sealed, today, on_sealed, keys)
    receipt = _store(session, settings, sub, sealed, today, on_sealed, keys, commit=False)
    on_stored(session, receipt.case_ref, sealed.keys, today)  # in the same transaction
    session.commit()
    return receipt


def _store(session: Session, settings: Settings, sub: Submission, sealed: _Sealed,
           today: dt.date, on_sealed: Callable[[Session], None] | None = None,
           keys: InstanceKeys | None = None, commit: bool = True) -> Receipt:
    """The write: Core inserts, one statement per table, while the lock is held.
    ``commit=False``: a held concern released inside another's transaction (escrow)."""
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
    session.add_all(sealed.proof_rows)  # the identity apart and the receipt (issue 22)
    from whistle.cases import sent  # the reporter's own copy, which their token opens

    sent.keep(session, case_ref, sealed.keys.thread, sub.details, sub.attachments)
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
    if route.under_routed:  # never to an administrator the reporter excluded (DESIGN promise 3)
        notify.queue_many(session, list(session.scalars(select(Reviewer.email).where(
            Reviewer.is_admin.is_(True), Reviewer.active.is_(True),
            Reviewer.id.not_in(sealed.excluded)))), "admin_attention")
    if not sub.roster_sealed and options.put_once(
            session, options.ROSTER_SEALED, {"at": day.date().isoformat(), "by": "first_concern"}):
        if on_sealed is not None:
            on_sealed(session)
    if sub.about is not None and keys is not None:  # links; releases held concerns (escrow)
        from whistle.cases import escrow

        escrow.on_stored(session, keys, settings, sub, case_ref, sealed.keys.case, today)
    registry.register(session, case_ref, today)  # last: PostgreSQL orders appends till COMMIT
    if commit:
        session.commit()
    return Receipt(case_ref, sealed.token, concern["status"], len(route.reviewer_ids),
                   concern["acknowledge_by"], route.under_routed, notes,
                   receipt=sealed.receipt)


def replay(session: Session, keys: InstanceKeys, idempotency_key: bytes) -> Concern | None:
    """The concern already stored under this idempotency key, if any."""
    tag = crypto.keyed_hash(keys.index_pepper, "idempotency", idempotency_key)
    return session.scalars(select(Concern).where(Concern.idempotency == tag)).first()
