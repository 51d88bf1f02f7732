"""CSRF on every form, POST-only state changes, sessions that die, and headers on every response.

The forms and routes are read from the app's URL map, so a form added later is
covered by the same checks. CSRF protection is on here exactly as in
production (Flask-WTF's default; nothing in the test config turns it off).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import PASSWORD, login, make_reviewer, submit_concern
from tests.support.probes import Snapshot, build_paths, cookie_header, csrf, html_login

NEW_PASSWORD = "an entirely new passphrase"


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> dict[str, Any]:
    ann = make_reviewer(app, "Ann Reviewer", admin=True)
    bob = make_reviewer(app, "Bob Reviewer")
    receipt = submit_concern(client)
    assert client.post("/api/v1/status", json={"token": receipt["token"]}).status_code == 200
    return {"ann": ann, "bob": bob, "case_ref": receipt["case_ref"], "token": receipt["token"],
            "values": {"case_ref": receipt["case_ref"], "reviewer_id": bob["id"]}}


def form_paths(app: Flask, world: dict[str, Any]) -> list[str]:
    paths = build_paths(app, "POST", False, world["values"])
    assert {"/report", "/status", "/reviewer/login", "/reviewer/logout",
            f"/reviewer/cases/{world['case_ref']}/transition"} <= set(paths)
    return paths


def plausible_form(path: str, world: dict[str, Any]) -> dict[str, str]:
    """Fields that would make the form act if the CSRF check let it through."""
    return {"category": "conduct", "details": "forged", "token": world["token"],
            "action": "reply", "body": "forged", "email": world["ann"]["email"],
            "password": PASSWORD, "to": "acknowledged", "reviewer_id": world["bob"]["id"],
            "old": PASSWORD, "new": NEW_PASSWORD, "name": "Forged", "code": "000000"}


# -- CSRF -----------------------------------------------------------------------------


def test_csrf_protection_is_on_as_in_production(app: Flask, app_config: dict[str, Any],
                                                world: dict[str, Any]) -> None:
    # This module sets no CSRF option: what is checked here is the default configuration.
    assert not {k for k in app_config if k.startswith("WTF_")}
    victim = html_login(app, world["ann"])
    snap = Snapshot(app)
    tokenless = victim.post(f"/reviewer/cases/{world['case_ref']}/transition",
                            data={"to": "acknowledged"})
    assert tokenless.status_code == 400
    signed_in = app.test_client().post("/reviewer/login", data={
        "email": world["ann"]["email"], "password": PASSWORD})
    assert signed_in.status_code == 400 and cookie_header(signed_in) is None
    snap.assert_unchanged("forms posted without a CSRF token")


@pytest.mark.parametrize("how", ["missing", "foreign", "tampered", "empty", "from_other_app"])
def test_every_form_refuses_a_bad_csrf_token_and_changes_nothing(
        app: Flask, world: dict[str, Any], how: str, tmp_path: Path) -> None:
    victim = html_login(app, world["ann"])
    own = csrf(victim, "/reviewer/account")
    attacker = app.test_client()
    foreign = csrf(attacker, "/report")  # valid, signed, but for another session
    bad = {"missing": None, "foreign": foreign, "empty": "",
           "tampered": own[:-3] + ("AAA" if not own.endswith("AAA") else "BBB"),
           "from_other_app": "IjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMCI"
                             ".ZZZZZZ.abcdefghijklmnopqrstuvwxyz0"}[how]
    snap = Snapshot(app)
    for path in form_paths(app, world):
        data = plausible_form(path, world)
        if bad is not None:
            data["csrf_token"] = bad
        response = victim.post(path, data=data)
        assert response.status_code == 400, (path, how, response.status_code)
        page = response.get_data(as_text=True)
        # The reporter's two forms come back with their words instead (issue 20), and so
        # does the older reply form (POST /status with action=reply).
        assert "did not come from Whistle" in page or (
            path in ("/report", "/status/reply", "/status")
            and "could not confirm that this form came from its own page" in page), path
        snap.assert_unchanged(f"{path} with a {how} CSRF token")
    assert victim.get("/reviewer/").status_code == 200  # the forged sign-out did nothing


def test_a_form_posted_from_another_site_is_refused_even_with_a_valid_token(
        app: Flask, world: dict[str, Any]) -> None:
    victim = html_login(app, world["ann"])
    token = csrf(victim, "/reviewer/account")
    snap = Snapshot(app)
    ref = world["case_ref"]
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://localhost.evil.example"}):
        for path, data in ((f"/reviewer/cases/{ref}/transition", {"to": "acknowledged"}),
                           ("/reviewer/logout", {}), ("/report", {"category": "conduct",
                                                                 "details": "forged"})):
            response = victim.post(path, data=data | {"csrf_token": token}, headers=headers)
            assert response.status_code == 403, (path, headers)
            snap.assert_unchanged(path)
    # Browsers send "Origin: null" under Referrer-Policy: no-referrer, and same-origin posts
    # carry our own origin: both are fine.
    for headers in ({"Origin": "null"}, {"Origin": "http://localhost"},
                    {"Origin": "https://localhost:8443"}, {"Sec-Fetch-Site": "same-origin"}):
        response = victim.post(f"/reviewer/cases/{ref}/message", headers=headers,
                               data={"csrf_token": token, "body": "hello"})
        assert response.status_code == 302, headers


def test_state_changes_are_post_only(app: Flask, world: dict[str, Any]) -> None:
    web = html_login(app, world["ann"])
    get_paths = set(build_paths(app, "GET", False, world["values"]))
    api_get = set(build_paths(app, "GET", True, world["values"]))
    snap = Snapshot(app)
    for path in form_paths(app, world) + build_paths(app, "POST", True, world["values"]):
        response = web.get(path, headers=login(web, world["bob"]) if path in api_get else {})
        if path in get_paths or path in api_get:
            assert response.status_code in (200, 302, 404), path  # a page, not the action
        else:
            assert response.status_code == 405, path
    for path in ("/reviewer/logout", f"/reviewer/cases/{world['case_ref']}/transition",
                 f"/reviewer/cases/{world['case_ref']}/message",
                 "/reviewer/account/password", "/api/v1/auth/logout", "/api/v1/concerns"):
        assert web.get(path).status_code == 405, path
    assert web.get("/reviewer/").status_code == 200  # GET /reviewer/logout did not sign out
    state = snap.take()
    # Signing Bob in (above) is the only change: one more reviewer session, nothing else.
    assert {k: v for k, v in state.items() if k != "reviewer_sessions"} == {
        k: v for k, v in snap.before.items() if k != "reviewer_sessions"}


# -- sessions -------------------------------------------------------------------------


def session_value(response: Any) -> str:
    header = cookie_header(response)
    assert header is not None, "no session cookie set"
    return header.split(";", 1)[0].split("=", 1)[1]


def test_the_session_cookie_is_renewed_at_sign_in_and_a_planted_one_gains_nothing(
        app: Flask, world: dict[str, Any]) -> None:
    victim = app.test_client()
    page = victim.get("/reviewer/login")
    planted = session_value(page)  # what an attacker could have set before sign-in
    response = victim.post("/reviewer/login", data={
        "csrf_token": csrf(victim, "/reviewer/login"), "email": world["ann"]["email"],
        "password": PASSWORD})
    assert response.status_code == 302
    signed = session_value(response)
    assert signed != planted
    attacker = app.test_client()
    attacker.set_cookie("whistle", planted)
    assert attacker.get("/reviewer/").status_code == 302  # still a stranger
    again = html_login(app, world["ann"])
    assert again.get_cookie("whistle").value != signed  # a fresh secret per sign-in


def replay(app: Flask, cookie: str) -> FlaskClient:
    client = app.test_client()
    client.set_cookie("whistle", cookie)
    return client


def signed_in_everywhere(app: Flask, reviewer: dict[str, str]
                         ) -> tuple[FlaskClient, str, dict[str, str]]:
    web = html_login(app, reviewer)
    cookie = web.get_cookie("whistle")
    assert cookie is not None
    bearer = login(app.test_client(), reviewer)
    return web, cookie.value, bearer


def assert_dead(app: Flask, cookie: str, bearer: dict[str, str], case_ref: str) -> None:
    old = replay(app, cookie)
    response = old.get("/reviewer/")
    assert response.status_code == 302 and "/reviewer/login" in response.headers["Location"]
    assert old.get(f"/reviewer/cases/{case_ref}").status_code == 302
    assert app.test_client().get("/api/v1/cases", headers=bearer).status_code == 401


def test_a_session_is_dead_after_logout(app: Flask, world: dict[str, Any]) -> None:
    web, cookie, bearer = signed_in_everywhere(app, world["ann"])
    assert replay(app, cookie).get("/reviewer/").status_code == 200
    response = web.post("/reviewer/logout", data={"csrf_token": csrf(web, "/reviewer/")})
    assert response.status_code == 302
    assert app.test_client().post("/api/v1/auth/logout", headers=bearer).status_code == 204
    assert_dead(app, cookie, bearer, world["case_ref"])


def test_every_session_is_dead_after_a_password_change(app: Flask,
                                                      world: dict[str, Any]) -> None:
    web, cookie, bearer = signed_in_everywhere(app, world["ann"])
    _other_web, other_cookie, other_bearer = signed_in_everywhere(app, world["ann"])
    response = web.post("/reviewer/account/password", data={
        "csrf_token": csrf(web, "/reviewer/account"), "old": PASSWORD, "new": NEW_PASSWORD})
    assert response.status_code in (200, 302)
    for c, b in ((cookie, bearer), (other_cookie, other_bearer)):
        assert_dead(app, c, b, world["case_ref"])
    fresh = app.test_client()
    assert fresh.post("/api/v1/auth/login", json={"email": world["ann"]["email"],
                                                  "password": PASSWORD}).status_code == 401
    assert fresh.post("/api/v1/auth/login", json={"email": world["ann"]["email"],
                                                  "password": NEW_PASSWORD}).status_code == 200


def test_every_session_is_dead_once_the_reviewer_is_disabled(app: Flask,
                                                            world: dict[str, Any]) -> None:
    _web, cookie, bearer = signed_in_everywhere(app, world["bob"])
    result = app.test_cli_runner().invoke(args=["reviewer", "disable", world["bob"]["id"]])
    assert result.exit_code == 0, result.output
    assert_dead(app, cookie, bearer, world["case_ref"])
    response = app.test_client().post("/api/v1/auth/login", json={
        "email": world["bob"]["email"], "password": PASSWORD})
    assert response.status_code == 401


# -- headers --------------------------------------------------------------------------

FORBIDDEN_IN_CSP = ("http:", "https:", "*", "unsafe-inline", "unsafe-eval", "data:", "blob:",
                    "unsafe-hashes", "strict-dynamic")


def csp_directives(value: str) -> dict[str, list[str]]:
    out = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def assert_security_headers(response: Any, what: str) -> None:
    h = response.headers
    csp = csp_directives(h.get("Content-Security-Policy", ""))
    assert csp.get("default-src") == ["'none'"], what
    for name in ("object-src", "base-uri", "frame-ancestors"):
        assert csp.get(name) == ["'none'"], (what, name)
    for sources in csp.values():
        for source in sources:
            assert not any(bad in source for bad in FORBIDDEN_IN_CSP), (what, source)
            assert source in ("'none'", "'self'", "sandbox") or source.startswith("'nonce-"), (
                what, source)
    assert h.get("Cache-Control") == "no-store", what
    assert "Expires" not in h or h["Expires"] == "0", what
    assert h.get("Referrer-Policy") == "no-referrer", what
    assert h.get("X-Content-Type-Options") == "nosniff", what
    assert h.get("Cross-Origin-Opener-Policy") == "same-origin", what
    policy = h.get("Permissions-Policy", "")
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()", "usb=()"):
        assert feature in policy, (what, feature)


@pytest.fixture
def boom(app: Flask) -> Flask:
    """An app with one route that fails, to see the generic 500 page."""
    def explode() -> str:
        raise RuntimeError("secret detail that must not be shown")

    app.add_url_rule("/boom-for-tests", "boom", explode)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def every_response(app: Flask, world: dict[str, Any]) -> list[tuple[str, Any]]:
    anon = app.test_client()
    web = html_login(app, world["ann"])
    bearer = login(anon, world["ann"])
    out: list[tuple[str, Any]] = []
    for path in build_paths(app, "GET", False, world["values"]):
        out.append((f"GET {path} (anonymous)", anon.get(path)))
        out.append((f"GET {path} (signed in)", web.get(path)))
    for path in build_paths(app, "GET", True, world["values"]):
        out.append((f"GET {path}", anon.get(path, headers=bearer)))
        out.append((f"GET {path} (no bearer)", anon.get(path)))
    token = csrf(anon, "/report")
    out += [
        ("404 page", anon.get("/no/such/page")),
        ("404 api", anon.get("/api/v1/nothing")),
        ("405", anon.put("/report")),
        ("413", anon.post("/api/v1/concerns", data=b"x" * (app.config["MAX_JSON_BYTES"] + 1),
                          content_type="application/json")),
        ("415", anon.post("/report", data="x", content_type="text/plain")),
        ("400 csrf", anon.post("/report", data={"details": "x"})),
        ("401 api", anon.get("/api/v1/cases")),
        ("201 api", anon.post("/api/v1/concerns", json={"category": "conduct",
                                                       "details": "x"})),
        ("201 page", anon.post("/report", data={"csrf_token": token, "category": "conduct",
                                                "details": "x"})),
        ("404 status page", anon.post("/status", data={"csrf_token": token, "token": "no"})),
        ("200 status page", anon.post("/status", data={"csrf_token": token,
                                                       "token": world["token"]})),
        ("302 sign-in", app.test_client().post("/reviewer/login", data={
            "csrf_token": csrf(app.test_client(), "/reviewer/login")})),
        ("500", anon.get("/boom-for-tests")),
        ("static", anon.get("/static/style.css")),
        ("healthz", anon.get("/healthz")),
        ("readyz", anon.get("/readyz")),
    ]
    return out


def test_every_response_carries_the_security_headers(boom: Flask,
                                                     world: dict[str, Any]) -> None:
    responses = every_response(boom, world)
    assert len(responses) > 40
    for what, response in responses:
        assert_security_headers(response, what)
    by_name = dict(responses)
    assert by_name["500"].status_code == 500
    assert "secret detail" not in by_name["500"].get_data(as_text=True)
    assert "Traceback" not in by_name["500"].get_data(as_text=True)


def test_over_tls_cookies_are_host_prefixed_and_secure_and_hsts_is_sent(
        app: Flask, world: dict[str, Any]) -> None:
    client = app.test_client()
    page = client.get("/reviewer/login", base_url="https://localhost")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = cookie_header(page)
    assert cookie is not None and cookie.startswith("__Host-whistle=")
    attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"secure", "httponly", "path=/", "samesite=strict"} <= attrs
    assert not any(a.startswith("domain") for a in attrs)


# -- reporter pages: no persistent cookie, nothing from another origin ------------------------


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "formaction", "srcset", "poster", "data",
                        "background", "cite", "ping") and value is not None:
                self.urls.append((tag, name, value))
            if tag == "link" and name == "rel" and value and any(
                    r in value for r in ("preconnect", "dns-prefetch", "prefetch", "prerender")):
                raise AssertionError(f"<link rel={value}> would contact another host")
            if tag == "meta" and name == "http-equiv" and (value or "").lower() == "refresh":
                raise AssertionError("meta refresh")


def assert_same_origin_only(page: str, what: str) -> None:
    links = Links()
    links.feed(page)
    for tag, name, url in links.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("//"), (
            what, tag, name, url)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page), what


def assert_no_persistent_cookie(response: Any, what: str) -> None:
    for header in response.headers.getlist("Set-Cookie"):
        attrs = [a.strip().lower() for a in header.split(";")[1:]]
        assert not any(a.startswith(("expires", "max-age")) for a in attrs), (what, header)
        assert "httponly" in attrs and "samesite=strict" in attrs, (what, header)


def test_reporter_pages_set_no_persistent_cookie_and_load_nothing_from_elsewhere(
        app: Flask, world: dict[str, Any]) -> None:
    reporter = app.test_client()
    token = csrf(reporter, "/report")
    submitted = reporter.post("/report", data={"csrf_token": token, "category": "conduct",
                                               "details": "x"})
    words = re.findall(r'<span class="w">([a-z]+)</span>', submitted.get_data(as_text=True))
    pages = [("GET /", reporter.get("/")), ("GET /report", reporter.get("/report")),
             ("GET /status", reporter.get("/status")), ("POST /report", submitted)]
    status = reporter.post("/status", data={"csrf_token": token, "token": " ".join(words)})
    pages.append(("POST /status", status))
    pages.append(("reply", reporter.post("/status", data={
        "csrf_token": token, "token": " ".join(words), "action": "reply", "body": "hi"})))
    pages.append(("miss", reporter.post("/status", data={"csrf_token": token, "token": "x"})))
    for what, response in pages:
        assert response.status_code in (200, 201, 404), what
        assert_no_persistent_cookie(response, what)
        assert_same_origin_only(response.get_data(as_text=True), what)
    css = reporter.get("/static/style.css").get_data(as_text=True)
    assert "@import" not in css and not re.search(r"url\(\s*['\"]?(https?:)?//", css)


def test_the_reporter_api_sets_no_cookie_at_all(app: Flask, world: dict[str, Any]) -> None:
    client = app.test_client()
    client.get("/report")  # a browser may hold a session cookie from the pages
    assert client.get_cookie("whistle") is not None
    calls = [
        client.get("/api/v1/intake"),
        client.post("/api/v1/concerns", json={"category": "conduct", "details": "x"}),
        client.post("/api/v1/concerns", json={"category": "nope", "details": "x"}),
        client.post("/api/v1/concerns", data="x", content_type="text/plain"),
        client.post("/api/v1/status", json={"token": world["token"]}),
        client.post("/api/v1/status", json={"token": "wrong"}),
        client.post("/api/v1/status/messages", json={"token": world["token"], "body": "hi"}),
        client.post("/api/v1/status/token", json={"token": world["token"]}),
        client.post("/api/v1/status/attachments", data={"token": "x"},
                    content_type="multipart/form-data"),
        client.post("/api/v1/auth/login", json={"email": world["ann"]["email"],
                                                "password": PASSWORD}),
        client.post("/api/v1/auth/login", json={"email": "x@example.org", "password": "x"}),
    ]
    for response in calls:
        assert "Set-Cookie" not in response.headers, (response.request.path,
                                                      response.status_code)
        assert response.is_json
