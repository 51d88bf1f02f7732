"""Matching escrow (issue 25): "only if I am not the only one".

A reporter who names the person a concern is about (``about.email``, whistle.cases.about)
may hold it until someone else names the same person. A held concern is not a case: it is a
``held_concerns`` row, so it is in no inbox, count, list, mail, statistic or registry, and
no one can read it. Its whole submission is sealed under a random key, and that key is
stored twice:

- sealed under the *match key*, HKDF over an HMAC of the normalised address under the
  escrow pepper (a file in ``KEYS_DIR``, never in the database): derivable only by a request
  that carries the same address;
- wrapped for the reporter's key pair, which their token derives: for "send it now" and
  for replacing the token.

When a concern (held or not) names an address with held concerns, every one of them is
unsealed in that request, deleted as held and stored as a case by the usual rules
(``intake._seal``: its own exclusions, about-a-senior to an independent reviewer), in the
same transaction as the concern that matched them. Deadlines start at release. Their
reporters' timelines say ``matched``. A held concern arriving when the address was named
before is released at once (``matched`` as well).

What a submitting reporter is told never depends on a match (the matching oracle): a
held concern is always answered ``201 {"status": "escrowed", "reviewer_count": 0}``, and a
concern sent at once gets the usual answer and no ``matched`` event. A reporter who held
learns of a match from their own timeline, as the issue asks; probing that way costs a real
concern sent to reviewers, linked to the ones it matched. See docs/matching-escrow.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from whistle import crypto, tokens
from whistle.cases import about, audit, intake, receipts
from whistle.config import Settings
from whistle.errors import DomainError, InvalidInput, NotFound
from whistle.keys import InstanceKeys
from whistle.store import db
from whistle.store.models import ConcernAbout, HeldConcern, utcnow

HELD = "escrowed"  # the status a held concern shows
MATCHED = "matched"  # reporter event: released because someone else named the same person
RELEASED = "released"  # reporter event: the reporter sent their held concern on
WARN_DAYS = 60  # the status page warns this long before a held concern expires
# PostgreSQL: the advisory lock that orders holding and matching ("whes"); on SQLite the
# write lock a submission holds already does.
_LOCK = 0x77686573


@dataclass(frozen=True)
class Preset:
    """What a released case keeps of its held concern (``intake._seal``)."""

    case_ref: str
    token_lookup: bytes
    reporter_public: bytes


class Held(DomainError):
    """The token opened a held concern, which no reporter call but the status check, send
    now, withdraw and a new token can act on (409 ``escrowed``)."""

    code, status = "escrowed", 409
    message = ("this concern is held until someone else raises a concern about the same "
               "person: send it now or withdraw it")

    def __init__(self, held: HeldView) -> None:
        super().__init__()
        self.held = held


@dataclass
class HeldView:
    """A held concern its token opened."""

    row: HeldConcern
    entropy: bytes

    def content_key(self, keys: InstanceKeys) -> bytes:
        private = crypto.reporter_private_key(self.entropy, keys.reporter_pepper)
        return crypto.unwrap_key(self.row.key_by_reporter, private,
                                 _context(self.row.id, "reporter"))


def _context(case_ref: str, name: str) -> str:
    return f"escrow:{case_ref}:{name}"


def _lock(session: Session) -> None:
    db.serialize_appends(session, _LOCK)


def _named_before(session: Session, tag: bytes) -> bool:
    return (session.scalar(select(func.count()).select_from(ConcernAbout)
                           .where(ConcernAbout.match_tag == tag)) or 0) + (
        session.scalar(select(func.count()).select_from(HeldConcern)
                       .where(HeldConcern.match_tag == tag)) or 0) > 0


def _payload(sub: intake.Submission, receipt: str) -> bytes:
    return json.dumps({
        "category": sub.category, "details": sub.details, "unit": sub.unit,
        "about_senior": sub.about_senior, "exclude_reviewers": list(sub.exclude_reviewers),
        "identity": sub.identity.__dict__ if sub.identity else None,
        "about": sub.about.as_dict(), "receipt": receipt,
    }).encode()


def _submission(payload: bytes, arrival: str) -> intake.Submission:
    data = json.loads(payload)
    identity = data["identity"]
    return intake.Submission(
        category=data["category"], details=data["details"], unit=data["unit"],
        about_senior=data["about_senior"], exclude_reviewers=tuple(data["exclude_reviewers"]),
        identity=intake.Identity(**identity) if identity else None,
        about=about.About(**data["about"]), arrival=arrival)


def held_receipt(case_ref: str, token: str, receipt: str | None) -> intake.Receipt:
    """The answer to every held submission, matched at once or not (no oracle)."""
    return intake.Receipt(case_ref, token, HELD, 0, None, False,  # type: ignore[arg-type]
                          receipt=receipt)


def hold(session: Session, keys: InstanceKeys, settings: Settings, sub: intake.Submission,
         idempotency_key: bytes | None, now: dt.datetime, on_sealed: Any = None,
         filed_for: bool = False) -> intake.Receipt:
    """Hold a concern until someone else names the same person (one transaction). If the
    address was named before, it is sent at once, with the same answer. ``filed_for``: an
    operator files it (whistle.cases.oral): refused, as the operator holds the token until
    the reporter replaces it and could learn of a match."""
    if filed_for:
        raise InvalidInput("a concern filed on a reporter's behalf cannot be held", "escrow")
    if sub.attachments:
        raise InvalidInput("a held concern cannot carry files: add them once it is sent on",
                           "attachment")
    today = now.date()
    tag = about.match_tag(settings, sub.about.email)
    idem = (crypto.keyed_hash(keys.index_pepper, "idempotency", idempotency_key)
            if idempotency_key is not None else None)
    db.take_write_lock(session)
    _lock(session)
    if idem is not None and (intake.replay(session, keys, idempotency_key or b"") is not None
                             or session.scalar(select(HeldConcern.id).where(
                                 HeldConcern.idempotency == idem)) is not None):
        raise intake.AlreadySubmitted()
    if _named_before(session, tag):
        sub = dataclasses.replace(sub, escrow=False, arrival=MATCHED)
        sealed = intake._seal(session, keys, settings, sub, today, idempotency_key)
        receipt = intake._store(session, settings, sub, sealed, today, on_sealed, keys)
        return held_receipt(receipt.case_ref, receipt.token, receipt.receipt)
    case_ref = intake.new_case_ref()
    token, entropy = tokens.new_token()
    reporter_public = crypto.reporter_keypair(entropy, keys.reporter_pepper).public
    content = crypto.random_key()
    # Signed as any concern's (whistle.cases.receipts); kept inside the sealed payload.
    signed = receipts.issue(keys.signing_key, case_ref, today, sub.details, [])
    session.execute(insert(HeldConcern), [{
        "id": case_ref, "match_tag": tag,
        "token_lookup": tokens.lookup_id(keys.token_pepper, entropy), "idempotency": idem,
        "created": today, "expires": today + dt.timedelta(days=settings.escrow_days),
        "reporter_public": reporter_public,
        "key_by_match": crypto.seal(about.match_key(settings, sub.about.email), content,
                                    _context(case_ref, "match")),
        "key_by_reporter": crypto.wrap_key(content, reporter_public,
                                           _context(case_ref, "reporter")),
        "payload_ct": crypto.seal(content, _payload(sub, signed),
                                  _context(case_ref, "payload")),
    }])
    session.commit()
    return held_receipt(case_ref, token, signed)


def on_stored(session: Session, keys: InstanceKeys, settings: Settings,
              sub: intake.Submission, case_ref: str, case_key: bytes, today: dt.date) -> None:
    """A case naming someone was stored (caller's transaction, ``intake._store``): record
    whom it is about, its arrival from escrow, and release every concern held about them."""
    tag = about.store(session, settings, case_ref, case_key, sub.about)
    day = dt.datetime.combine(today, dt.time())
    if sub.arrival is not None:
        audit.record(session, case_ref, sub.arrival,
                     "reporter" if sub.arrival == RELEASED else "system", day)
    _lock(session)
    held = [(r.id, r.token_lookup, r.reporter_public, r.key_by_match, r.payload_ct)
            for r in session.scalars(select(HeldConcern).where(HeldConcern.match_tag == tag)
                                     .order_by(HeldConcern.id))]
    if not held:
        return
    session.execute(delete(HeldConcern).where(HeldConcern.id.in_([h[0] for h in held])))
    key = about.match_key(settings, sub.about.email)
    for ref, lookup, public, key_by_match, payload_ct in held:
        content = crypto.open_sealed(key, key_by_match, _context(ref, "match"))
        _release(session, keys, settings, Preset(ref, lookup, public),
                 crypto.open_sealed(content, payload_ct, _context(ref, "payload")), MATCHED,
                 today)


def _release(session: Session, keys: InstanceKeys, settings: Settings, preset: Preset,
             payload: bytes, arrival: str, today: dt.date, on_sealed: Any = None) -> None:
    """Store a held concern as a case (caller's transaction; its held row already gone)."""
    sub = _submission(payload, arrival)
    sealed = intake._seal(session, keys, settings, sub, today, None, preset)
    intake._store(session, settings, sub, sealed, today, on_sealed, keys, commit=False)


# -- the reporter's side: the token opens a held concern --------------------------------


def find(session: Session, keys: InstanceKeys, token_text: Any) -> HeldView | None:
    """The held concern a token opens, or None (after the case lookup missed)."""
    if not isinstance(token_text, str):
        return None
    entropy = tokens.parse(token_text)
    if entropy is None:
        return None
    row = session.scalars(select(HeldConcern).where(
        HeldConcern.token_lookup == tokens.lookup_id(keys.token_pepper, entropy))).first()
    return HeldView(row, entropy) if row is not None else None


def status_json(view: HeldView, keys: InstanceKeys, today: dt.date | None = None
                ) -> dict[str, Any]:
    """What the status check shows of a held concern: no deadlines run, nothing to read;
    the signed receipt given at submission (from the sealed payload, which the token opens)."""
    row = view.row
    today = today or utcnow().date()
    payload = json.loads(crypto.open_sealed(view.content_key(keys), row.payload_ct,
                                            _context(row.id, "payload")))
    return {"receipt": payload.get("receipt"),"case_ref": row.id, "status": HELD, "created": row.created.isoformat(),
            "acknowledge_by": None, "feedback_by": None, "overdue": False,
            "events": [{"at": row.created.isoformat(), "type": HELD}], "messages": [],
            "escrow": {"expires": row.expires.isoformat(),
                       "expiring_soon": row.expires - today <= dt.timedelta(days=WARN_DAYS)}}


def release_now(session: Session, keys: InstanceKeys, settings: Settings, view: HeldView,
                now: dt.datetime | None = None, on_sealed: Any = None) -> str:
    """The reporter sends their held concern on now: routed as usual; it also releases any
    other concern held about the same person (it names them). Returns the case reference."""
    today = (now or utcnow()).date()
    row = view.row
    payload = crypto.open_sealed(view.content_key(keys), row.payload_ct,
                                 _context(row.id, "payload"))
    db.take_write_lock(session)
    _lock(session)
    preset = Preset(row.id, row.token_lookup, row.reporter_public)
    gone = session.connection().execute(delete(HeldConcern).where(HeldConcern.id == row.id))
    if gone.rowcount != 1:
        raise NotFound()  # withdrawn or released meanwhile
    _release(session, keys, settings, preset, payload, RELEASED, today, on_sealed)
    session.commit()
    return preset.case_ref


def withdraw(session: Session, view: HeldView) -> None:
    """Withdrawn: the held row, and with it every copy of its key, is deleted (crypto-shred;
    SQLite's ``secure_delete`` overwrites the freed pages). The token then opens nothing."""
    session.execute(delete(HeldConcern).where(HeldConcern.id == view.row.id))
    session.commit()


def rotate_token(session: Session, keys: InstanceKeys, view: HeldView) -> str:
    """A new token for a held concern: the key re-wrapped for the new reporter key pair."""
    content = view.content_key(keys)
    token, entropy = tokens.new_token()
    public = crypto.reporter_keypair(entropy, keys.reporter_pepper).public
    row = view.row
    row.token_lookup = tokens.lookup_id(keys.token_pepper, entropy)
    row.reporter_public = public
    row.key_by_reporter = crypto.wrap_key(content, public, _context(row.id, "reporter"))
    session.commit()
    return token


# -- administration ------------------------------------------------------------------


def expire(session: Session, today: dt.date) -> int:
    """Delete held concerns past ``ESCROW_DAYS`` (``flask deadlines``); how many went."""
    gone = session.connection().execute(delete(HeldConcern).where(
        HeldConcern.expires <= today)).rowcount
    session.commit()
    return int(gone or 0)


def held_count(session: Session) -> int | None:
    """How many concerns are held, as administrators may see it: suppressed (None) when
    under the statistics threshold."""
    from whistle.cases import stats

    return stats.shown(session.scalar(select(func.count()).select_from(HeldConcern)) or 0)
