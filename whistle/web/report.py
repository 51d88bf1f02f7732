"""Reporter pages: the form, the token shown once, and the status page. No account, no JS."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy.exc import OperationalError

from whistle import current_settings, tokens
from whistle.cases import intake, reporter
from whistle.store import db
from whistle.errors import DomainError, InvalidInput, NotFound
from whistle.web import common, errors, shared, uploads
from whistle.web.common import ApiError

bp = Blueprint("report", __name__)


def _form_to_concern(form: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "category": form.get("category"), "details": form.get("details"),
        "unit": form.get("unit") or None, "about_senior": form.get("about_senior") == "yes",
        "exclude_reviewers": form.get("exclude_reviewers", []),
        "clean_metadata": form.get("clean_metadata") == "yes",
    }
    if form.get("identity") == "named":
        data["identity"] = {"name": form.get("name"), "role": form.get("role") or None,
                            "contact": form.get("contact") or None}
    return data


def _render_form(form: dict[str, Any] | None = None, error: DomainError | None = None,
                 status: int = 200) -> tuple[str, int]:
    try:
        options = shared.intake_options(db.session())
    except OperationalError:
        # The database is gone: still give the reporter the form with their text back.
        db.session().rollback()
        options = shared.offline_intake_options()
    return render_template("report/report.html", options=options, form=form or {}, error=error,
                           idempotency_key=secrets.token_hex(16)), status


@bp.get("/report")
def report_form() -> tuple[str, int]:
    return _render_form()


@bp.post("/report")
def report_submit() -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    form = common.form_fields(multi=("exclude_reviewers", "attachment"))
    files = [f for f in request.files.getlist("attachment") if f.filename]
    step = form.pop("step", None)
    if step in ("review", "change"):
        return _review_step(form, files, step)
    key = form.get("idempotency_key", "")
    try:
        idem = bytes.fromhex(key) if len(key) == 32 else None
    except ValueError:
        idem = None
    try:
        receipt = shared.submit(_form_to_concern(form), files, idem)
    except DomainError as exc:
        if exc.code == "already_submitted":
            return render_template("report/already.html"), 409
        html, status = _render_form(form, exc, exc.status)
        return html, status, exc.headers
    return render_template("report/token.html", receipt=receipt, words=receipt.token.split()), 201


def _review_step(form: dict[str, Any], files: list[Any], step: str) -> tuple[str, int]:
    """Show everything once more before sending (no JS: the review page re-posts it all in
    hidden fields, with the same idempotency key), or go back to the form to change it."""
    if step == "change":
        return _render_form(form)
    session = db.session()
    try:
        sub = intake.parse_submission(_form_to_concern(form), session, current_settings())
        options = shared.intake_options(session)
    except InvalidInput as exc:
        return _render_form(form, exc, exc.status)
    except OperationalError:
        session.rollback()
        return _render_form(form, errors.Unavailable(), 503)
    return render_template("report/report_review.html", form=form, sub=sub, options=options,
                           dropped_files=[f.filename for f in files]), 200


@bp.get("/roster")
def roster_page() -> str:
    """The public roster as a page: who can receive a concern now (no JavaScript needed)."""
    return render_template("report/roster.html", roster=shared.roster_json(db.session()))


@bp.get("/status")
def status_form() -> str:
    return render_template("report/status_login.html", error=None)


def _status_page(view: reporter.ReporterView, **extra: Any) -> str:
    cfg = current_settings()
    return render_template("report/status.html", status=shared.status_json(view),
                           allow_attachments=cfg.allow_later_attachments,
                           max_files=cfg.max_attachments,
                           max_mib=cfg.max_attachment_bytes // 1048576, **extra)


# -- the status page's forms: each posts the token back in a hidden field, never in the URL --

Answer = tuple[str, int] | tuple[str, int, dict[str, str]]
# What to do once the posted token has found its case: (case, posted form, token) -> answer.
StatusAction = Callable[[reporter.ReporterView, dict[str, Any], str], Answer]
NO_CASE = "No case matches this token. Check the 12 words."


def _on_case(form: dict[str, Any], act: StatusAction) -> Answer:
    """Look the posted token up and act on its case; a miss shows the token form again."""
    token = form.get("token", "")
    try:
        view = shared.find_case(token)
        if view is None:
            raise NotFound(NO_CASE)
    except DomainError as exc:  # a miss, or too many of them (429)
        return (render_template("report/status_login.html", error=exc.message), exc.status,
                exc.headers)
    return act(view, form, token)


def _send_reply(view: reporter.ReporterView, body: Any) -> None:
    """Store the reporter's reply, or raise: invalid input, or 503 if the database fails."""
    try:
        reporter.add_reporter_message(db.session(), view, body, current_settings())
    except OperationalError as exc:
        db.session().rollback()
        raise errors.Unavailable() from exc


