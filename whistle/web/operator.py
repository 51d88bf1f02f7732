"""Doors for oral and assisted reporting (issue 24; the domain is whistle.cases.oral).

- ``POST /api/v1/operator/concerns`` and the pages under ``/operator``: an intake operator
  files a concern on a reporter's behalf (anyone else signed in: 403; no account: 401, by
  ``whistle.web.access``). It goes through ``shared.submit`` like any concern; the oral
  record is added to its transaction (``oral.filing_hook``).
- ``POST /api/v1/status/transcript`` and ``POST /status/transcript``: the reporter agrees the
  record or corrects it (behind the same token gate as every reporter call).
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Response, g, jsonify, render_template, request
from flask_babel import lazy_gettext as _l

from whistle import current_settings
from whistle.cases import intake, oral, reporter
from whistle.errors import DomainError, InvalidInput
from whistle.people import operators
from whistle.store import db
from whistle.web import common, report, shared

api_bp = Blueprint("oral_api", __name__, url_prefix="/api/v1")
bp = Blueprint("operator", __name__, url_prefix="/operator")
pages_bp = Blueprint("oral_pages", __name__)


def file_concern(data: Any, files: list[Any], idempotency_key: bytes | None = None
                 ) -> intake.Receipt:
    """An operator's filing: the concern through intake, the oral record in its transaction."""
    operators.require(g.signed.reviewer)
    concern, filing = oral.split_filing(data)
    if concern.get("escrow"):
        raise InvalidInput("a concern taken by an operator cannot be held in escrow", "escrow")
    oral.check_recordings(files, filing)
    transcript = concern.get("details")
    hook = oral.filing_hook(filing, transcript if isinstance(transcript, str) else "")
    return shared.submit(concern, files, idempotency_key, on_stored=hook)


# -- the JSON API ------------------------------------------------------------------------------


@api_bp.post("/operator/concerns")
def operator_concern() -> tuple[Response, int]:
    """The body of ``POST /api/v1/concerns`` plus ``channel`` and ``recording_consent``."""
    operators.require(g.signed.reviewer)  # before anything is read
    if request.mimetype == "multipart/form-data":
        from whistle.web import api

        fields = common.form_fields(multi=("attachment",))
        if fields.get("attachment"):
            raise common.ApiError(400, "invalid_input", "each attachment part must be a file "
                                  "with a filename", "attachment")
        data = common.parse_json_bytes(api._concern_part(fields))
        files = request.files.getlist("attachment")
    else:
        data, files = common.json_body(), []
    return jsonify(shared.receipt_json(file_concern(data, files))), 201


def _reporter_view(data: dict[str, Any]) -> reporter.ReporterView:
    view = shared.find_case(data.get("token"))
    if view is None:
        raise common.ApiError(404, "not_found", "no case matches this token")
    return view


@api_bp.post("/status/transcript")
def transcript() -> tuple[Response, int]:
    """``{"token", "agree": bool, "corrections"?: text or [text]}`` -> 201."""
    data = common.json_body()
    view = _reporter_view(data)
    done = oral.respond(db.session(), view.concern, view.thread_key, data.get("agree"),
                        data.get("corrections"), current_settings())
    return jsonify(case_ref=view.case.id, agreed=done["agreed"],
                   corrections=done["corrections"]), 201


# -- the operator's pages (no JavaScript needed) ----------------------------------------------


def _form_page(form: dict[str, Any] | None = None, error: DomainError | None = None,
               status: int = 200) -> tuple[str, int]:
    key = (form or {}).get("idempotency_key", "")
    if not (isinstance(key, str) and len(key) == 32):
        key = secrets.token_hex(16)
    return render_template("operator/file.html", options=shared.intake_options(db.session()),
                           form=form or {}, error=error, channels=oral.CHANNELS,
                           idempotency_key=key, me=g.signed.reviewer), status


@bp.get("")
def form() -> tuple[str, int]:
    operators.require(g.signed.reviewer)
    return _form_page()


@bp.post("/concerns")
def submit() -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    operators.require(g.signed.reviewer)
    posted = common.form_fields(multi=("exclude_reviewers", "attachment"))
    files = [f for f in request.files.getlist("attachment") if f.filename]
    data = report._form_to_concern(posted) | {
        "channel": posted.get("channel"),
        "recording_consent": posted.get("recording_consent") == "yes"}
    key = posted.get("idempotency_key", "")
    try:
        idem = bytes.fromhex(key) if isinstance(key, str) and len(key) == 32 else None
    except ValueError:
        idem = None
    try:
        receipt = file_concern(data, files, idem)
    except DomainError as exc:
        if exc.code == "already_submitted":
            return render_template("report/already.html"), 409
        html, status = _form_page(posted, exc, exc.status)
        return html, status, exc.headers
    return render_template("operator/filed.html", receipt=receipt, words=receipt.token.split(),
                           me=g.signed.reviewer), 201


@bp.post("/words")
def words() -> tuple[str, int]:
    """The 12 words alone on a page, to print for the reporter (posted back, never in a URL)."""
    operators.require(g.signed.reviewer)
    token = common.form_fields().get("token", "")
    from whistle import tokens

    if not isinstance(token, str) or tokens.parse(token) is None:
        raise common.ApiError(400, "invalid_form", "these are not 12 words from Whistle")
    return render_template("operator/words.html", words=token.split()), 200


# -- the reporter's page -----------------------------------------------------------------------

AGREED = _l("Thank you: the reviewers can see that you agree this record.")
CORRECTED = _l("Your corrections were sent to the reviewers.")
NOT_AGREED = _l("The reviewers can see that you do not agree this record yet.")


def _answer(view: reporter.ReporterView, form: dict[str, Any], token: str) -> report.Answer:
    agree = form.get("agree") == "yes"
    corrections = form.get("corrections") or None
    try:
        done = oral.respond(db.session(), view.concern, view.thread_key, agree, corrections,
                            current_settings())
    except DomainError as exc:
        return (report._status_page(view, token=token, error=exc.message), exc.status,
                exc.headers)
    notice = AGREED if agree else CORRECTED if done["added"] else NOT_AGREED
    return report._status_page(view, token=token, notice=notice), 200


@pages_bp.post("/status/transcript")
def status_transcript() -> report.Answer:
    return report._on_case(common.form_fields(), _answer)
