"""Reviewer pages: sign in, inbox, case view and actions. Everything here needs a session."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select
from werkzeug.wrappers import Response

from whistle import current_settings, instance_keys
from whistle.cases import inbox as case_list
from whistle.cases import checkins, sharing, workflow
from whistle.cases import stats as stats_mod
from whistle.people import accounts, adminlog, credentials, sessions, twofactor
from whistle.store import db, options
from whistle.store.models import Reviewer
from whistle.errors import AuthError, DomainError, InvalidInput
from whistle.web import adminlog_page, common, experience, shared

bp = Blueprint("reviewer", __name__, url_prefix="/reviewer")


@bp.get("/login")
def login_form() -> str:
    return render_template("reviewer/login.html", error=None)


@bp.post("/login")
def login() -> Any:
    form = common.form_fields()
    try:
        secret, reviewer = shared.login(form.get("email"), form.get("password"),
                                       form.get("otp") or None)
    except DomainError as exc:
        return render_template("reviewer/login.html", error=exc.message,
                               email=form.get("email", "")), exc.status, exc.headers
    session.clear()  # a fresh cookie at sign-in: no fixation
    session["sid"] = secret
    if reviewer.is_operator:  # an intake operator's page is the form (issue 24)
        return redirect(url_for("operator.form"))
    return redirect(url_for("admin.home") if reviewer.is_admin and not reviewer.is_reviewer
                    else url_for("reviewer.inbox"))


@bp.post("/logout")
def logout() -> Response:
    sessions.logout(db.session(), g.signed)
    session.clear()
    return redirect(url_for("reviewer.login_form"))


@bp.get("/")
def inbox() -> Any:
    if g.signed.operator_only:  # an operator has no inbox, nor the roster notices (issue 24)
        return redirect(url_for("operator.form"))
    status, page, per_page = shared.list_args(request.args)
    sort = request.args.get("sort") or "overdue"
    if sort not in case_list.SORTS:
        sort = "overdue"
    found, total = case_list.list_cases(db.session(), g.signed.reviewer_id, status, page, per_page,
                                     sort)
    cases = [case_list.summary(c) for c in found]
    return render_template("reviewer/inbox.html", cases=cases,
                           activity=experience.inbox_activity(g.signed.reviewer_id, cases),
                           total=total, page=page, per_page=per_page, status=status,
                           statuses=workflow.STATUSES, sort=sort, sorts=case_list.SORTS,
                           me=g.signed.reviewer,
                           counts=stats_mod.inbox_counts(db.session(), g.signed.reviewer_id),
                           category_labels={c["id"]: c["label"]
                                            for c in options.categories(db.session())},
                           roster_notices=_roster_notices())


def _roster_notices() -> list[tuple[str, str, str]]:
    """Changes to who may read concerns that this reviewer has not yet said they saw."""
    session = db.session()
    events = adminlog.roster_changes(session, g.signed.reviewer.roster_seen)
    if not events:
        return []
    names = dict(session.execute(select(Reviewer.id, Reviewer.name)).tuples().all())
    return [(e.at.date().isoformat(), *adminlog_page.describe(e, names)) for e in events]


@bp.post("/roster-seen")
def roster_seen() -> Response:
    """The reviewer has seen the roster's changes up to now."""
    me = g.signed.reviewer
    latest = adminlog.roster_changes(db.session(), me.roster_seen, limit=10_000)
    if latest:
        me.roster_seen = latest[-1].seq
        db.session().commit()
    return redirect(url_for("reviewer.inbox"))


@bp.get("/cases/<case_ref>")
def case(case_ref: str) -> str:
    data = shared.open_case(g.signed, case_ref)
    from whistle.cases import activity  # issue 21: the inbox marks what comes after this

    activity.mark_seen(db.session(), data["case_ref"], g.signed.reviewer_id)
    others = sharing.share_candidates(db.session(), instance_keys(), data["case_ref"],
                                     {x["id"] for x in data["reviewers"]})
    names = experience.trail_names(data) | {x["id"]: x["name"] for x in data["reviewers"]}
    return render_template("reviewer/case.html", case=data, me=g.signed.reviewer,
                           outcomes=workflow.OUTCOMES, others=others, names=names,
                           pending_shares=shared.pending_shares(data["case_ref"], names),
                           may_confirm=g.signed.reviewer_id in workflow.assigned_at_proposal(
                               (e["type"], e["actor"], e["data"]) for e in data["events"]),
                           category_labels={c["id"]: c["label"]
                                            for c in options.categories(db.session())})


@bp.post("/cases/<case_ref>/transition")
def transition(case_ref: str) -> Any:
    form = common.form_fields()
    data = {k: (form.get(k) or None) for k in ("to", "note", "outcome", "feedback")}
    if form.get("step") == "ask":  # the page asks once more first (issue 21)
        return experience.confirm_transition(case_ref, data)
    _act(lambda: shared.transition(g.signed, case_ref, data), "Status updated.")
    return redirect(url_for("reviewer.case", case_ref=case_ref))


@bp.post("/cases/<case_ref>/message")
def message(case_ref: str) -> Response:
    form = common.form_fields()
    internal = form.get("internal") == "yes"
    _act(lambda: shared.post_message(g.signed, case_ref, form.get("body"), internal),
         "Note saved." if internal else "Message sent to the reporter.")
    return redirect(url_for("reviewer.case", case_ref=case_ref))


