"""What a reviewer does to a case: move it through the workflow, write to the reporter or a note."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle.cases import audit, notices, workflow
from whistle.cases.reading import Reader, case_keys
from whistle.errors import InvalidInput
from whistle.store.models import (
    Message,
    utcnow,
)


def transition(session: Session, signed: Reader, settings: Settings, case_ref: Any,
               to: Any, note: Any = None, outcome: Any = None, feedback: Any = None,
               now: dt.datetime | None = None) -> str:
    from whistle import validation

    if not isinstance(to, str):
        raise InvalidInput("to must be one of acknowledged, investigating, closed", "to")
    note_t = validation.text(note, "note", settings.max_details_chars)
    feedback_t = validation.text(feedback, "feedback", settings.max_details_chars)
    if outcome is not None and not isinstance(outcome, str):
        raise InvalidInput("outcome must be text", "outcome")
    concern, keys = case_keys(session, signed, case_ref)
    now = now or utcnow()
    new = workflow.transition(session, concern, signed.reviewer_id, to, keys, settings, now,
                              note_t, outcome, feedback_t)
    notices.tell_reviewers(session, concern, besides=signed.reviewer_id)
    session.commit()
    return new


def post_message(session: Session, signed: Reader, settings: Settings, case_ref: Any,
                 body: Any, internal: bool = False, now: dt.datetime | None = None) -> Message:
    """A message to the reporter (thread key) or an internal note (case key)."""
    from whistle import validation

    text = validation.text(body, "body", settings.max_details_chars, required=True) or ""
    concern, keys = case_keys(session, signed, case_ref)
    now = now or utcnow()
    kind = "note" if internal else "message"
    msg = workflow.add_message(session, concern, keys.case if internal else keys.thread, kind,
                               "reviewer", signed.reviewer_id, text, now.date())
    audit.record(session, concern.id, "note" if internal else "reviewer_message",
                 signed.reviewer_id, now, {"message": msg.id})
    notices.tell_reviewers(session, concern, besides=signed.reviewer_id)
    session.commit()
    return msg


