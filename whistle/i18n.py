"""Languages: English, Polish and Arabic (right to left), chosen per page without a cookie.

A page's language comes from its ``lang`` query parameter, else from the
browser's Accept-Language, else English. Nothing remembers the choice: every
URL that ``url_for`` builds during a request that carried ``lang`` carries it
too (links, form actions, redirects), so the language follows the reporter
through the journey and is forgotten when they leave. No cookie, no session.

Catalogues live in ``whistle/translations/<lang>/LC_MESSAGES/messages.po``
with their compiled ``.mo`` beside them (committed, so a fresh checkout runs
without a build step; ``tests/test_i18n.py`` fails when a ``.mo`` is stale
or a message is untranslated). See ``whistle/translations/README.md``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import Flask, has_request_context, request
from flask_babel import Babel, format_date, get_locale
from flask_babel import lazy_gettext as _l

from whistle import wording
from whistle.store.models import today


@dataclass(frozen=True)
class Language:
    code: str
    name: str  # in the language itself, as a reader looks for it
    direction: str  # "ltr" or "rtl"


LANGUAGES: dict[str, Language] = {
    "en": Language("en", "English", "ltr"),
    "pl": Language("pl", "Polski", "ltr"),
    "ar": Language("ar", "العربية", "rtl"),
}
DEFAULT = "en"
# Dates in words, day first in every language: "14 March 2026", "14 marca 2026".
DATE_PATTERN = "d MMMM y"


def requested() -> str | None:
    """The language this request asked for in its ``lang`` parameter, if we ship it."""
    if not has_request_context():
        return None
    code = request.args.get("lang")
    return code if code in LANGUAGES else None


def select_locale() -> str:
    return requested() or request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT


def current() -> Language:
    locale = get_locale() if has_request_context() else None
    return LANGUAGES.get(str(locale.language) if locale else DEFAULT, LANGUAGES[DEFAULT])


def _keep_lang(endpoint: str, values: dict[str, Any]) -> None:
    """url_for(...) during a request that chose a language keeps that choice in the URL."""
    code = requested()
    if code and "lang" not in values and endpoint != "static" and not endpoint.startswith("api."):
        values["lang"] = code


def long_date(value: Any) -> str:
    """A date in words in the page's language: ``14 March 2026``. Accepts ISO text too."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        value = value.date()
    return str(format_date(value, DATE_PATTERN))


def weekday(value: Any) -> str:
    """A date's weekday in the page's language (deadlines say it: issue 23), or ``""``."""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError:
            return ""
    if isinstance(value, dt.datetime):
        value = value.date()
    return str(format_date(value, "EEEE")) if isinstance(value, dt.date) else ""


def short_date(value: Any) -> str:
    """A compact date for tables: ``14 Mar 2026``."""
    if isinstance(value, str) and value:
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    return str(format_date(value, "d MMM y")) if value else ""


def iso_date(value: Any) -> str:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()[:10]
    return str(value or "")[:10]


# -- words for codes the domain uses ------------------------------------------------------

