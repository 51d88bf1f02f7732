"""Administration without traps (issue 21, items 8 and 9): disabling asks first, a disabled
account can be re-enabled and a lost password reset from the pages (each a proposal that a
second person approves, as on the command line), a first-steps checklist with a warning
while the recovery key file is still on the server, and a test mail."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, url_for
from flask_babel import gettext
from flask_mail import Message as MailMessage
from werkzeug.wrappers import Response

from whistle import crypto, current_settings, instance_keys
from whistle.errors import DomainError
from whistle.people import approvals
from whistle.store import db, options
from whistle.store.models import Reviewer
from whistle.web import common

bp = Blueprint("admin_people", __name__, url_prefix="/admin")


def _account(reviewer_id: str) -> Reviewer:
    r = db.session().get(Reviewer, reviewer_id) if len(reviewer_id) <= 64 else None
    if r is None:
        abort(404)
    return r


def confirm_disable(reviewer_id: str) -> tuple[str, int]:
    """The page that asks before an account is disabled (admin.disable calls it)."""
    r = _account(reviewer_id)
    return render_template("admin/confirm_disable.html", me=g.signed.reviewer, r=r), 200


def _propose(reviewer_id: str, kind: str, done: Callable[[str], str]) -> Response:
    r = _account(reviewer_id)
    common.form_fields()
    try:
        approvals.propose_for(db.session(), kind, r.id, {}, g.signed.reviewer_id)
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin.home"))
    flash(done(r.name), "ok")
    return redirect(url_for("admin.home"))


@bp.post("/reviewers/<reviewer_id>/reenable")
def reenable(reviewer_id: str) -> Response:
    return _propose(reviewer_id, approvals.REENABLE, lambda name: gettext(
        "Re-enabling %(name)s is proposed: it takes effect when a second person approves it.",
        name=name))


@bp.post("/reviewers/<reviewer_id>/reset")
def reset(reviewer_id: str) -> Response | tuple[str, int]:
    if common.form_fields().get("step") == "ask":  # asked once more first, as disabling
        r = _account(reviewer_id)
        return render_template("admin/confirm_reset.html", me=g.signed.reviewer, r=r), 200
    return _propose(reviewer_id, approvals.RESET, lambda name: gettext(
        "A password reset for %(name)s is proposed: once a second person approves it, they get "
        "a link by mail to choose a new password.", name=name))


def recovery_file_left() -> str | None:
    """Where ``init`` wrote the recovery private key by default, if it is still there."""
    base = Path(current_settings().keys_dir).resolve().parent
    fingerprint = crypto.digest(instance_keys().recovery_public).hex()[:12]
    path = base / f"whistle-recovery-private-key-{fingerprint}.txt"
    return str(path) if path.exists() else None


def first_steps() -> dict[str, Any]:
    """What a new installation still needs (shown on the administration home)."""
    session = db.session()
    cfg = current_app.config
    return {"recovery_file": recovery_file_left(),
            "mail_server": cfg.get("MAIL_SERVER") or "",
            "public_url": cfg.get("PUBLIC_URL") or "",
            "organisation_named": bool(options.get(session, "organisation", {})),
            "form_changed": options.get(session, "categories", None) is not None}


@bp.post("/test-mail")
def test_mail() -> Response:
    """Send one mail to the signed-in administrator now, through the configured server."""
    common.form_fields()
    me = g.signed.reviewer
    state: Any = current_app.extensions["mail"]
    try:
        with state.connect() as conn:
            conn.send(MailMessage(
                subject="Whistle: test mail", recipients=[me.email],
                sender=current_app.config["MAIL_DEFAULT_SENDER"],
                body="This is a test mail from Whistle. Mail settings work.\n"))
    except (OSError, smtplib.SMTPException) as exc:
        flash(gettext("The test mail could not be sent: %(reason)s",
                      reason=f"{type(exc).__name__}: {exc}"[:200]), "error")
        return redirect(url_for("admin.home"))
    flash(gettext("A test mail was sent to %(email)s.", email=me.email), "ok")
    return redirect(url_for("admin.home"))
