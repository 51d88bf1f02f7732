"""Administration: reviewers and routing settings. No case content, no case keys, ever.

Views are thin: parse the form, call ``whistle.administration``, render.
Every POST here is covered by the global CSRF protection.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, url_for
from flask_babel import gettext, ngettext
from sqlalchemy import select
from werkzeug.wrappers import Response

from whistle import adminlog, administration, db, instance_keys, settings, validation
from whistle.models import Reviewer
from whistle.validation import InvalidInput
from whistle.web import common
from whistle.web import reviewer as reviewer_web

bp = Blueprint("admin", __name__, url_prefix="/admin")
ADVICE_CHARS = 5000


def admin_only(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    @reviewer_web.signed_in
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not g.signed.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def _reviewer_or_404(reviewer_id: str) -> Reviewer:
    r = db.session().get(Reviewer, reviewer_id) if len(reviewer_id) <= 64 else None
    if r is None:
        abort(404)
    return r


@bp.get("/")
@admin_only
def home() -> str:
    session = db.session()
    reviewers = list(session.scalars(select(Reviewer).order_by(Reviewer.name)))
    attention = administration.attention(session, instance_keys(), g.signed.reviewer_id)
    return render_template("admin/home.html", reviewers=reviewers, attention=attention,
                           units_of={r.id: json.loads(r.units) for r in reviewers},
                           me=g.signed.reviewer)


def _enrol_form(error: str | None = None, form: dict[str, Any] | None = None,
                status: int = 200) -> tuple[str, int]:
    return render_template("admin/enrol.html", me=g.signed.reviewer, error=error,
                           form=form or {}, units=settings.units(db.session())), status


@bp.get("/reviewers/new")
@admin_only
def enrol_form() -> tuple[str, int]:
    return _enrol_form()


@bp.post("/reviewers")
@admin_only
def enrol() -> tuple[str, int]:
    form = common.form_fields(multi=("units",))
    acc = administration.NewAccount(
        name=form.get("name", ""), email=form.get("email", ""),
        password=form.get("password") or None, units=tuple(form.get("units", [])),
        senior=form.get("senior") == "yes", independent=form.get("independent") == "yes",
        admin=form.get("admin") == "yes" or form.get("admin_only") == "yes",
        reviews=form.get("admin_only") != "yes")
    try:
        r, password = administration.enrol(db.session(), current_app.config, acc,
                                           g.signed.reviewer_id)
    except InvalidInput as exc:
        return _enrol_form(exc.message, form, exc.status)
    return render_template("admin/enrolled.html", me=g.signed.reviewer, enrolled=r,
                           password=password), 201


@bp.get("/reviewers/<reviewer_id>")
@admin_only
def edit_form(reviewer_id: str) -> str:
    r = _reviewer_or_404(reviewer_id)
    return render_template("admin/reviewer.html", me=g.signed.reviewer, r=r,
                           r_units=json.loads(r.units), units=settings.units(db.session()),
                           error=None)


@bp.post("/reviewers/<reviewer_id>")
@admin_only
def edit(reviewer_id: str) -> Any:
    r = _reviewer_or_404(reviewer_id)
    form = common.form_fields(multi=("units",))
    try:
        administration.update_reviewer(db.session(), current_app.config, r.id,
                                       form.get("units", []), form.get("senior") == "yes",
                                       form.get("independent") == "yes",
                                       g.signed.reviewer_id)
    except InvalidInput as exc:
        return render_template("admin/reviewer.html", me=g.signed.reviewer, r=r,
                               r_units=json.loads(r.units), units=settings.units(db.session()),
                               error=exc.message), 400
    flash(gettext("Saved %(name)s. Existing cases keep their reviewers.", name=r.name), "ok")
    return redirect(url_for("admin.home"))


@bp.post("/reviewers/<reviewer_id>/disable")
@admin_only
def disable(reviewer_id: str) -> Response:
    r = _reviewer_or_404(reviewer_id)
    try:
        short = administration.disable(db.session(), current_app.config, instance_keys(),
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
        advice = settings.advice(session)
    if categories is None:
        categories = "\n".join(f"{c['id']} | {c['label']}" for c in settings.categories(session))
    if units is None:
        units = "\n".join(settings.units(session))
    return render_template("admin/settings.html", me=g.signed.reviewer, error=error,
                           categories=categories, units=units, advice=advice), status


@bp.get("/settings")
@admin_only
def settings_form() -> tuple[str, int]:
    return _settings_page()


@bp.post("/settings")
@admin_only
def save_settings() -> Any:
    form = common.form_fields()
    try:
        categories = administration.parse_categories(form.get("categories", ""))
        units = administration.parse_units(form.get("units", ""),
                                           current_app.config["MAX_FIELD_CHARS"])
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


# -- the administration log ----------------------------------------------

def _listed(items: list[str]) -> str:
    return ", ".join(items) if items else gettext("none")


def _changes(before: list[str], after: list[str], what: str) -> list[str]:
    added = [x for x in after if x not in before]
    removed = [x for x in before if x not in after]
    out = []
    if added:
        out.append(gettext("%(what)s added: %(items)s", what=what, items=_listed(added)))
    if removed:
        out.append(gettext("%(what)s removed: %(items)s", what=what, items=_listed(removed)))
    return out


def _yes_no(value: bool) -> str:
    return gettext("yes") if value else gettext("no")


def describe(event: Any, names: dict[str, str]) -> tuple[str, str]:
    """(what happened, details) of an administration log event, for people."""
    data = json.loads(event.data)
    who = names.get(data.get("reviewer", ""), data.get("reviewer", ""))
    if event.type == "reviewer_enrolled":
        return gettext("Account enrolled"), gettext(
            "%(who)s: roles %(roles)s; units %(units)s", who=who,
            roles=_listed(data["roles"]), units=_listed(data["units"]))
    if event.type == "reviewer_changed":
        b, a = data["before"], data["after"]
        parts = _changes(b["units"], a["units"], gettext("units"))
        for key, label in (("senior", gettext("senior")), ("independent", gettext("independent"))):
            if b[key] != a[key]:
                parts.append(f"{label}: {_yes_no(b[key])} -> {_yes_no(a[key])}")
        return gettext("Routing of a reviewer changed"), f"{who}: " + "; ".join(parts)
    if event.type == "reviewer_disabled":
        return gettext("Account disabled"), ngettext(
            "%(who)s; %(num)d case left with too few reviewers",
            "%(who)s; %(num)d cases left with too few reviewers",
            data["cases_left_short"], who=who)
    if event.type == "password_reset":
        return gettext("Password reset"), ngettext(
            "%(who)s; %(num)d case waits to be shared again",
            "%(who)s; %(num)d cases wait to be shared again", data["cases_waiting"], who=who)
    if event.type == "form_options_changed":
        b, a = data["before"], data["after"]
        label_of = {c["id"]: c["label"] for c in a["categories"]}
        old_labels = {c["id"]: c["label"] for c in b["categories"]}
        parts = _changes(list(old_labels), list(label_of), gettext("categories"))
        relabelled = [f"{cid}: {old_labels[cid]} -> {label}" for cid, label in label_of.items()
                      if cid in old_labels and old_labels[cid] != label]
        if relabelled:
            parts.append(gettext("relabelled: %(items)s", items="; ".join(relabelled)))
        parts += _changes(b["units"], a["units"], gettext("units"))
        return gettext("Report form changed"), "; ".join(parts)
    if event.type == "advice_changed":
        return gettext("Advice text changed"), ngettext(
            "now %(num)d character", "now %(num)d characters", data["characters"])
    return event.type, ""


@bp.get("/log")
@admin_only
def log() -> str:
    session = db.session()
    names = dict(session.execute(select(Reviewer.id, Reviewer.name)).tuples().all())
    actors = {adminlog.OPERATOR: gettext("the command line on the server"),
              adminlog.SETUP: gettext("first-run setup"), **names}
    events = [(e, *describe(e, names), actors.get(e.actor, e.actor))
              for e in adminlog.recent(session)]
    checked, broken = adminlog.verify(session)
    return render_template("admin/log.html", me=g.signed.reviewer, events=events,
                           checked=checked, broken=broken)
