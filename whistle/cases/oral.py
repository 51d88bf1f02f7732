"""Oral and assisted reporting (issue 24): a concern taken by phone, voicemail, in a meeting or
by letter, filed by an intake operator on the reporter's behalf, and the record the reporter
checks, corrects and agrees (EU Directive 2019/1937 Art. 9(2), 18(2)-(4)).

The concern itself goes through intake like any other (``whistle.cases.intake.submit``, with
``filing_hook`` as its ``on_stored``): routed, sealed, stored and clocked the same way. What
this module adds, in the same transaction:

- an ``oral_reports`` row: the channel, the recording consent, ``token_pending`` (the
  operator-issued token must be replaced before anything else, so that the operator cannot
  follow the case), and the transcript sealed with the *thread* key, so that the reporter (who
  holds only the thread key) can read back what was written down;
- a ``filed_by_operator`` event in the case's trail, with the channel. Which operator filed
  it is not recorded anywhere (docs/oral-reporting.md says why).

Afterwards the reporter agrees the record or sends corrections (``respond``), each correction
sealed with the thread key like a message; reviewers see the channel, the agreement and each
correction with its date (``reviewer_part``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from whistle import crypto, metadata, validation
from whistle.cases import audit, notices
from whistle.cases import keys as casekeys
from whistle.config import Settings
from whistle.errors import DomainError, InvalidInput
from whistle.store import db
from whistle.store.models import OralReport, TranscriptCorrection, new_id, utcnow
from whistle.store.prepared import PreparedQuery

CHANNELS = ("phone", "voicemail", "meeting", "letter")
WEB = "web"  # the channel reviewers see for a concern the reporter sent themselves
FILED = "filed_by_operator"  # the trail's event; actor: the role, never the person
OPERATOR_ROLE = "operator"
MAX_CORRECTIONS = 50  # per case: a reporter corrects a record, they do not chat here

# What counts as a recording: sniffed content, the part's declared type or the name's ending.
_RECORDING_ENDINGS = frozenset({"mp3", "wav", "m4a", "ogg", "oga", "opus", "flac", "webm",
                                "mp4", "m4v", "mov", "aac", "amr", "3gp", "wma", "aiff", "aif"})
_SNIFF_BYTES = 4096


class TokenChangeRequired(DomainError):
    """The token was issued by an intake operator and has not been replaced yet."""

    code, status = "token_change_required", 403
    message = ("this token was given to you by the person who took your concern: replace it "
               "with a new one before anything else")


class RecordingConsentRequired(InvalidInput):
    def __init__(self) -> None:
        super().__init__("a recording can be attached only with the reporter's recorded "
                         "consent (recording_consent: true)", "recording_consent",
                         "recording_consent_required", 400)


@dataclass(frozen=True)
class Filing:
    """The oral part of an operator's filing."""

    channel: str
    recording_consent: bool


def split_filing(data: Any) -> tuple[dict[str, Any], Filing]:
    """The operator's body -> (the concern for intake, the oral part). 400 on a bad channel."""
    if not isinstance(data, dict):
        raise InvalidInput("the concern must be a JSON object")
    channel = data.get("channel")
    if not isinstance(channel, str) or channel not in CHANNELS:
        raise InvalidInput("channel must be one of phone, voicemail, meeting, letter",
                           "channel")
    consent = validation.boolean(data.get("recording_consent"), "recording_consent")
    concern = {k: v for k, v in data.items() if k not in ("channel", "recording_consent")}
    return concern, Filing(channel, consent)


def is_recording(upload: Any) -> bool:
    """Whether a posted file part is (or claims to be) a sound or video recording."""
    declared = str(getattr(upload, "mimetype", "") or "")
    if declared.startswith(("audio/", "video/")):
        return True
    name = str(getattr(upload, "filename", "") or "")
    if metadata.extension(name) in _RECORDING_ENDINGS:
        return True
    stream = getattr(upload, "stream", None)
    if stream is None:
        return False
    stream.seek(0)
    head = stream.read(_SNIFF_BYTES)
    stream.seek(0)
    detected = metadata.sniff(head) or ""
    return detected.startswith(("audio/", "video/"))


def check_recordings(files: Sequence[Any], filing: Filing) -> None:
    """Refuse (400) a recording attached without the reporter's recorded consent."""
    if not filing.recording_consent and any(is_recording(f) for f in files):
        raise RecordingConsentRequired()


def _day(today: dt.date) -> dt.datetime:
    return dt.datetime.combine(today, dt.time())  # reporter-side time: the day only


def filing_hook(filing: Filing, transcript: str
                ) -> Callable[[Session, str, casekeys.CaseKeys, dt.date], None]:
    """Intake's ``on_stored``: the oral record, in the concern's own transaction."""

    def stored(session: Session, case_ref: str, keys: casekeys.CaseKeys, today: dt.date) -> None:
        session.add(OralReport(
            concern_id=case_ref, channel=filing.channel,
            recording_consent=filing.recording_consent, token_pending=True,
            transcript_ct=crypto.seal(keys.thread, transcript.encode(),
                                      casekeys.part(case_ref, "transcript")),
            agreed=False, agreed_on=None))
        audit.record(session, case_ref, FILED, OPERATOR_ROLE, _day(today),
                     {"channel": filing.channel,
                      "recording_consent": filing.recording_consent})
        session.flush()

    return stored


# -- the reporter's side ---------------------------------------------------------------------

