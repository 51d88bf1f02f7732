"""Landing page, readiness, and error pages for the HTML side."""

from __future__ import annotations


from flask import Blueprint, Response, current_app, jsonify, render_template
from sqlalchemy import text

from whistle import current_settings
from whistle.store import db, options

bp = Blueprint("pages", __name__)


@bp.get("/")
def landing() -> str:
    cfg = current_settings()
    return render_template("report/landing.html", advice=options.advice(db.session()),
                           ack_days=cfg.ack_deadline_days,
                           feedback_days=cfg.feedback_deadline_days,
                           min_reviewers=cfg.min_reviewers)


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    problems = []
    if current_app.extensions.get("whistle_keys") is None:
        problems.append("key material not loaded")
    try:
        db.session().execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any database failure means not ready
        problems.append("database unavailable")
    if problems:
        return jsonify(status="unavailable", problems=problems), 503
    return jsonify(status="ready"), 200
