"""The one place that turns failures into answers: JSON under ``/api/``, an HTML page elsewhere.

- ``DomainError`` (and its family: bad input, not found, refused, ...) -> its own status;
- a database that is locked, stopped or unreachable -> 503 (the only 503s besides missing
  key material, which is a ``DomainError`` too);
- a ciphertext that does not open -> 409 ``integrity_error``;
- Werkzeug's HTTP errors (404 route, 405, 413, CSRF ...) -> their status;
- a 413 on a reporter's form -> that form again with what they typed (whistle.web.oversize);
- anything else -> 500, logging the exception's type only (its text might quote input).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SqlTimeout
from werkzeug.exceptions import HTTPException, SecurityError

from whistle import crypto
from whistle.errors import DomainError, KeyMaterialError, Refused
from whistle.store import db
from whistle.web import oversize

UNAVAILABLE = ("Whistle cannot reach its database just now. Nothing you sent was saved. "
               "Please keep your text and try again in a few minutes.")
NOT_SAVED = ("Your concern was NOT saved: the database is unavailable. Please keep your "
             "text and try again shortly.")
# The public text for missing key material (the exception's own text names paths).
NO_KEYS_JSON = "Whistle is not ready: key material is missing"
NO_KEYS_HTML = "Whistle is not ready: its key material is missing."
INTEGRITY = ("This case's data failed its integrity check; nothing was changed. "
             "Tell the administrators.")
# What an HTML page says for Werkzeug's own answers (their descriptions are English only and
# speak to developers); listed in whistle.wording.KNOWN, so the page says them translated.
HTTP_PAGE_TEXTS = {
    400: "Whistle could not read what your browser sent. Go back, reload the page and try "
         "again.",
    405: "This page cannot be used that way. Start again from Whistle's home page.",
    413: "What you sent is too large. Check the limits on files and text, then try again.",
}
CASE_INTEGRITY = ("this case's data failed its integrity check or your key cannot open it; "
                  "the event was not changed")


class Unavailable(DomainError):
    """The database could not store or read what was asked (503, try again later)."""

    code, status, message = "unavailable", 503, UNAVAILABLE

    def __init__(self, message: str = UNAVAILABLE) -> None:
        super().__init__(message, headers={"Retry-After": "30"})


def wants_json() -> bool:
    return request.path.startswith("/api/")


def _answer(status: int, code: str, message: str, field: str | None = None,
            headers: dict[str, str] | None = None) -> Any:
    if wants_json():
        body: dict[str, Any] = {"error": code, "message": message}
        if field:
            body["field"] = field
        return jsonify(body), status, headers or {}
    return _page(status, message), status, headers or {}


def _page(status: int, message: str) -> str:
    """The error page. A refusal before the view (the request screen, the CSRF hook) has no
    unit of work yet, and the page's frame may read settings: it gets a read-only one."""
    try:
        db.session()
    except RuntimeError:
        with db.unit_of_work(db.database_of(current_app), db.Mode.READ):
            return render_template("error.html", code=status, message=message)
    return render_template("error.html", code=status, message=message)


@contextlib.contextmanager
def case_integrity() -> Iterator[None]:
    """Around a reviewer's call on a case: a key or sealed part that does not open is a 409
    ``integrity_error`` that the page can show like any other refusal."""
    try:
        yield
    except crypto.CryptoError as exc:
        raise Refused("integrity_error", CASE_INTEGRITY) from exc


def _rollback() -> None:
    with contextlib.suppress(SQLAlchemyError):
        db.session().rollback()


def register(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError) -> Any:
        if isinstance(exc, KeyMaterialError):
            return _answer(503, exc.code, NO_KEYS_JSON if wants_json() else NO_KEYS_HTML)
        if exc.status == 413 and not wants_json():  # a reporter's form: their words back
            page = oversize.answer(exc)
            if page is not None:
                return page
        return _answer(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        if isinstance(exc, SecurityError):
            # A Host outside TRUSTED_HOSTS: no URL can be built for it, so no template.
            return Response("Bad request: unknown host\n", 400, mimetype="text/plain")
        if code == 413 and not wants_json():
            page = oversize.answer(exc)
            if page is not None:
                return page
        error = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or (error if wants_json() else "")
        if not wants_json() and exc.description == type(exc).description:
            message = HTTP_PAGE_TEXTS.get(code, "Something went wrong.")
        if code == 400 and "CSRF" in (exc.description or ""):
            error, message = "csrf_failed", ("This form expired or did not come from "
                                             "Whistle. Go back, reload and send it again.")
        return _answer(code, error, message)

    @app.errorhandler(OperationalError)
    @app.errorhandler(SqlTimeout)
    def database_unavailable(exc: Exception) -> Any:
        # Locked, stopped or unreachable: a clear 503, never a 500 (the type only is logged).
        _rollback()
        current_app.logger.warning("database unavailable (%s) on %s", type(exc).__name__,
                                   request.endpoint)
        return _answer(503, "unavailable", UNAVAILABLE, headers={"Retry-After": "30"})

    @app.errorhandler(crypto.CryptoError)
    def integrity(_exc: crypto.CryptoError) -> Any:
        # A wrapped key or sealed part that does not open (tampered, or not this key's).
        _rollback()
        current_app.logger.warning("integrity check failed on %s", request.endpoint)
        return _answer(409, "integrity_error", INTEGRITY)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        # Log the type only: the exception text might quote user input.
        current_app.logger.error("unhandled %s on %s", type(exc).__name__, request.endpoint)
        return _answer(500, "internal_error",
                       "something went wrong" if wants_json() else "Something went wrong.")