STATUS_LABELS = {
    "received": _l("Received"),
    "acknowledged": _l("Acknowledged"),
    "investigating": _l("Being looked into"),
    "closure_proposed": _l("Closing: waiting for a second reviewer"),
    "closed": _l("Closed"),
    "escrowed": _l("Held: waiting for a match"),  # issue 25
}
OUTCOME_LABELS = {
    "substantiated": _l("Substantiated: the concern was found to be true"),
    "partially_substantiated": _l("Partly substantiated: some of the concern was found to be true"),
    "not_substantiated": _l("Not substantiated: the concern could not be shown to be true"),
    "referred": _l("Referred to another body"),
    "withdrawn": _l("Withdrawn"),
}
# What the reporter's timeline says for each event (see workflow.REPORTER_EVENTS).
EVENT_LABELS = {
    "received": _l("Your concern was received."),
    "acknowledged": _l("The reviewers acknowledged your concern."),
    "investigating": _l("The reviewers started looking into your concern."),
    "closure_proposed": _l("A reviewer proposed closing the case; a second reviewer must agree."),
    "closure_rejected": _l("The proposal to close was turned down: the work goes on."),
    "closed": _l("The case was closed."),
    "reopened": _l("The case was reopened."),
    "reviewer_message": _l("The reviewers sent you a message."),
    "reporter_message": _l("You sent a message."),
    "feedback": _l("The reviewers gave you feedback."),
    "acknowledge_overdue": _l("The date to acknowledge your concern passed. It was escalated."),
    "feedback_overdue": _l("The date for feedback passed. It was escalated."),
    "escalated": _l("Your concern was passed to more independent reviewers, who can now read "
                    "it and act on it."),
    "token_replaced": _l("You replaced your token."),
    "attachment_added": _l("You added files."),
    "referred": _l("Your concern was referred to an outside body:"),  # + its name (issue 23)
    # Matching escrow (issue 25, whistle.cases.escrow).
    "escrowed": _l("Your concern is held until someone else raises a concern about the same "
                   "person."),
    "matched": _l("Someone else raised a concern about the same person, so your concern was "
                  "sent to the reviewers."),
    "released": _l("You chose to send your held concern to the reviewers now."),
    # Your identity (issue 22, whistle.cases.identity_release).
    "identity_added": _l("You gave your name."),
    "identity_released": _l("Two reviewers agreed to open your name."),
}
# The default categories and units (config.DEFAULT_*): administrators' own words stay as typed.
DEFAULT_TEXTS = [
    _l("Safeguarding of a child or vulnerable adult"),
    _l("An allegation that an adult who works with children has harmed a child, or may have"),
    _l("Conduct of a colleague or manager"),
    _l("Patient or pupil safety"),
    _l("Fraud, bribery or misuse of money"),
    _l("Something else"),
    _l("Children's services"),
    _l("Education"),
    _l("Health"),
    _l("Adult social care"),
]
# Fixed English texts from views and the domain (flash messages, errors), translated as they
# are: listed here so that extraction finds them; ``translate`` looks them up by their text.
KNOWN_TEXTS = [
    _l("Status updated."),
    _l("Message sent to the reporter."),
    _l("Note saved."),
    _l("Case shared."),
    _l("Opening the identity was requested: another reviewer of this case must approve it."),
    _l("Request approved."),
    _l("Request rejected."),
    _l("Sharing proposed: another reviewer of this case must approve it."),
    _l("Sharing rejected."),
    _l("You have stepped off the case; another reviewer has it now."),
    _l("wrong email or password"),
    _l("too many failed sign-ins: wait and try again"),
    _l("This form expired or did not come from Whistle. Go back, reload and send it again."),
    _l("Whistle cannot reach its database just now. Nothing you sent was saved. "
       "Please keep your text and try again in a few minutes."),
    _l("Your concern was NOT saved: the database is unavailable. Please keep your text and "
       "try again shortly."),
    _l("Whistle is not ready: its key material is missing."),
    _l("Something went wrong."),
    _l("this check could not be read: go back and try again"),
    _l("The report form now offers these categories and units."),
]
# Domain messages that reporters meet, reworded plainly (the domain's words are terse).
DOMAIN_TEXTS = {
    "unknown category": _l(
        "That is an unknown category: choose what your concern is about from the list."),
    "unknown unit": _l(
        "That is an unknown unit: choose a part of the organisation from the list, or none."),
    "category is required": _l("Choose what your concern is about."),
    "details is required": _l("Write your concern in the box."),
    "identity.name is required": _l("Write your name, or choose to stay anonymous."),
    "unknown reviewer in exclude_reviewers": _l(
        "One of the people you excluded is not a reviewer any more. Check the list again."),
    "body is required": _l("Write your message in the box."),
    "this is not a Whistle receipt": _l(
        "This is not a Whistle receipt. Paste the whole receipt, from its first line to its "
        "last."),
    "receipt must be the receipt's text": _l("Paste the receipt in the box."),
    "No case matches this token. Check the 12 words.": _l(
        "No report matches these words. Check the 12 words and try again."),
    "too many attempts: wait and try again": _l(
        "Too many tries. Wait a minute, then try again."),
    "Your message was sent.": _l("Your message was sent."),
    "Your files were added.": _l("Your files were added."),
    "Your message and files were sent.": _l("Your message and files were sent."),
}


# What happened to each attached file (whistle.cases.attachments / whistle.metadata notes).
FILE_NOTES = [
    _l("kept exactly as sent"),
    _l("hidden information removed"),
    _l("hidden document information removed (pictures inside a PDF may still carry their own)"),
    _l("kept as sent: hidden information cannot be removed from this kind of file"),
    _l("kept as sent: hidden information cannot be removed from animated or multi-page images"),
    _l("kept as sent: hidden information can only be removed from JPEG, PNG, GIF, WebP, TIFF "
       "and BMP images, and PDF documents"),
]


