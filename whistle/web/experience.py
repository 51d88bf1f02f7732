"""Small pieces of issue 21 that the reporter and reviewer pages call: the reporter's own
copy of what they sent, the inbox's new-activity markers, and the confirmation step that
every consequential action takes on the pages (without JavaScript: a page that repeats
the choice and asks again)."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, url_for
from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from werkzeug.wrappers import Response

from whistle import i18n
from whistle.cases import activity, reading, reporter, sent, workflow
from whistle.crypto import CryptoError
from whistle.store import db
from whistle.store.models import Reviewer

# A form posted with ``step=ask`` comes back as a confirmation page first.
ASK = "ask"


def sent_copy(view: reporter.ReporterView) -> dict[str, Any] | None:
    """What the reporter sent (their concern, their files), or None if it cannot be read now."""
    try:
        return sent.read_back(db.session(), view.case.id, view.thread_key)
    except (OperationalError, CryptoError):
        return None


def wants_confirmation(form: dict[str, Any]) -> bool:
    return form.get("step") == ASK


def confirm_page(template: str, **context: Any) -> tuple[str, int]:
    """The page that repeats a consequential choice and asks for it again."""
    return render_template(template, **context), 200


def inbox_activity(reviewer_id: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
    return activity.since_seen(db.session(), reviewer_id, [c["case_ref"] for c in cases])


# -- the reviewer's consequential actions, asked again before they happen ------------------


def _back(case_ref: str) -> str:
    return url_for("reviewer.case", case_ref=case_ref) + "#actions"


def _ask(case_ref: str, action: str, heading: str, explanation: str, yes: str,
         fields: dict[str, Any], facts: list[tuple[str, str]]) -> tuple[str, int]:
    return confirm_page("reviewer/confirm.html", me=g.signed.reviewer, case_ref=case_ref,
                        action=action, heading=heading, explanation=explanation, yes=yes,
                        fields={k: v for k, v in fields.items() if v}, facts=facts,
                        back=_back(case_ref))


def _refuse(case_ref: str, message: str) -> Response:
    flash(message, "error")
    return redirect(_back(case_ref))


def confirm_transition(case_ref: str, data: dict[str, Any]) -> Any:
    """Closing (proposing or confirming) and reopening, asked once more."""
    concern = reading.assigned_case(db.session(), g.signed.reviewer_id, case_ref)
    action = url_for("reviewer.transition", case_ref=concern.id)
    to, outcome = data.get("to"), data.get("outcome")
    if to == workflow.CLOSED and concern.status == workflow.CLOSURE_PROPOSED:
        return _ask(concern.id, action, gettext("Confirm closure?"), gettext(
            "The case closes with the outcome below, and the reporter gets the feedback that "
            "was proposed with it. It can be reopened later, with a reason."),
            gettext("Yes, close the case"), {"to": to},
            [(gettext("Outcome"), i18n.label(i18n.OUTCOME_LABELS, concern.proposed_outcome))])
    if to == workflow.CLOSED:
        if outcome not in workflow.OUTCOMES:
            return _refuse(concern.id, gettext("Choose an outcome before proposing closure."))
        facts = [(gettext("Outcome"), i18n.label(i18n.OUTCOME_LABELS, outcome))]
        if data.get("feedback"):
            facts.append((gettext("Feedback for the reporter"), data["feedback"]))
        return _ask(concern.id, action, gettext("Propose closing this case?"), gettext(
            "A different reviewer of the case must confirm before it closes. The reporter "
            "sees the outcome and the feedback only then."), gettext("Yes, propose closure"),
            {"to": to, "outcome": outcome, "feedback": data.get("feedback")}, facts)
    return _ask(concern.id, action, gettext("Reopen this case?"), gettext(
        "The case is open again and the reporter sees that it was reopened."),
        gettext("Yes, reopen"), {"to": to, "note": data.get("note")},
        [(gettext("Reason for reopening"), data.get("note") or "")])


def confirm_share(case_ref: str, reviewer_id: Any) -> Any:
    concern = reading.assigned_case(db.session(), g.signed.reviewer_id, case_ref)
    who = (db.session().get(Reviewer, reviewer_id)
           if isinstance(reviewer_id, str) and 0 < len(reviewer_id) <= 64 else None)
    if who is None:
        return _refuse(concern.id, gettext("Choose the reviewer to share the case with."))
    return _ask(concern.id, url_for("reviewer.share", case_ref=concern.id),
                gettext("Share this case with %(name)s?", name=who.name), gettext(
                    "Once another reviewer of the case approves, %(name)s can read all of it: "
                    "the concern, the files, the conversation and the internal notes.",
                    name=who.name), gettext("Yes, propose sharing"),
                {"reviewer_id": who.id}, [])


def confirm_recusal(case_ref: str, reason: Any) -> Any:
    concern = reading.assigned_case(db.session(), g.signed.reviewer_id, case_ref)
    return _ask(concern.id, url_for("reviewer.recuse", case_ref=concern.id),
                gettext("Step off this case?"), gettext(
                    "You lose access to this case at once and cannot undo it yourself; another "
                    "reviewer takes your place."), gettext("Yes, step off this case"),
                {"reason": reason if isinstance(reason, str) else ""},
                [(gettext("Your reason"), reason if isinstance(reason, str) else "")])


def trail_names(case: dict[str, Any]) -> dict[str, str]:
    """Names for every reviewer the case's trail and notes mention (a reviewer who stepped
    off is no longer among the case's reviewers, but the trail still names them)."""
    ids = {e["actor"] for e in case.get("events", [])}
    ids |= {e["data"].get("reviewer") for e in case.get("events", [])
            if isinstance(e.get("data"), dict)}
    ids |= {m.get("reviewer_id") for m in case.get("notes", [])}
    wanted = sorted(i for i in ids if isinstance(i, str) and i not in ("system", "reporter"))
    if not wanted:
        return {}
    rows = db.session().execute(select(Reviewer.id, Reviewer.name).where(
        Reviewer.id.in_(wanted))).tuples().all()
    return dict(rows)
