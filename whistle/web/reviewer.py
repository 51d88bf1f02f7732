"""Reviewer pages: sign in, inbox, case view and actions. Everything here needs a session."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import (Blueprint, current_app, flash, g, redirect, render_template, request,
                   session, url_for)
from werkzeug.wrappers import Response

from whistle import db, instance_keys, review, settings, workflow
from whistle import stats as stats_mod
from whistle.validation import InvalidInput
from whistle.web import common, flows
from whistle.web.common import ApiError

bp = Blueprint("reviewer", __name__, url_prefix="/reviewer")


def current() -> review.SignedIn | None:
    token = session.get("sid")
    return review.authenticate(db.session(), current_app.config, token) if token else None


# Pages a reviewer may reach while their account still needs setting up.
_SETUP_PAGES = {
    "password": ("reviewer.account", {"reviewer.account", "reviewer.change_password",
                                      "reviewer.logout"}),
    "totp": ("reviewer.totp_form", {"reviewer.totp_form", "reviewer.totp_enable",
                                    "reviewer.logout"}),
}


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        signed = current()
        if signed is None:
            session.clear()
            return redirect(url_for("reviewer.login_form"))
        g.signed = signed
        needed = signed.setup_needed(current_app.config)
        if needed is not None:
            target, allowed = _SETUP_PAGES[needed]
            if request.endpoint not in allowed:
                return redirect(url_for(target))
        return view(*args, **kwargs)

    return wrapper


@bp.get("/login")
def login_form() -> str:
    return render_template("reviewer/login.html", error=None)


@bp.post("/login")
def login() -> Any:
    form = common.form_fields()
    try:
        secret, reviewer = flows.login(form.get("email"), form.get("password"),
                                       form.get("otp") or None)
    except ApiError as exc:
        return render_template("reviewer/login.html", error=exc.message,
                               email=form.get("email", "")), exc.code, exc.extra_headers
    session.clear()  # a fresh cookie at sign-in: no fixation
    session["sid"] = secret
    return redirect(url_for("admin.home") if reviewer.is_admin and not reviewer.is_reviewer
                    else url_for("reviewer.inbox"))


@bp.post("/logout")
@signed_in
def logout() -> Response:
    review.logout(db.session(), g.signed)
    session.clear()
    return redirect(url_for("reviewer.login_form"))


@bp.get("/")
@signed_in
def inbox() -> str:
    status, page, per_page = flows.list_args(request.args)
    sort = request.args.get("sort") or "overdue"
    if sort not in review.SORTS:
        sort = "overdue"
    found, total = review.list_cases(db.session(), g.signed.reviewer_id, status, page, per_page,
                                     sort)
    return render_template("reviewer/inbox.html", cases=[review.summary(c) for c in found],
                           total=total, page=page, per_page=per_page, status=status,
                           statuses=workflow.STATUSES, sort=sort, sorts=review.SORTS,
                           me=g.signed.reviewer,
                           counts=stats_mod.inbox_counts(db.session(), g.signed.reviewer_id),
                           category_labels={c["id"]: c["label"]
                                            for c in settings.categories(db.session())})


@bp.get("/cases/<case_ref>")
@signed_in
def case(case_ref: str) -> str:
    data = flows.open_case(g.signed, case_ref)
    others = review.share_candidates(db.session(), instance_keys(), data["case_ref"],
                                     {x["id"] for x in data["reviewers"]})
    return render_template("reviewer/case.html", case=data, me=g.signed.reviewer,
                           outcomes=workflow.OUTCOMES, others=others,
                           names={x["id"]: x["name"] for x in data["reviewers"]},
                           category_labels={c["id"]: c["label"]
                                            for c in settings.categories(db.session())})


@bp.post("/cases/<case_ref>/transition")
@signed_in
def transition(case_ref: str) -> Response:
    form = common.form_fields()
    data = {k: (form.get(k) or None) for k in ("to", "note", "outcome", "feedback")}
    _act(lambda: flows.transition(g.signed, case_ref, data), "Status updated.")
    return redirect(url_for("reviewer.case", case_ref=case_ref))


@bp.post("/cases/<case_ref>/message")
@signed_in
def message(case_ref: str) -> Response:
    form = common.form_fields()
    internal = form.get("internal") == "yes"
    _act(lambda: flows.post_message(g.signed, case_ref, form.get("body"), internal),
         "Note saved." if internal else "Message sent to the reporter.")
    return redirect(url_for("reviewer.case", case_ref=case_ref))


@bp.post("/cases/<case_ref>/share")
@signed_in
def share(case_ref: str) -> Response:
    form = common.form_fields()
    _act(lambda: flows.share(g.signed, case_ref, form.get("reviewer_id")), "Case shared.")
    return redirect(url_for("reviewer.case", case_ref=case_ref))


@bp.get("/cases/<case_ref>/attachments/<attachment_id>")
@signed_in
def attachment(case_ref: str, attachment_id: str) -> Any:
    return flows.download(g.signed, case_ref, attachment_id)


def _act(action: Callable[[], Any], done: str) -> None:
    try:
        action()
        flash(done, "ok")
    except ApiError as exc:
        if exc.code == 404:
            raise
        flash(exc.message, "error")


def _account_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    needed = review.account_setup_needed(db.session(), current_app.config, g.signed.reviewer)
    return render_template("reviewer/account.html", me=g.signed.reviewer, error=error,
                           must_change=needed == "password",
                           totp_required=current_app.config["REQUIRE_TOTP"]), status


@bp.get("/account")
@signed_in
def account() -> tuple[str, int]:
    return _account_page()


@bp.post("/account/password")
@signed_in
def change_password() -> Any:
    form = common.form_fields()
    try:
        review.change_password(db.session(), current_app.config, g.signed.reviewer,
                               form.get("old", ""), form.get("new", ""))
    except (review.AuthError, InvalidInput) as exc:
        return _account_page(exc.message, 400)
    session.clear()
    return redirect(url_for("reviewer.login_form"))


def _totp_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    me = g.signed.reviewer
    secret = None
    if me.totp_secret_ct is None:
        # The pending secret lives in the signed session cookie of this browser only.
        secret = session.get("totp_pending") or review.new_totp_secret()
        session["totp_pending"] = secret
    return render_template("reviewer/totp.html", me=me, error=error, secret=secret,
                           uri=review.totp_uri(me, secret) if secret else None,
                           required=current_app.config["REQUIRE_TOTP"]), status


@bp.get("/account/totp")
@signed_in
def totp_form() -> tuple[str, int]:
    return _totp_page()


@bp.post("/account/totp")
@signed_in
def totp_enable() -> Any:
    form = common.form_fields()
    try:
        review.enable_totp(db.session(), g.signed, session.get("totp_pending", ""),
                           form.get("otp"), form.get("password"))
    except (review.AuthError, InvalidInput) as exc:
        return _totp_page(exc.message, 400)
    session.pop("totp_pending", None)
    flash("Two-factor sign-in is on: you will need a code from your app each time.", "ok")
    return redirect(url_for("reviewer.account"))


@bp.post("/account/totp/disable")
@signed_in
def totp_disable() -> Any:
    form = common.form_fields()
    try:
        review.disable_totp(db.session(), current_app.config, g.signed, form.get("otp"),
                            form.get("password"))
    except (review.AuthError, InvalidInput) as exc:
        return _totp_page(exc.message, 400)
    flash("Two-factor sign-in is off.", "ok")
    return redirect(url_for("reviewer.account"))


@bp.get("/stats")
@signed_in
def stats() -> str:
    """Aggregate figures for reviewers and administrators: small counts suppressed, no cases."""
    from whistle import charts, i18n, models

    session = db.session()
    categories = settings.categories(session)
    figures = stats_mod.overview(session, instance_keys(), current_app.config,
                                 g.signed.reviewer_id, [c["id"] for c in categories],
                                 models.today())
    return render_template("stats.html", me=g.signed.reviewer, figures=figures,
                           chart=charts.breakdown_chart, small=stats_mod.SMALL,
                           category_labels={c["id"]: c["label"] for c in categories},
                           rtl=i18n.current().direction == "rtl",
                           threshold=stats_mod.THRESHOLD,
                           ack_days=current_app.config["ACK_DEADLINE_DAYS"],
                           feedback_days=current_app.config["FEEDBACK_DEADLINE_DAYS"])
