"""Who may reach what: every route under ``/reviewer``, ``/admin`` and ``/api/v1`` needs a
signed-in reviewer unless its endpoint is on ``PUBLIC`` (deny by default).

``check`` runs before every view (``whistle.web.transactions.WhistleFlask``), so a new
view is protected by being written, not by remembering a decorator. Reporters' routes (``/``, ``/report``,
``/status``) and first-run ``/setup`` (guarded by its one-time code) lie outside the
protected prefixes.
"""

from __future__ import annotations

from typing import Any

from flask import g, redirect, request, session, url_for

from whistle import current_settings
from whistle.people import sessions
from whistle.store import db
from whistle.web.common import ApiError

PROTECTED_PREFIXES = ("/reviewer", "/admin", "/api/", "/operator")

# Reachable without signing in, under the protected prefixes.
PUBLIC = frozenset({
    "reviewer.login_form", "reviewer.login",
    # The reporter's token, and receipts anyone may check (issue 22).
    "identity_api.reporter_identity", "identity_api.verify_receipt", "identity_api.receipt_keys",
    "lifecycle_api.checkin",  # the reporter's token, like api.status (issue 23)
    "oral_api.transcript",  # the reporter's token: agree or correct the record (issue 24)
    "api.intake_options", "api.submit_concern", "api.status", "api.reporter_message",
    "api.rotate_token", "api.reporter_attachments", "api.login", "changes_api.enrol",
    "api.public_roster", "escrow_api.release_held", "escrow_api.withdraw_held", "openapi.openapi",
})

# Pages a reviewer may reach while their account still needs setting up.
SETUP_PAGES = {
    "password": ("reviewer.account", {"reviewer.account", "reviewer.change_password",
                                      "reviewer.logout"}),
    "totp": ("reviewer.totp_form", {"reviewer.totp_form", "reviewer.totp_enable",
                                    "reviewer.logout"}),
}


# What an intake operator (issue 24) may reach: its own form and API, its account, and the
# list of cases (always empty for it). Routes about one case answer 404 at once, as they do
# to anyone not assigned, whatever a future route's own check does. Everything else (the
# administration log, pending changes, statistics, the list of reviewers) answers 403:
# an operator reviews, administers and approves nothing, so it sees none of that either.
OPERATOR_SCOPE = frozenset({
    "operator.form", "operator.submit", "operator.words", "oral_api.operator_concern",
    "reviewer.inbox", "reviewer.logout", "reviewer.account", "reviewer.change_password",
    "reviewer.totp_form", "reviewer.totp_enable", "reviewer.totp_disable",
    "api.logout", "api.me", "api.cases", "changes_api.change_password",
})


# API calls a reviewer may make while their account still needs setting up.
_WHILE_SETTING_UP = frozenset({"api.logout", "changes_api.change_password"})


def protected(path: str, endpoint: str | None) -> bool:
    """Does this request need a signed-in reviewer?"""
    return path.startswith(PROTECTED_PREFIXES) and endpoint not in PUBLIC


def current() -> sessions.SignedIn | None:
    """The reviewer signed in through this browser's session cookie, if any."""
    token = session.get("sid")
    return sessions.authenticate(db.session(), current_settings(), token) if token else None


def _operator_scope(signed: sessions.SignedIn) -> None:
    """403 when an intake operator asks for anything outside ``OPERATOR_SCOPE``."""
    if not signed.operator_only or request.endpoint in OPERATOR_SCOPE:
        return
    rule = request.url_rule.rule if request.url_rule is not None else ""
    if "<case_ref>" in rule:  # about one case: 404, as to anyone not assigned, for any case
        raise ApiError(404, "not_found", "no such case")
    raise ApiError(403, "forbidden", "an intake operator files concerns and sees nothing else")


def _api_guard() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    signed = (sessions.authenticate(db.session(), current_settings(), token.strip())
              if scheme.lower() == "bearer" else None)
    if signed is None:
        raise ApiError(401, "unauthorized", "sign in first",
                       headers={"WWW-Authenticate": "Bearer"})
    g.signed = signed
    _operator_scope(signed)
    if request.endpoint not in _WHILE_SETTING_UP and signed.setup_needed(current_settings()):
        raise ApiError(403, "account_setup_required", "finish setting up your account "
                       "(your own password, or two-factor sign-in) on the reviewer pages")


def _page_guard() -> Any:
    signed = current()
    if signed is None:
        session.clear()
        return redirect(url_for("reviewer.login_form"))
    g.signed = signed
    needed = signed.setup_needed(current_settings())
    if needed is not None:
        target, allowed = SETUP_PAGES[needed]
        if request.endpoint not in allowed:
            return redirect(url_for(target))
    if request.path.startswith("/admin") and not signed.is_admin:
        raise ApiError(403, "forbidden", "administrators only")
    _operator_scope(signed)
    return None


def check() -> Any:
    """None when the request may go on to its view; else the answer (a redirect to the
    sign-in page) or an ``ApiError`` (401, 403)."""
    if request.endpoint is None or not protected(request.path, request.endpoint):
        return None  # no such route (404 follows), or a public one
    if request.path.startswith("/api/"):
        return _api_guard()
    return _page_guard()