# The reviewers' audit trail names every event in a neutral voice (the reporter's
# timeline, EVENT_LABELS, speaks to the reporter).
TRAIL_LABELS = {
    # Referral, erasure and check-ins (issue 23).
    "referral_proposed": _l("Referral to an outside agency proposed"),
    "referral_approved": _l("Referral approved: package built for the agency"),
    "referral_rejected": _l("Referral rejected"),
    "referral_package_downloaded": _l("Referral package downloaded"),
    "referred": _l("Reporter told of the referral"),
    "erasure_proposed": _l("Erasure proposed"),
    "erased": _l("Erased by two reviewers"),
    "erasure_rejected": _l("Erasure rejected"),
    "detriment_linked": _l("Opened from a check-in after another case closed"),
    "received": _l("Concern received"),
    "assigned": _l("Reviewer assigned"),
    "under_routed": _l("Too few eligible reviewers: administrators alerted"),
    "opened": _l("Opened by a reviewer"),
    "acknowledged": _l("Acknowledged"),
    "investigating": _l("Investigation started"),
    "closure_proposed": _l("Closure proposed"),
    "closure_rejected": _l("Closure rejected"),
    "closed": _l("Closed"),
    "reopened": _l("Reopened"),
    "reviewer_message": _l("Message to the reporter"),
    "reporter_message": _l("Message from the reporter"),
    "feedback": _l("Feedback for the reporter"),
    "note": _l("Internal note"),
    "shared": _l("Shared with another reviewer"),
    "share_proposed": _l("Sharing proposed (waits for a second reviewer)"),
    "share_approved": _l("Sharing approved by a second reviewer"),
    "share_rejected": _l("Sharing rejected"),
    "recused": _l("A reviewer stepped off the case (conflict of interest)"),
    "attachment_added": _l("File added by the reporter"),
    "attachment_downloaded": _l("File downloaded by a reviewer"),
    "token_replaced": _l("Reporter replaced their token"),
    "acknowledge_overdue": _l("Acknowledgement deadline passed"),
    "feedback_overdue": _l("Feedback deadline passed"),
    "deadline_reminder": _l("Deadline reminder sent"),
    "escalated": _l("Escalated: further reviewers given the case"),
    "escalation_keys": _l("Keys handed over for escalation"),
    # issue 23: legal holds (two reviewers) and the end of retention
    "hold_proposed": _l("Legal hold proposed (waits for a second reviewer)"),
    "hold_placed": _l("Legal hold placed by a second reviewer"),
    "hold_lift_proposed": _l("Lifting the legal hold proposed (waits for a second reviewer)"),
    "hold_lifted": _l("Legal hold lifted by a second reviewer"),
    "hold_rejected": _l("Legal hold proposal rejected"),
    "retention_reminder": _l("Reminder: the retention period ends soon"),
    "reviewer_disabled": _l("A reviewer's account was disabled"),
    "reviewer_key_reset": _l("A reviewer's password was reset"),
    "rewrapped": _l("A reviewer's access was restored"),
    # issue 24: a concern an intake operator took by phone, voicemail, meeting or letter
    "filed_by_operator": _l("Filed by an intake operator for the reporter"),
    "transcript_agreed": _l("Reporter agreed the record"),
    "transcript_corrected": _l("Reporter corrected the record"),
    "transcript_not_agreed": _l("Reporter did not agree the record"),
    # issue 22: the reporter's identity, opened only by two
    "identity_added": _l("Reporter gave their name"),
    "identity_requested": _l("Asked to open the reporter's identity"),
    "identity_request_approved": _l("Opening the identity approved by a second reviewer"),
    "identity_released": _l("Reporter's identity opened"),
    "identity_request_rejected": _l("Opening the identity rejected"),
}


def translate(text: Any) -> Any:
    """Known English text from the domain in the page's language; anything else unchanged."""
    if text is None:
        return ""
    found = DOMAIN_TEXTS.get(str(text))
    if found is not None:
        return str(found)
    if current().code != DEFAULT:  # English pages keep the domain's English, as the API does
        said = wording.say(text)  # refusals with values in them (whistle.errors.Text)
        if said is not None:
            return said
    from flask_babel import gettext

    return gettext(str(text)) if isinstance(text, str) and text else text


def label(mapping: dict[str, Any], code: Any) -> str:
    found = mapping.get(str(code))
    return str(found) if found is not None else str(code or "").replace("_", " ")


def _context() -> dict[str, Any]:
    lang = current()
    chosen = requested()

    def switch_to(code: str) -> str:
        """The current page in another language (GET pages only: a form result is not repeatable)."""
        from flask import url_for

        args = {k: v for k, v in request.args.items() if k != "lang"} | {"lang": code}

        return url_for(request.endpoint or "pages.landing", **{**(request.view_args or {}), **args})

    return {"lang": lang.code, "dir": lang.direction, "languages": LANGUAGES.values(),
            "chosen_lang": chosen, "switch_to": switch_to, "today_iso": today().isoformat()}


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale, default_domain="messages")
    app.url_defaults(_keep_lang)
    app.context_processor(_context)
    app.jinja_env.filters.update(
        long_date=long_date, weekday=weekday, short_date=short_date, iso_date=iso_date, tr=translate,
        status_label=lambda c: label(STATUS_LABELS, c),
        outcome_label=lambda c: label(OUTCOME_LABELS, c),
        event_label=lambda c: label(EVENT_LABELS, c),
        trail_label=lambda c: label(TRAIL_LABELS, c),
    )
