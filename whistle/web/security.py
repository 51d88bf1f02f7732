"""Headers on every response, cookie policy, and refusing what no route should accept."""

from __future__ import annotations

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": ("camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
                           "interest-cohort=(), browsing-topics=()"),
}


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, named ``__Host-`` and Secure whenever the request came over TLS."""

    def get_cookie_name(self, app: Flask) -> str:
        return "__Host-whistle" if request.is_secure else "whistle"

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


def _headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=63072000"
    return response


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_PATH="/", SESSION_COOKIE_DOMAIN=None,
                      PERMANENT_SESSION_LIFETIME=1800)
    app.after_request(_headers)
