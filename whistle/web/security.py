"""Headers on every response, cookie policy, and refusing what no route should accept.

``screen`` runs before every other request hook (CSRF included), so a request
that no route can take gets its documented 4xx before a view sees it:
control characters or invalid UTF-8 in the path or query (400), a repeated query parameter
(400), a non-form body posted to an HTML page (415), a form or a reporter API
write posted from another site (403), and a form with invalid UTF-8 or NUL (400) or too many
fields (413).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface

from whistle.web import access
from whistle.web.common import FORM_TYPES, ApiError, form_pairs

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": ("camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
                           "interest-cohort=(), browsing-topics=()"),
}
# Never cached anywhere, static files and downloads included: a shared or
# seized computer keeps no copy of what a reporter or reviewer saw.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# In the path or the query: control characters, surrogates, and U+FFFD (what Werkzeug
# makes of percent-encoded bytes that are not UTF-8).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff\ufffd]")


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, named ``__Host-`` and Secure whenever the request came over TLS."""

    def get_cookie_name(self, app: Flask) -> str:
        return "__Host-whistle" if request.is_secure else "whistle"

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


def _headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    for name, value in NO_STORE.items():
        response.headers[name] = value
    response.headers.pop("Expires", None)  # no-store says it all; no date to leak
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=63072000"
    return response


def _cross_site() -> bool:
    """A form POST that a browser says came from another site (defence in depth beside CSRF)."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("Origin")
    # Browsers send "Origin: null" for same-site posts under Referrer-Policy: no-referrer.
    if origin is None or origin == "null":
        return False
    # Hosts, not ports: a proxy may drop the port from Host, and ports are one site anyway.
    own = urlsplit("//" + request.host).hostname
    return urlsplit(origin).hostname != own


def _cross_site_api() -> bool:
    """A reporter API write that a browser says came from any other origin.

    Stricter than for forms, which carry CSRF tokens: ``same-site`` (another host of the
    same registrable domain) is refused too, and so is ``Origin: null`` (a sandboxed frame
    or a ``data:`` page) unless ``Sec-Fetch-Site`` says the request is the site's own.
    Scripts, apps and the command line send neither header and are not affected.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    if origin == "null":
        return fetch_site not in ("same-origin", "none")
    own = urlsplit("//" + request.host).hostname
    return urlsplit(origin).hostname != own


def _reporter_api_write() -> bool:
    """A write to the JSON API that needs no account: the reporter's (``/api/v1/concerns``,
    ``/api/v1/status...``) and the other public ones (sign-in, enrolment)."""
    return request.path.startswith("/api/") and request.endpoint in access.PUBLIC


def screen() -> None:
    """Refuse what no route accepts, before CSRF checks or any view see the request."""
    if request.endpoint is None:
        return  # routing failed: the 404 or 405 follows
    try:
        # Strictly, unlike request.args (which keeps undecodable escapes as literal text).
        query = parse_qsl(request.query_string.decode("ascii"), keep_blank_values=True,
                          errors="strict")
    except ValueError as exc:  # UnicodeDecodeError included
        raise ApiError(400, "invalid_request", "the address is not valid UTF-8") from exc
    if _CONTROL.search(request.path) or any(_CONTROL.search(k + v) for k, v in query):
        raise ApiError(400, "invalid_request", "the address contains control characters")
    keys = [k for k, _v in query]
    if len(keys) != len(set(keys)):
        raise ApiError(400, "invalid_request", "a parameter was sent more than once")
    if request.method != "POST":
        return
    if request.path.startswith("/api/"):  # JSON: the body is checked there
        if _reporter_api_write() and _cross_site_api():
            raise ApiError(403, "cross_site",
                           "this request came from another site: Whistle accepts concerns "
                           "only from its own pages or from programs that send no Origin")
        return
    if request.mimetype not in FORM_TYPES:
        raise ApiError(415, "unsupported_media_type", "send the form as a web form")
    if _cross_site():
        raise ApiError(403, "cross_site", "this form was sent from another site")
    # Every form, including those whose view reads no field (sign out): strict UTF-8, no NUL,
    # within the size and field limits, before CSRF or the view parses it.
    form_pairs()


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_PATH="/", SESSION_COOKIE_DOMAIN=None,
                      PERMANENT_SESSION_LIFETIME=1800)
    # Registered before CSRFProtect's hook (web.init_app calls this first).
    app.before_request(screen)
    app.after_request(_headers)
