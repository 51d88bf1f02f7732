"""The pages for issue 23's two-person actions, beside the JSON API (whistle.web.lifecycle_api):
a case's referrals and erasures (``/reviewer/cases/<ref>/referrals``) and the agencies
(``/admin/agencies``). Each form posts, calls the same domain function as the API, and
comes back with a flash message; nothing works differently from the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, flash, g, redirect, render_template, url_for
from sqlalchemy import select

from whistle import current_settings, instance_keys
from whistle.cases import erasure, holds, identity, proposals, referrals
from whistle.errors import DomainError, NotFound
from whistle.people import agencies
from whistle.store import db
from whistle.store.models import Concern, Reviewer
from whistle.web import common, shared
from whistle.web.errors import case_integrity

bp = Blueprint("lifecycle_pages", __name__)


def _act(action: Callable[[], Any], done: str) -> None:
    def checked() -> None:
        with case_integrity():
            action()

    common.act(checked, done)


def _back(case_ref: str) -> Response:
    return redirect(url_for("lifecycle_pages.case_page", case_ref=case_ref))  # type: ignore[return-value]


@bp.get("/reviewer/cases/<case_ref>/referrals")
def case_page(case_ref: str) -> str:
    data = shared.open_case(g.signed, case_ref)
    session = db.session()
    ref = data["case_ref"]
    ids = {c.proposed_by for c in session.scalars(select(proposals.Change).where(
        proposals.Change.subject == ref))}
    names = {r.id: r.name for r in session.scalars(select(Reviewer).where(Reviewer.id.in_(ids)))}
    legacy = session.scalar(select(Concern.identity_ct).where(Concern.id == ref))
    return render_template(
        "reviewer/referrals.html", case=data, me=g.signed.reviewer, names=names,
        agencies=[a for a in agencies.listing(session) if a["state"] == agencies.ACTIVE],
        referrals=referrals.listing(session, g.signed, ref),
        erasures=[proposals.describe(c) for c in erasure.pending(session, ref)],
        purposes=referrals.PURPOSES, exceptions=referrals.EXCEPTIONS,
        hold=holds.describe(session, g.signed, current_settings(), ref),
        identity_released=identity.state_of(session, ref, legacy) == identity.RELEASED)


@bp.post("/reviewer/cases/<case_ref>/referrals/propose")  # a GET of it is 405
def propose_referral(case_ref: str) -> Response:
    form = common.form_fields(multi=("parts",))
    data: dict[str, Any] = {"agency_id": form.get("agency_id"),
                            "parts": list(form.get("parts") or []),
                            "purpose": form.get("purpose") or "consultation",
                            "inform_reporter": not form.get("exception")}
    if form.get("exception"):
        data["exception"] = form.get("exception")
    if form.get("identity_basis"):
        data["parts"].append("identity")
        data["identity_basis"] = form.get("identity_basis")
    _act(lambda: referrals.propose(db.session(), g.signed, instance_keys(), case_ref, data),
         "Referral proposed: another reviewer of this case must approve it.")
    return _back(case_ref)


@bp.post("/reviewer/cases/<case_ref>/referrals/<referral_id>/<decision>")
def decide_referral(case_ref: str, referral_id: str, decision: str) -> Response:
    common.form_fields()
    if decision not in ("approve", "reject"):
        raise NotFound("no such action")
    if decision == "approve":
        _act(lambda: referrals.approve(db.session(), g.signed, instance_keys(), case_ref,
                                       referral_id), "Referral approved: the package is ready.")
    else:
        _act(lambda: referrals.reject(db.session(), g.signed, case_ref, referral_id),
             "Referral rejected.")
    return _back(case_ref)


@bp.get("/reviewer/cases/<case_ref>/referrals/<referral_id>/package")
def package(case_ref: str, referral_id: str) -> Response:
    kept, data = referrals.package_bytes(db.session(), g.signed, case_ref, referral_id)
    response = Response(data, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{kept.concern_id}-referral-{kept.id[:8]}.age"')
    return response


@bp.post("/reviewer/cases/<case_ref>/erasures")
def propose_erasure(case_ref: str) -> Response:
    item, _, item_id = str(common.form_fields().get("item") or "").partition(":")
    _act(lambda: erasure.propose(db.session(), g.signed, case_ref,
                                 {"item": item, "id": item_id}),
         "Erasure proposed: another reviewer of this case must approve it.")
    return _back(case_ref)


@bp.post("/reviewer/cases/<case_ref>/erasures/<erasure_id>/<decision>")
def decide_erasure(case_ref: str, erasure_id: str, decision: str) -> Response:
    common.form_fields()
    if decision not in ("approve", "reject"):
        raise NotFound("no such action")
    if decision == "approve":
        _act(lambda: erasure.approve(db.session(), g.signed, case_ref, erasure_id), "Erased.")
    else:
        _act(lambda: erasure.reject(db.session(), g.signed, case_ref, erasure_id),
             "Erasure rejected.")
    return _back(case_ref)


@bp.post("/reviewer/cases/<case_ref>/hold")
def propose_hold(case_ref: str) -> Response:
    """Place a legal hold (a reason is required) or lift one: a proposal (issue 23)."""
    form = common.form_fields()
    lift = form.get("action") == "lift"
    _act(lambda: holds.propose(db.session(), g.signed, current_settings(), case_ref,
                               form.get("reason"), lift=lift),
         "Lifting the hold proposed: another reviewer of this case must approve it." if lift
         else "Hold proposed: another reviewer of this case must approve it.")
    return _back(case_ref)


@bp.post("/reviewer/cases/<case_ref>/hold/<decision>")
def decide_hold(case_ref: str, decision: str) -> Response:
    common.form_fields()
    if decision not in ("approve", "reject"):
        raise NotFound("no such action")
    if decision == "approve":
        _act(lambda: holds.approve(db.session(), g.signed, case_ref), "Hold decision approved.")
    else:
        _act(lambda: holds.reject(db.session(), g.signed, case_ref), "Hold proposal rejected.")
    return _back(case_ref)


# -- administrators: agencies ---------------------------------------------------------------


@bp.get("/admin/agencies")
def agencies_page() -> str:
    return render_template("admin/agencies.html", me=g.signed.reviewer,
                           agencies=agencies.listing(db.session()))


@bp.post("/admin/agencies")
def propose_agency() -> Response:
    form = common.form_fields()
    try:
        agencies.propose_agency(db.session(), current_settings(), form.get("name"),
                                form.get("age_recipient"), g.signed.reviewer_id)
        flash("Agency proposed: another administrator must approve it under Changes to "
              "approve.", "ok")
    except DomainError as exc:
        flash(exc.message, "error")
    return redirect(url_for("lifecycle_pages.agencies_page"))  # type: ignore[return-value]


@bp.post("/admin/agencies/<agency_id>/key")
def propose_key(agency_id: str) -> Response:
    form = common.form_fields()
    try:
        agencies.propose_key(db.session(), agency_id, form.get("age_recipient"),
                             g.signed.reviewer_id)
        flash("New key proposed: another administrator must approve it under Changes to "
              "approve.", "ok")
    except DomainError as exc:
        flash(exc.message, "error")
    return redirect(url_for("lifecycle_pages.agencies_page"))  # type: ignore[return-value]
