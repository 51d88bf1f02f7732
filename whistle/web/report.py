"""Reporter pages: the form, the token shown once, and the status page. No account, no JS."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, current_app, render_template, request
from sqlalchemy.exc import OperationalError

from whistle import db, intake
from whistle.validation import InvalidInput
from whistle.web import common, flows, pages, uploads
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


def _render_form(form: dict[str, Any] | None = None, error: ApiError | None = None,
                 status: int = 200) -> tuple[str, int]:
    try:
        options = flows.intake_options(db.session())
    except OperationalError:
        # The database is gone: still give the reporter the form with their text back.
        db.session().rollback()
        options = flows.offline_intake_options()
    return render_template("report.html", options=options, form=form or {}, error=error,
                           idempotency_key=secrets.token_hex(16)), status


@bp.get("/report")
def report_form() -> tuple[str, int]:
    return _render_form()


@bp.post("/report")
def report_submit() -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    form = common.form_fields(multi=("exclude_reviewers", "attachment"))
    files = [f for f in request.files.getlist("attachment") if f.filename]
    key = form.get("idempotency_key", "")
    try:
        idem = bytes.fromhex(key) if len(key) == 32 else None
    except ValueError:
        idem = None
    try:
        receipt = flows.submit(_form_to_concern(form), files, idem)
    except ApiError as exc:
        if exc.code == 409 and exc.error == "already_submitted":
            return render_template("already.html"), 409
        html, status = _render_form(form, exc, exc.code or 400)
        return html, status, exc.extra_headers
    return render_template("token.html", receipt=receipt, words=receipt.token.split()), 201


@bp.get("/status")
def status_form() -> str:
    return render_template("status_login.html", error=None)


def _status_page(view: intake.ReporterView, **extra: Any) -> str:
    cfg = current_app.config
    return render_template("status.html", status=flows.status_json(view),
                           allow_attachments=cfg["ALLOW_LATER_ATTACHMENTS"],
                           max_files=cfg["MAX_ATTACHMENTS"],
                           max_mib=cfg["MAX_ATTACHMENT_BYTES"] // 1048576, **extra)


@bp.post("/status")
def status_show() -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    form = common.form_fields()
    try:
        view = flows.find_case(form.get("token", ""))
    except ApiError as exc:
        return (render_template("status_login.html", error=exc.message), exc.code or 400,
                exc.extra_headers)
    if view is None:
        return render_template("status_login.html",
                               error="No case matches this token. Check the 12 words."), 404
    action = form.get("action", "view")
    token = form.get("token", "")
    if action == "reply":
        try:
            intake.add_reporter_message(db.session(), view, form.get("body"), current_app.config)
        except OperationalError:  # not stored: say so and give the text back
            db.session().rollback()
            return _status_page(view, token=token, error=pages.UNAVAILABLE,
                                draft=form.get("body", "")), 503
        except InvalidInput as exc:
            return _status_page(view, token=token, error=exc.message,
                                draft=form.get("body", "")), 400
        return _status_page(view, token=token, notice="Your message was sent."), 200
    if action == "attach":
        files = [f for f in request.files.getlist("attachment") if f.filename]
        try:
            notes = uploads.add_later(view, files, form.get("clean_metadata") == "yes")
        except ApiError as exc:
            return _status_page(view, token=token, error=exc.message), exc.code or 400
        return _status_page(view, token=token, notice="Your files were added.",
                            attachment_notes=notes), 200
    if action == "rotate":
        new = intake.rotate_token(db.session(), flows.instance_keys(), view)
        return render_template("token.html", receipt=None, words=new.split(), rotated=True), 200
    return _status_page(view, token=token), 200
