"""The doors of matching escrow (issue 25, whistle.cases.escrow): a reporter sends a held
concern on now or withdraws it (JSON and the status page's forms), and administrators see
how many concerns are held, suppressed like every statistic.

The token is looked up as every reporter call looks it up (``shared.find_case``: misses
counted, 404 alike); a held concern answers there with ``escrow.Held``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, render_template
from flask_wtf.csrf import CSRFProtect

from whistle import current_settings, instance_keys
from whistle.cases import escrow
from whistle.errors import DomainError
from whistle.people import roster
from whistle.store import db
from whistle.web import common, shared
from whistle.web.common import ApiError

bp = Blueprint("escrow_api", __name__, url_prefix="/api/v1")
pages = Blueprint("escrow_pages", __name__)

NOT_HELD = "this concern is not held: it has already been sent to reviewers"


def init_app(app: Flask, csrf: CSRFProtect) -> None:
    """Register both doors; the JSON one takes no cookies, so no CSRF token (the cross-site
    check of whistle.web.security still runs), the pages check theirs."""
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_blueprint(pages)


def held_by_token(token: Any) -> escrow.HeldView:
    """The held concern a token opens; 404 as any miss, 409 ``not_held`` for a case."""
    try:
        view = shared.find_case(token)
    except escrow.Held as held:
        return held.held
    if view is None:
        raise ApiError(404, "not_found", "no case matches this token")
    raise ApiError(409, "not_held", NOT_HELD)


def release(held: escrow.HeldView) -> str:
    return escrow.release_now(db.session(), instance_keys(), current_settings(), held,
                              on_sealed=roster.sealed_by_first_concern)


@bp.post("/status/release")
def release_held() -> Response:
    """Send a held concern on now: routed as usual, its deadlines starting today."""
    case_ref = release(held_by_token(common.json_body().get("token")))
    return jsonify(case_ref=case_ref, status="received")


@bp.post("/status/withdraw")
def withdraw_held() -> Response:
    """Withdraw a held concern: deleted at once; the token then answers 404."""
    held = held_by_token(common.json_body().get("token"))
    escrow.withdraw(db.session(), held)
    return jsonify(case_ref=held.row.id, status="withdrawn")


@bp.get("/admin/escrow")
def held_count() -> Response:
    """How many concerns are held, for administrators: ``null`` under the statistics
    threshold (the held concerns themselves are in no other list or count)."""
    if not g.signed.is_admin:
        raise ApiError(403, "forbidden", "administrators only")
    return jsonify(held=escrow.held_count(db.session()))


@pages.app_template_global()
def escrow_days() -> int:
    """``ESCROW_DAYS``, for the form's explanation."""
    return current_settings().escrow_days


# -- the status page's forms (no JavaScript; the token in a hidden field) -----------------


def form_about(form: dict[str, Any]) -> dict[str, Any]:
    """The report form's "about whom" section as the concern's ``about`` and ``escrow``."""
    fields = {k: form.get(f"about_{k}") or None for k in ("email", "name", "role")}
    out: dict[str, Any] = {"escrow": form.get("escrow") == "yes"}
    if any(fields.values()):
        out["about"] = {k: v for k, v in fields.items() if v is not None}
    return out


def held_page(held: escrow.HeldView, token: str, **extra: Any) -> str:
    return render_template("report/status_held.html", status=escrow.status_json(held, instance_keys()),
                           token=token, **extra)


def _on_held(act: Callable[[escrow.HeldView], object], released: bool) -> tuple[str, int]:
    """Look the posted token up and act on its held concern; a miss shows the token form."""
    form = common.form_fields()
    try:
        held = held_by_token(form.get("token", ""))
    except DomainError as exc:
        return render_template("report/status_login.html", error=exc.message), exc.status
    act(held)
    return render_template("report/status_held_done.html", released=released), 200


@pages.post("/status/release")
def release_page() -> tuple[str, int]:
    return _on_held(release, True)


@pages.post("/status/withdraw")
def withdraw_page() -> tuple[str, int]:
    return _on_held(lambda held: escrow.withdraw(db.session(), held), False)