# On every reporter call (the token gate): one primary-key read, outside any transaction in
# the status check (``db.single_read``), like the token lookup itself.
_STATE = PreparedQuery(select(
    OralReport.concern_id, OralReport.channel, OralReport.recording_consent,
    OralReport.token_pending, OralReport.agreed, OralReport.agreed_on,
    OralReport.transcript_ct).where(OralReport.concern_id == bindparam("cid")))
_COUNT = select(func.count()).select_from(TranscriptCorrection).where(
    TranscriptCorrection.concern_id == bindparam("cid"))
_REPLACED = (update(OralReport).where(OralReport.concern_id == bindparam("cid"))
             .values(token_pending=False))


def state(session: Session, case_ref: str) -> Any | None:
    """The case's oral record (a row of ``_STATE``), or None for a concern sent online."""
    rows = db.single_read(session, _STATE, {"cid": case_ref})
    return rows[0] if rows else None


def require_own_token(found: Any | None, replacing: bool) -> None:
    """Every reporter call but the replacement itself: 403 while the operator's token stands."""
    if found is not None and found.token_pending and not replacing:
        raise TokenChangeRequired()


def token_replaced(session: Session, case_ref: str) -> None:
    """The operator-issued token is being replaced (caller's transaction, before the
    replacement commits, so both happen or neither)."""
    session.execute(_REPLACED, {"cid": case_ref})


def reporter_part(session: Session, found: Any, thread_key: Callable[[], bytes]
                  ) -> dict[str, Any]:
    """``transcript`` for the reporter's status: agreed, how many corrections, the text."""
    text = crypto.open_sealed(thread_key(), found.transcript_ct,
                              casekeys.part(found.concern_id, "transcript")).decode()
    return {"transcript": {
        "agreed": bool(found.agreed),
        "agreed_on": found.agreed_on.isoformat() if found.agreed_on else None,
        "corrections": session.execute(_COUNT, {"cid": found.concern_id}).scalar_one(),
        "channel": found.channel, "text": text}}


def _corrections(value: Any, settings: Settings) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > 10:
        raise InvalidInput("corrections must be a text, or a list of up to 10 texts",
                           "corrections")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidInput("corrections must be a text, or a list of up to 10 texts",
                               "corrections")
        text = validation.text(item, "corrections", settings.max_details_chars)
        if text and text.strip():
            out.append(text)
    return out


def respond(session: Session, concern: Any, thread_key: bytes, agree: Any, corrections: Any,
            settings: Settings, now: dt.datetime | None = None) -> dict[str, Any]:
    """The reporter agrees the record or corrects it (or both: agreeing the record as
    corrected). Each correction sealed with the thread key; the trail says what was done (no
    content); the case's reviewers are told. Commits. 404 for a concern sent online."""
    from whistle.errors import NotFound

    if not isinstance(agree, bool):
        raise InvalidInput("agree must be true or false", "agree")
    texts = _corrections(corrections, settings)
    found = session.get(OralReport, concern.id)
    if found is None:
        raise NotFound("this concern was sent online: there is no record of a conversation "
                       "to check")
    today = (now or utcnow()).date()
    seq = session.execute(_COUNT, {"cid": concern.id}).scalar_one()
    if seq + len(texts) > MAX_CORRECTIONS:
        raise InvalidInput("too many corrections for one record", "corrections",
                           "too_many", 409)
    ids = []
    for text in texts:
        seq += 1
        cid = new_id()  # random, bound into the sealing context
        session.add(TranscriptCorrection(
            id=cid, concern_id=concern.id, seq=seq, created=today,
            body_ct=crypto.seal(thread_key, text.encode(),
                                casekeys.part(concern.id, f"correction:{cid}"))))
        ids.append(cid)
    found.agreed, found.agreed_on = agree, (today if agree else None)
    events: list[tuple[str, dict[str, Any]]] = [("transcript_corrected", {"correction": i})
                                                for i in ids]
    events.append(("transcript_agreed" if agree else "transcript_not_agreed", {}))
    for type_, data in events:
        audit.record(session, concern.id, type_, "reporter", _day(today), data)
    notices.tell_reviewers(session, concern)
    session.commit()
    return {"agreed": agree, "corrections": seq, "added": ids}


# -- the reviewers' side ---------------------------------------------------------------------

_CORRECTIONS = select(TranscriptCorrection.id, TranscriptCorrection.created,
                      TranscriptCorrection.body_ct).where(
    TranscriptCorrection.concern_id == bindparam("cid")).order_by(TranscriptCorrection.seq)


def reviewer_part(session: Session, case_ref: str, thread_key: bytes, present: bool = True
                  ) -> dict[str, Any]:
    """``channel`` and ``transcript`` for a reviewer's case view (``transcript`` null and
    ``channel`` "web" for a concern the reporter sent themselves). ``present=False``: the
    caller knows the case has no oral record (nothing is read)."""
    found = state(session, case_ref) if present else None
    if found is None:
        return {"channel": WEB, "transcript": None}
    corrections = [
        {"id": cid, "at": created.isoformat(),
         "body": crypto.open_sealed(thread_key, body_ct,
                                    casekeys.part(case_ref, f"correction:{cid}")).decode()}
        for cid, created, body_ct in session.execute(_CORRECTIONS, {"cid": case_ref})]
    return {"channel": found.channel, "filed_by": OPERATOR_ROLE,
            "recording_consent": bool(found.recording_consent),
            "transcript": {"agreed": bool(found.agreed),
                           "agreed_on": found.agreed_on.isoformat() if found.agreed_on else None,
                           "token_replaced": not found.token_pending,
                           "corrections": corrections}}
