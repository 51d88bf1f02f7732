"""Reviewer pages: sign in, inbox, case view and actions. Everything here needs a session."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import (Blueprint, current_app, flash, g, redirect, render_template, request,
                   session, url_for)
from werkzeug.wrappers import Response

from whistle import db, review, workflow
from whistle.web import common, flows
from whistle.web.common import ApiError

bp = Blueprint("reviewer", __name__, url_prefix="/reviewer")


def current() -> review.SignedIn | None:
    token = session.get("sid")
    return review.authenticate(db.session(), current_app.config, token) if token else None


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        signed = current()
        if signed is None:
            session.clear()
            return redirect(url_for("reviewer.login_form"))
        g.signed = signed
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
                               email=form.get("email", "")), exc.code
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
    found, total = review.list_cases(db.session(), g.signed.reviewer.id, status, page, per_page)
    cases = sorted((review.summary(c) for c in found), key=lambda c: not c["overdue"])
    return render_template("reviewer/inbox.html", cases=cases, total=total, page=page,
                           per_page=per_page, status=status, statuses=workflow.STATUSES,
                           me=g.signed.reviewer)


@bp.get("/cases/<case_ref>")
@signed_in
def case(case_ref: str) -> str:
    data = flows.open_case(g.signed, case_ref)
    return render_template("reviewer/case.html", case=data, me=g.signed.reviewer,
                           outcomes=workflow.OUTCOMES,
                           others=[r for r in flows.reviewer_choices(db.session())
                                   if r["id"] not in {x["id"] for x in data["reviewers"]}])


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


@bp.get("/account")
@signed_in
def account() -> str:
    return render_template("reviewer/account.html", me=g.signed.reviewer, error=None)


@bp.post("/account/password")
@signed_in
def change_password() -> Any:
    form = common.form_fields()
    try:
        review.change_password(db.session(), current_app.config, g.signed.reviewer,
                               form.get("old", ""), form.get("new", ""))
    except (review.AuthError, Exception) as exc:
        from whistle.validation import InvalidInput

        if not isinstance(exc, (review.AuthError, InvalidInput)):
            raise
        return render_template("reviewer/account.html", me=g.signed.reviewer,
                               error=getattr(exc, "message", "wrong password")), 400
    session.clear()
    return redirect(url_for("reviewer.login_form"))
