"""Pages for choosing one's own password (``/enrol``) and for the second person who
approves or rejects a roster change (``/reviewer/changes``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext
from sqlalchemy import select
from werkzeug.wrappers import Response

from whistle import current_settings, instance_keys
from whistle.errors import DomainError
from whistle.people import approvals, credentials
from whistle.store import db
from whistle.store.models import Reviewer, utcnow
from whistle.web import common

bp = Blueprint("enrol", __name__)


@bp.get("/enrol")
def enrol_form() -> tuple[str, int]:
    code = request.args.get("code", "")
    try:
        account = credentials.code_account(db.session(), instance_keys(), code)
    except DomainError as exc:  # no invitation behind this link (any more)
        return render_template("enrol.html", error=exc.message, code=None, name=None), 404
    return render_template("enrol.html", error=None, code=code, name=account.name), 200


@bp.post("/enrol")
def enrol() -> tuple[str, int]:
    form = common.form_fields()
    code = form.get("code", "")
    try:
        if form.get("password") != form.get("password2"):
            raise DomainError("the two passwords differ", "invalid_input", 400, "password")
        account = credentials.redeem(db.session(), current_settings(), instance_keys(), code,
                                     form.get("password"))
    except DomainError as exc:
        usable = exc.code != "invalid_code"
        return render_template("enrol.html", error=exc.message, code=code if usable else None,
                               name=None), exc.status
    return render_template("enrol_done.html", name=account.name), 200


def _names(ids: set[str]) -> dict[str, str]:
    rows = db.session().execute(select(Reviewer.id, Reviewer.name).where(Reviewer.id.in_(ids)))
    return dict(rows.tuples().all())


@bp.get("/reviewer/changes")
def changes() -> str:
    pending = approvals.pending(db.session())
    ids = {c.proposed_by for c in pending} | {c.subject for c in pending if c.subject}
    return render_template("reviewer/changes.html", me=g.signed.reviewer,
                           changes=[approvals.describe(c) for c in pending], names=_names(ids))


def _decide(action: Any, done: str) -> Response:
    try:
        action()
        flash(done, "ok")
    except DomainError as exc:
        flash(exc.message, "error")
    return redirect(url_for("enrol.changes"))


@bp.post("/reviewer/changes/<change_id>/approve")
def approve(change_id: str) -> Response:
    ctx = approvals.Context(current_settings(), instance_keys(), utcnow())
    return _decide(lambda: approvals.approve(db.session(), ctx, change_id,
                                             g.signed.reviewer_id),
                   gettext("Approved: the change has taken effect."))


@bp.post("/reviewer/changes/<change_id>/reject")
def reject(change_id: str) -> Response:
    return _decide(lambda: approvals.reject(db.session(), change_id, g.signed.reviewer_id,
                                            utcnow()),
                   gettext("Rejected: nothing changed."))
