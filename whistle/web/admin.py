"""Administration: reviewers and routing settings. No case content, no case keys, ever.

Views are thin: parse the form, call ``whistle.people.administration``, render.
Every POST here is covered by the global CSRF protection.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext
from sqlalchemy import select
from werkzeug.wrappers import Response

from whistle import current_settings, instance_keys, validation
from whistle.cases import clocks
from whistle.people import administration, approvals, roster
from whistle.store import db, options
from whistle.store.models import Reviewer, utcnow
from whistle.errors import InvalidInput
from whistle.web import admin_people, common

bp = Blueprint("admin", __name__, url_prefix="/admin")
ADVICE_CHARS = 5000


def _reviewer_or_404(reviewer_id: str) -> Reviewer:
    r = db.session().get(Reviewer, reviewer_id) if len(reviewer_id) <= 64 else None
    if r is None:
        abort(404)
    return r


@bp.get("/")
def home() -> str:
    session = db.session()
    reviewers = list(session.scalars(select(Reviewer).order_by(Reviewer.name)))
    attention = administration.attention(session, instance_keys(), g.signed.reviewer_id)
    return render_template("admin/home.html", reviewers=reviewers, attention=attention,
                           units_of={r.id: json.loads(r.units) for r in reviewers},
                           me=g.signed.reviewer, first_steps=admin_people.first_steps())


def _enrol_form(error: str | None = None, form: dict[str, Any] | None = None,
                status: int = 200) -> tuple[str, int]:
    return render_template("admin/enrol.html", me=g.signed.reviewer, error=error,
                           form=form or {}, units=options.units(db.session())), status


@bp.get("/reviewers/new")
def enrol_form() -> tuple[str, int]:
    return _enrol_form()


@bp.post("/reviewers")
def enrol() -> tuple[str, int]:
    form = common.form_fields(multi=("units",))
    acc = administration.NewAccount(
        name=form.get("name", ""), email=form.get("email", ""),
        password=form.get("password") or None, units=tuple(form.get("units", [])),
        senior=form.get("senior") == "yes", independent=form.get("independent") == "yes",
        admin=form.get("admin") == "yes" or form.get("admin_only") == "yes",
        reviews=form.get("admin_only") != "yes" and form.get("operator") != "yes",
        operator=form.get("operator") == "yes")
    session = db.session()
    try:
        if roster.is_sealed(session):  # a proposal: a second person approves it
            r, _change = approvals.add_account(
                session, approvals.Context(current_settings(), instance_keys(), utcnow()),
                acc.name, acc.email, list(acc.units), acc.senior, acc.independent, acc.admin,
                acc.reviews, g.signed.reviewer_id, operator=acc.operator)
            return render_template("admin/proposed.html", me=g.signed.reviewer,
                                   account=r), 202
        r, password = administration.enrol(session, current_settings(), acc,
                                           g.signed.reviewer_id, keys=instance_keys())
    except InvalidInput as exc:
        return _enrol_form(exc.message, form, exc.status)
    return render_template("admin/enrolled.html", me=g.signed.reviewer, enrolled=r,
                           password=password), 201


@bp.get("/reviewers/<reviewer_id>")
def edit_form(reviewer_id: str) -> str:
    r = _reviewer_or_404(reviewer_id)
    return render_template("admin/reviewer.html", me=g.signed.reviewer, r=r,
                           r_units=json.loads(r.units), units=options.units(db.session()),
                           error=None)


@bp.post("/reviewers/<reviewer_id>")
def edit(reviewer_id: str) -> Any:
    r = _reviewer_or_404(reviewer_id)
    form = common.form_fields(multi=("units",))
    units, senior = form.get("units", []), form.get("senior") == "yes"
    independent = form.get("independent") == "yes"
    try:
        if roster.is_sealed(db.session()):  # a grant waits for a second person
            approvals.propose_for(db.session(), approvals.GRANT, r.id,
                                  {"units": sorted(set(units)), "senior": senior,
                                   "independent": independent}, g.signed.reviewer_id)
            flash(gettext("Proposed: the change takes effect when a second person approves "
                          "it."), "ok")
            return redirect(url_for("admin.home"))
        administration.update_reviewer(db.session(), current_settings(), r.id, units, senior,
                                       independent, g.signed.reviewer_id, keys=instance_keys())
    except InvalidInput as exc:
        return render_template("admin/reviewer.html", me=g.signed.reviewer, r=r,
                               r_units=json.loads(r.units), units=options.units(db.session()),
                               error=exc.message), 400
    flash(gettext("Saved %(name)s. Existing cases keep their reviewers.", name=r.name), "ok")
    return redirect(url_for("admin.home"))


@bp.post("/reviewers/<reviewer_id>/disable")
def disable(reviewer_id: str) -> Response | tuple[str, int]:
    r = _reviewer_or_404(reviewer_id)
    if common.form_fields().get("step") == "ask":  # asked once more first (issue 21)
        return admin_people.confirm_disable(r.id)
    try:
        short = administration.disable(db.session(), current_settings(), instance_keys(),
                                       g.signed.reviewer, r.id)
    except InvalidInput as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin.home"))
    flash(gettext("Disabled %(name)s; their sessions are ended.", name=r.name), "ok")
    for ref, left in short:
        flash(gettext("Case %(ref)s now has %(left)s active reviewer(s): ask a reviewer of the "
                      "case to share it, or re-share it with the recovery key.",
                      ref=ref, left=left), "error")
    return redirect(url_for("admin.home"))


def _settings_page(error: str | None = None, categories: str | None = None,
                   units: str | None = None, status: int = 200,
                   advice: str | None = None) -> tuple[str, int]:
    session = db.session()
    if advice is None:
        advice = options.advice(session)
    if categories is None:
        categories = "\n".join(clocks.category_line(c) for c in options.categories(session))
    if units is None:
        units = "\n".join(options.units(session))
    return render_template("admin/settings.html", me=g.signed.reviewer, error=error,
                           categories=categories, units=units, advice=advice), status


@bp.get("/settings")
def settings_form() -> tuple[str, int]:
    return _settings_page()


@bp.post("/settings")
def save_settings() -> Any:
    form = common.form_fields()
    try:
        categories = administration.parse_categories(form.get("categories", ""))
        units = administration.parse_units(form.get("units", ""),
                                           current_settings().max_field_chars)
        # The landing page's "independent advice" text; a form without the field keeps it.
        advice = (validation.text(form.get("advice"), "advice", ADVICE_CHARS) or ""
                  if "advice" in form else None)
    except InvalidInput as exc:
        return _settings_page(exc.message, form.get("categories", ""), form.get("units", ""),
                              400, form.get("advice"))
    administration.save_form_options(db.session(), categories, units, g.signed.reviewer_id,
                                     advice)
    flash("The report form now offers these categories and units.", "ok")
    return redirect(url_for("admin.settings_form"))

