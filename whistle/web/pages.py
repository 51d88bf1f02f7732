"""Landing page, readiness, and error pages for the HTML side."""

from __future__ import annotations

import contextlib

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SqlTimeout
from werkzeug.exceptions import HTTPException, SecurityError

from whistle import crypto, db, settings
from whistle.keys import KeyError_
from whistle.web.common import ApiError

bp = Blueprint("pages", __name__)


@bp.get("/")
def landing() -> str:
    cfg = current_app.config
    return render_template("landing.html", advice=settings.advice(db.session()),
                           ack_days=cfg["ACK_DEADLINE_DAYS"],
                           feedback_days=cfg["FEEDBACK_DEADLINE_DAYS"],
                           min_reviewers=cfg["MIN_REVIEWERS"])


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


def _wants_json() -> bool:
    return request.path.startswith("/api/")


UNAVAILABLE = ("Whistle cannot reach its database just now. Nothing you sent was saved. "
               "Please keep your text and try again in a few minutes.")


def register_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = exc.code or 500
        if isinstance(exc, SecurityError):
            # A Host outside TRUSTED_HOSTS: no URL can be built for it, so no template.
            return Response("Bad request: unknown host\n", 400, mimetype="text/plain")
        if isinstance(exc, ApiError):
            error, message, headers = exc.error, exc.message, exc.extra_headers
        else:
            error = (exc.name or "error").lower().replace(" ", "_")
            message, headers = exc.description or "", {}
            if code == 400 and "CSRF" in (exc.description or ""):
                error, message = "csrf_failed", ("This form expired or did not come from "
                                                 "Whistle. Go back, reload and send it again.")
        if _wants_json():
            return jsonify(error=error, message=message), code, headers
        return render_template("error.html", code=code, message=message), code, headers

    @app.errorhandler(KeyError_)
    def no_keys(_exc: KeyError_):  # type: ignore[no-untyped-def]
        return render_template("error.html", code=503,
                               message="Whistle is not ready: its key material is missing."), 503

    @app.errorhandler(OperationalError)
    @app.errorhandler(SqlTimeout)
    def database_unavailable(_exc: Exception):  # type: ignore[no-untyped-def]
        # Locked, stopped or unreachable: a clear 503, never a 500 (the type only is logged).
        with contextlib.suppress(SQLAlchemyError):
            db.session().rollback()
        current_app.logger.warning("database unavailable (%s) on %s", type(_exc).__name__,
                                   request.endpoint)
        headers = {"Retry-After": "30"}
        if _wants_json():
            return jsonify(error="unavailable", message=UNAVAILABLE), 503, headers
        return render_template("error.html", code=503, message=UNAVAILABLE), 503, headers

    @app.errorhandler(crypto.CryptoError)
    def integrity(_exc: crypto.CryptoError):  # type: ignore[no-untyped-def]
        # A wrapped key or sealed part that does not open (tampered, or not this key's).
        with contextlib.suppress(SQLAlchemyError):
            db.session().rollback()
        current_app.logger.warning("integrity check failed on %s", request.endpoint)
        message = ("This case's data failed its integrity check; nothing was changed. "
                   "Tell the administrators.")
        if _wants_json():
            return jsonify(error="integrity_error", message=message), 409
        return render_template("error.html", code=409, message=message), 409

    @app.errorhandler(Exception)
    def unexpected(_exc: Exception):  # type: ignore[no-untyped-def]
        # Log the type only: the exception text might quote user input.
        current_app.logger.error("unhandled %s on %s", type(_exc).__name__, request.endpoint)
        if _wants_json():
            return jsonify(error="internal_error", message="something went wrong"), 500
        return render_template("error.html", code=500, message="Something went wrong."), 500