def _show(view: reporter.ReporterView, _form: dict[str, Any], token: str) -> Answer:
    return _status_page(view, token=token), 200


def _reply(view: reporter.ReporterView, form: dict[str, Any], token: str) -> Answer:
    try:
        _send_reply(view, form.get("body"))
    except DomainError as exc:  # not stored: say why and give the text back
        return (_status_page(view, token=token, error=exc.message, draft=form.get("body", "")),
                exc.status, exc.headers)
    return _status_page(view, token=token, notice="Your message was sent."), 200


def _attach(view: reporter.ReporterView, form: dict[str, Any], token: str) -> Answer:
    files = [f for f in request.files.getlist("attachment") if f.filename]
    try:
        notes = uploads.add_later(view, files, form.get("clean_metadata") == "yes")
    except DomainError as exc:
        return _status_page(view, token=token, error=exc.message), exc.status, exc.headers
    return _status_page(view, token=token, notice="Your files were added.",
                        attachment_notes=notes), 200


def _rotate(view: reporter.ReporterView, _form: dict[str, Any], _token: str) -> Answer:
    new = reporter.rotate_token(db.session(), shared.instance_keys(), view)
    return render_template("report/token.html", receipt=None, words=new.split(),
                           rotated=True), 200


# The older spelling, one POST /status with action=reply|attach|rotate, still works.
_ACTIONS: dict[str, StatusAction] = {"reply": _reply, "attach": _attach, "rotate": _rotate}


@bp.post("/status")
def status_show() -> Answer:
    form = common.form_fields()
    return _on_case(form, _ACTIONS.get(form.get("action", "view"), _show))


@bp.post("/status/reply")
def status_reply() -> Answer:
    return _on_case(common.form_fields(), _reply)


@bp.post("/status/files")
def status_files() -> Answer:
    return _on_case(common.form_fields(), _attach)


@bp.post("/status/token")
def status_token() -> Answer:
    return _on_case(common.form_fields(), _rotate)


# -- "check that you kept your token": nothing is stored, before or after -----------------

_CASE_REF = re.compile(r"WH-[0-9A-Z]{4}(?:-[0-9A-Z]{4}){6}")


@bp.app_template_global()
def token_check_positions() -> list[int]:
    """Two word positions (1-12), chosen at random, that the reporter types back."""
    return sorted(secrets.SystemRandom().sample(range(1, tokens.WORDS + 1), 2))


def _positions(text: str) -> list[int] | None:
    parts = text.split()
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 2 for p in parts):
        return None
    found = [int(p) for p in parts]
    return found if len(set(found)) == 2 and all(1 <= p <= tokens.WORDS for p in found) else None


@bp.post("/report/kept")
def token_kept() -> tuple[str, int]:
    """Compare two typed words with the token the page carried back; store nothing.

    The token page already shows the token, so carrying it back in a hidden
    field (as the status page does) reveals nothing new, and lets a mismatch
    show the words again so the reporter can correct their copy.
    """
    form = common.form_fields()
    token = form.get("token", "")
    positions = _positions(form.get("positions", ""))
    if not isinstance(token, str) or tokens.parse(token) is None or positions is None:
        raise ApiError(400, "invalid_form", "this check could not be read: go back and try again")
    words = [w for w in re.split(r"[\s\-_.,]+", token.strip().lower()) if w]
    case_ref = form.get("case_ref", "")
    case_ref = case_ref if _CASE_REF.fullmatch(case_ref) else None
    try:
        ack = dt.date.fromisoformat(form.get("acknowledge_by", ""))
    except ValueError:
        ack = None
    typed = [form.get(f"word_{i}", "").strip().lower() for i in (1, 2)]
    if typed == [words[p - 1] for p in positions]:
        return render_template("report/token_kept.html", case_ref=case_ref,
                               acknowledge_by=ack), 200
    return render_template("report/token.html", receipt=None, words=words, check_error=True,
                           check_positions=positions, kept_case_ref=case_ref, kept_ack=ack,
                           rotated=form.get("rotated") == "yes"), 400
