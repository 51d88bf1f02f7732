"""The status page's detriment check-in (issue 23): the reporter answers with the token in
the form's body, as every status page form does (whistle.web.report).

A "no" (or a "yes" without details) shows the status page again with a thank-you; a "yes"
with details opens the new case and shows its own 12 words once, on the token page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from whistle import current_settings, instance_keys
from whistle.cases import checkins, reporter
from whistle.errors import DomainError
from whistle.store import db
from whistle.store.models import utcnow
from whistle.web import common, report

bp = Blueprint("checkin_page", __name__)
THANKS = "Thank you. Your answer was recorded."


def _answer(view: reporter.ReporterView, form: dict[str, Any], token: str) -> report.Answer:
    data = {"answer": form.get("answer"), "details": form.get("details") or None}
    try:
        _choice, receipt = checkins.answer(db.session(), instance_keys(), current_settings(),
                                           view.case.id, data, utcnow())
    except DomainError as exc:  # nothing stored: say why, the words come back
        return (report._status_page(view, token=token, error=exc.message,
                                    checkin_draft=form.get("details", "")),
                exc.status, exc.headers)
    if receipt is None:
        return report._status_page(view, token=token, notice=THANKS, own_action=True), 200
    return render_template("report/token.html", receipt=receipt,
                           words=receipt.token.split(), detriment=True), 201


@bp.post("/status/checkin")
def checkin() -> report.Answer:
    return report._on_case(common.form_fields(), _answer)