@bp.post("/cases/<case_ref>/share")
def share(case_ref: str) -> Any:
    form = common.form_fields()
    if form.get("step") == "ask":
        return experience.confirm_share(case_ref, form.get("reviewer_id"))
    _act(lambda: shared.share(g.signed, case_ref, form.get("reviewer_id")),
         "Sharing proposed: another reviewer of this case must approve it.")
    return redirect(url_for("reviewer.case", case_ref=case_ref))


@bp.post("/cases/<case_ref>/reviewers/<reviewer_id>/approve")
def approve_share(case_ref: str, reviewer_id: str) -> Response:
    common.form_fields()
    _act(lambda: shared.approve_share(g.signed, case_ref, reviewer_id), "Case shared.")
    return redirect(url_for("reviewer.case", case_ref=case_ref))


@bp.post("/cases/<case_ref>/reviewers/<reviewer_id>/reject")
def reject_share(case_ref: str, reviewer_id: str) -> Response:
    common.form_fields()
    _act(lambda: shared.reject_share(g.signed, case_ref, reviewer_id), "Sharing rejected.")
    return redirect(url_for("reviewer.case", case_ref=case_ref))


@bp.post("/cases/<case_ref>/recuse")
def recuse(case_ref: str) -> Any:
    """Stepping off: on success the case is no longer theirs, so back to the inbox."""
    form = common.form_fields()
    if form.get("step") == "ask":
        return experience.confirm_recusal(case_ref, form.get("reason"))
    try:
        shared.recuse(g.signed, case_ref, form.get("reason"))
    except DomainError as exc:
        if exc.status == 404:
            raise
        flash(exc.message, "error")
        return redirect(url_for("reviewer.case", case_ref=case_ref))
    flash("You have stepped off the case; another reviewer has it now.", "ok")
    return redirect(url_for("reviewer.inbox"))


@bp.get("/cases/<case_ref>/attachments/<attachment_id>")
def attachment(case_ref: str, attachment_id: str) -> Any:
    return shared.download(g.signed, case_ref, attachment_id)


_act = common.act


def _account_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    needed = accounts.account_setup_needed(db.session(), current_settings(), g.signed.reviewer)
    return render_template("reviewer/account.html", me=g.signed.reviewer, error=error,
                           must_change=needed == "password",
                           totp_required=current_settings().require_totp), status


@bp.get("/account")
def account() -> tuple[str, int]:
    return _account_page()


@bp.post("/account/password")
def change_password() -> Any:
    form = common.form_fields()
    if "new2" in form and form.get("new2") != form.get("new"):  # typed twice (issue 21)
        from flask_babel import gettext

        return _account_page(gettext("The two new passwords are not the same: nothing was "
                                     "changed."), 400)
    try:
        credentials.change_password(db.session(), current_settings(), instance_keys(),
                                    g.signed.reviewer, form.get("old", ""), form.get("new", ""))
    except (AuthError, InvalidInput) as exc:
        return _account_page(exc.message, 400)
    session.clear()
    from whistle.people import strength  # the server-side meter (issue 21)

    rating = strength.rate(form.get("new", ""), (g.signed.reviewer.name, g.signed.reviewer.email))
    return redirect(url_for("reviewer.login_form", changed="password", strength=rating.score))


def _totp_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    me = g.signed.reviewer
    secret = None
    if me.totp_secret_ct is None:
        # The pending secret lives in the signed session cookie of this browser only.
        secret = session.get("totp_pending") or twofactor.new_totp_secret()
        session["totp_pending"] = secret
    return render_template("reviewer/totp.html", me=me, error=error, secret=secret,
                           uri=twofactor.totp_uri(me, secret) if secret else None,
                           required=current_settings().require_totp), status


@bp.get("/account/totp")
def totp_form() -> tuple[str, int]:
    return _totp_page()


@bp.post("/account/totp")
def totp_enable() -> Any:
    form = common.form_fields()
    try:
        twofactor.enable_totp(db.session(), g.signed, session.get("totp_pending", ""),
                           form.get("otp"), form.get("password"))
    except (AuthError, InvalidInput) as exc:
        return _totp_page(exc.message, 400)
    session.pop("totp_pending", None)
    flash("Two-factor sign-in is on: you will need a code from your app each time.", "ok")
    return redirect(url_for("reviewer.account"))


@bp.post("/account/totp/disable")
def totp_disable() -> Any:
    form = common.form_fields()
    try:
        twofactor.disable_totp(db.session(), current_settings(), g.signed, form.get("otp"),
                            form.get("password"))
    except (AuthError, InvalidInput) as exc:
        return _totp_page(exc.message, 400)
    flash("Two-factor sign-in is off.", "ok")
    return redirect(url_for("reviewer.account"))


@bp.get("/stats")
def stats() -> str:
    """Aggregate figures for reviewers and administrators: small counts suppressed, no cases.
    The same figures for every viewer (nothing of the viewer goes in: issue 19, item 7)."""
    from whistle import charts, i18n
    from whistle.store import models

    session = db.session()
    categories = options.categories(session)
    figures = stats_mod.overview(session, current_settings(), [c["id"] for c in categories],
                                 models.today())
    return render_template("stats.html", me=g.signed.reviewer, figures=figures,
                           chart=charts.breakdown_chart, small=stats_mod.SMALL,
                           category_labels={c["id"]: c["label"] for c in categories},
                           rtl=i18n.current().direction == "rtl",
                           threshold=stats_mod.THRESHOLD,
                           ack_days=current_settings().ack_deadline_days,
                           feedback_days=current_settings().feedback_deadline_days,
                           checkins=checkins.breakdown(session))  # issue 23
