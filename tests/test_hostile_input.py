"""Hostile and malformed input on every route gets a documented 4xx and changes nothing.

"Changes nothing" is checked, not assumed: every test compares the row count of
every table, the concerns and reviewers themselves, and the private temporary
directory the app was given, before and after (see ``Snapshot``). The routes
are read from the app's URL map, so a route added later is covered too.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.support import probes
from tests.support.factories import (
    PASSWORD,
    database_bytes,
    login,
    make_operator,
    make_reviewer,
    submit_concern,
)
from tests.support.probes import Snapshot, csrf, html_login
from whistle import settings_of, tokens, validation
from whistle.store import db
from whistle.web import common

DOCUMENTED_4XX = {400, 403, 404, 405, 409, 413, 414, 415, 429, 431}
LIMITS = {
    "MAX_JSON_BYTES": 64 * 1024,
    "MAX_FORM_MEMORY_SIZE": 64 * 1024,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    "MAX_ATTACHMENT_BYTES": 1024 * 1024,
    "MAX_ATTACHMENTS_TOTAL": 1536 * 1024,
    "MAX_FORM_PARTS": 64,
}


@pytest.fixture
def app_config() -> dict[str, Any]:
    return dict(LIMITS)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's temporary directory for this test: it must stay empty."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@pytest.fixture
def world(app: Flask, client: FlaskClient, private_tmp: Path) -> dict[str, Any]:
    """Two reviewers (Ann also administers), one case, Ann signed in on both sides."""
    ann = make_reviewer(app, "Ann Reviewer", admin=True)
    bob = make_reviewer(app, "Bob Reviewer")
    operator = make_operator(app, "Olga Operator")  # enrolled before the roster seals
    receipt = submit_concern(client, details="A calm first concern.")
    # Use the token once: a later valid lookup then changes nothing (last use is a day).
    assert client.post("/api/v1/status", json={"token": receipt["token"]}).status_code == 200
    web = html_login(app, ann)
    return {"ann": ann, "bob": bob, "receipt": receipt, "case_ref": receipt["case_ref"],
            "token": receipt["token"], "api": login(client, ann), "web": web,
            "csrf": csrf(web, "/reviewer/account"), "operator": login(client, operator)}


def snapshot(app: Flask, private_tmp: Path) -> Snapshot:
    return Snapshot(app, private_tmp)


def build_paths(app: Flask, method: str, api: bool, world: dict[str, Any]) -> list[str]:
    return probes.build_paths(app, method, api, {"case_ref": world["case_ref"],
                                                 "reviewer_id": world["bob"]["id"]})


def multipart(parts: list[tuple[str, bytes]], boundary: str = "hostileBoundary") -> bytes:
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                    .encode() + value + b"\r\n" for name, value in parts)
    return body + f"--{boundary}--\r\n".encode()


MP = "multipart/form-data; boundary=hostileBoundary"
URLENC = "application/x-www-form-urlencoded"


# -- every HTML form ---------------------------------------------------------------------


def html_variants(token: str) -> list[tuple[str, dict[str, Any], int]]:
    big = LIMITS["MAX_FORM_MEMORY_SIZE"]
    t = token.encode()
    return [
        ("text/plain", {"data": b"csrf_token=" + t + b"&details=x",
                        "content_type": "text/plain"}, 415),
        ("json", {"data": json.dumps({"csrf_token": token}), "content_type": "application/json"},
         415),
        ("no content type", {"data": b""}, 415),
        ("percent-encoded invalid UTF-8", {"data": b"csrf_token=" + t + b"&details=%FF%FE%80",
                                           "content_type": URLENC}, 400),
        ("raw invalid UTF-8", {"data": b"csrf_token=" + t + b"&details=\xff\xfe",
                               "content_type": URLENC}, 400),
        ("NUL", {"data": b"csrf_token=" + t + b"&details=a%00b", "content_type": URLENC}, 400),
        ("multipart invalid UTF-8", {"data": multipart([("csrf_token", t),
                                                        ("details", b"\xff\xfe\xfd")]),
                                     "content_type": MP}, 400),
        ("too many parts", {"data": multipart([("csrf_token", t)] + [
            (f"f{i}", b"v") for i in range(LIMITS["MAX_FORM_PARTS"] + 5)]),
            "content_type": MP}, 413),
        ("too many urlencoded fields", {"data": b"csrf_token=" + t + b"".join(
            b"&f%d=v" % i for i in range(LIMITS["MAX_FORM_PARTS"] + 5)),
            "content_type": URLENC}, 413),
        ("one enormous urlencoded field", {"data": b"csrf_token=" + t + b"&details=" +
                                           b"a" * (big + 1), "content_type": URLENC}, 413),
        ("one enormous multipart field", {"data": multipart([("csrf_token", t),
                                                             ("details", b"a" * (big + 1))]),
                                          "content_type": MP}, 413),
        ("over the size limit", {"data": b"a" * (LIMITS["MAX_CONTENT_LENGTH"] + 1),
                                 "content_type": URLENC}, 413),
        ("chunked over the size limit", {
            "input_stream": io.BytesIO(b"csrf_token=" + t + b"&details=" +
                                       b"a" * LIMITS["MAX_CONTENT_LENGTH"]),
            "content_type": URLENC, "headers": {"Transfer-Encoding": "chunked"},
            "environ_overrides": {"wsgi.input_terminated": True}}, 413),
    ]


def test_every_html_form_refuses_malformed_bodies_with_a_4xx_and_changes_nothing(
        app: Flask, world: dict[str, Any], private_tmp: Path) -> None:
    web: FlaskClient = world["web"]
    paths = build_paths(app, "POST", False, world)
    assert {"/report", "/status", "/reviewer/login", "/reviewer/logout"} <= set(paths)
    snap = snapshot(app, private_tmp)
    for path in paths:
        for name, kwargs, expected in html_variants(world["csrf"]):
            kwargs = dict(kwargs)
            if "input_stream" in kwargs:
                kwargs["input_stream"] = io.BytesIO(kwargs["input_stream"].getvalue())
            response = web.post(path, **kwargs)
            assert response.status_code == expected, (path, name, response.status_code,
                                                       response.get_data(as_text=True)[:300])
            snap.assert_unchanged(f"POST {path} ({name})")
    # Still signed in: not even the sign-out form acted on a malformed body.
    assert web.get("/reviewer/").status_code == 200


# -- every JSON API route -----------------------------------------------------------------


def api_variants() -> list[tuple[str, dict[str, Any], int]]:
    limit = LIMITS["MAX_JSON_BYTES"]
    return [
        ("text/plain", {"data": b'{"token": "x"}', "content_type": "text/plain"}, 415),
        ("urlencoded", {"data": b"token=x", "content_type": URLENC}, 415),
        ("no content type", {"data": b'{"token": "x"}'}, 415),
        ("invalid UTF-8", {"data": b'{"body": "\xff\xfe"}', "content_type": "application/json"},
         400),
        ("NUL", {"data": b'{"body": "a\\u0000b"}', "content_type": "application/json"}, 400),
        ("NUL in a key", {"data": b'{"bo\\u0000dy": "a"}', "content_type": "application/json"},
         400),
        ("unpaired surrogate", {"data": b'{"body": "\\udc00"}',
                                "content_type": "application/json"}, 400),
        ("nested surrogate", {"data": b'{"a": [{"b": ["\\ud800x"]}]}',
                              "content_type": "application/json"}, 400),
        ("duplicate keys", {"data": b'{"body": "a", "body": "b"}',
                            "content_type": "application/json"}, 400),
        ("not an object", {"data": b'["body"]', "content_type": "application/json"}, 400),
        ("truncated", {"data": b'{"body": "a', "content_type": "application/json"}, 400),
        ("NaN", {"data": b'{"body": NaN}', "content_type": "application/json"}, 400),
        ("deep nesting", {"data": b"[" * 30_000 + b"]" * 30_000,
                          "content_type": "application/json"}, 400),
        ("deep nesting over the limit", {"data": b"[" * 100_000 + b"]" * 100_000,
                                         "content_type": "application/json"}, 413),
        ("one enormous field", {"data": b'{"body": "' + b"a" * limit + b'"}',
                                "content_type": "application/json"}, 413),
        ("over the size limit", {"data": b"{" + b" " * (LIMITS["MAX_CONTENT_LENGTH"] + 1) + b"}",
                                 "content_type": "application/json"}, 413),
        ("chunked over the JSON limit", {
            "input_stream": io.BytesIO(b'{"body": "' + b"a" * limit + b'"}'),
            "content_type": "application/json", "headers": {"Transfer-Encoding": "chunked"},
            "environ_overrides": {"wsgi.input_terminated": True}}, 413),
    ]


MULTIPART_API = {"/api/v1/status/attachments"}  # takes multipart only
NO_BODY_API = {"/api/v1/auth/logout"}  # takes no body at all
OPERATOR_API = {"/api/v1/operator/concerns"}  # intake operators only (others: 403 first)


def test_every_api_route_refuses_malformed_json_with_a_json_4xx_and_changes_nothing(
        app: Flask, client: FlaskClient, world: dict[str, Any], private_tmp: Path) -> None:
    paths = build_paths(app, "POST", True, world)
    assert {"/api/v1/concerns", "/api/v1/status", "/api/v1/auth/login"} <= set(paths)
    snap = snapshot(app, private_tmp)
    for path in paths:
        if path in NO_BODY_API:
            continue
        for name, kwargs, expected in api_variants():
            kwargs = dict(kwargs)
            if "input_stream" in kwargs:
                kwargs["input_stream"] = io.BytesIO(kwargs["input_stream"].getvalue())
            if path in MULTIPART_API:
                expected = 415  # takes multipart only: any of these is the wrong type there
            signed = world["operator"] if path in OPERATOR_API else world["api"]
            response = client.post(path, headers={**signed, **kwargs.pop("headers", {})},
                                   **kwargs)
            got = response.status_code
            assert got == expected, (path, name, got, response.get_data(as_text=True)[:300])
            body = response.get_json()
            assert body and body["error"] and body["message"], (path, name)
            assert "Set-Cookie" not in response.headers
            snap.assert_unchanged(f"POST {path} ({name})")


def test_multipart_concerns_refuse_bad_parts(app: Flask, client: FlaskClient,
                                             world: dict[str, Any], private_tmp: Path) -> None:
    snap = snapshot(app, private_tmp)
    good = json.dumps({"category": "conduct", "details": "x"}).encode()
    cases = [
        ([("concern", b'{"category": "conduct", "details": "\xff"}')], 400),
        ([("concern", good), ("concern", good)], 400),  # a part twice
        ([("concern", good)] + [(f"x{i}", b"v") for i in range(70)], 413),
        ([("concern", b'{"category": "conduct", "details": "' + b"a" * 70_000 + b'"}')], 413),
        ([("concern", b'{"category": "conduct", "details": "a\\u0000"}')], 400),
        ([("other", good)], 400),
    ]
    for parts, expected in cases:
        response = client.post("/api/v1/concerns", data=multipart(parts), content_type=MP)
        assert response.status_code == expected, response.get_data(as_text=True)[:300]
        snap.assert_unchanged(str(expected))


# -- parameters ---------------------------------------------------------------------------


def test_repeated_or_malformed_query_parameters_are_refused_everywhere(
        app: Flask, client: FlaskClient, world: dict[str, Any], private_tmp: Path) -> None:
    snap = snapshot(app, private_tmp)
    ref = world["case_ref"]
    for path in ("/api/v1/cases?page=1&page=2", "/api/v1/cases?status=open&status=closed",
                 "/reviewer/?status=open&status=closed", "/?a=1&a=2", "/report?x=1&x=2",
                 "/report?x=%FF%FE", "/api/v1/cases?status=%00", "/reviewer/?page=1%0d%0a",
                 f"/api/v1/cases/{ref}%00", f"/reviewer/cases/{ref}%1b", "/status?t=%ED%A0%80"):
        who = world["web"] if path.startswith("/reviewer") else client
        response = who.get(path, headers=world["api"])
        assert response.status_code == 400, path
    snap.assert_unchanged()


def test_duplicate_form_fields_are_refused(app: Flask, world: dict[str, Any],
                                           private_tmp: Path) -> None:
    web, token, ref = world["web"], world["csrf"], world["case_ref"]
    snap = snapshot(app, private_tmp)
    posts = [
        ("/report", "category=conduct&details=a&details=b"),
        ("/report", "category=conduct&category=fraud&details=a"),
        ("/status", f"token={world['token']}&token=x"),
        ("/status", f"token={world['token']}&action=reply&body=a&body=b"),
        ("/reviewer/login", f"email={world['ann']['email']}&email=x&password=y"),
        (f"/reviewer/cases/{ref}/transition", "to=acknowledged&to=closed"),
        (f"/reviewer/cases/{ref}/message", "body=a&body=b"),
        (f"/reviewer/cases/{ref}/share", f"reviewer_id={world['bob']['id']}&reviewer_id=x"),
        ("/reviewer/account/password", f"old={PASSWORD}&new=a-new-long-password&new=x"),
    ]
    for path, body in posts:
        response = web.post(path, data=f"csrf_token={token}&{body}", content_type=URLENC)
        assert response.status_code == 400, (path, response.get_data(as_text=True)[:300])
        snap.assert_unchanged(path)


SINGLE_LINE_BAD = ["a\x00b", "a\x1b[2Jb", "a\bb", "a\rb", "a\nb", "a\r\nBcc: x@example.org",
                   "a\u2028b", "a\x7fb", "a\tb"]


@pytest.mark.parametrize("value", SINGLE_LINE_BAD, ids=repr)
@pytest.mark.parametrize("field", ["name", "role", "contact", "category", "unit"])
def test_control_characters_in_single_line_fields_are_refused(
        app: Flask, client: FlaskClient, world: dict[str, Any], private_tmp: Path,
        field: str, value: str) -> None:
    body: dict[str, Any] = {"category": "conduct", "details": "x"}
    if field in ("category", "unit"):
        body[field] = value
    else:
        body["identity"] = {"name": "Pat", field: value}
    snap = snapshot(app, private_tmp)
    response = client.post("/api/v1/concerns", json=body)
    assert response.status_code == 400
    snap.assert_unchanged()


@pytest.mark.parametrize("value", ["a\x00b", "a\x1b[2Jb", "a\bb", "a\x7fb", "a\x0bb"], ids=repr)
def test_multi_line_text_keeps_newlines_but_refuses_other_controls(
        app: Flask, client: FlaskClient, world: dict[str, Any], private_tmp: Path,
        value: str) -> None:
    snap = snapshot(app, private_tmp)
    for path, body in (("/api/v1/concerns", {"category": "conduct", "details": value}),
                       ("/api/v1/status/messages", {"token": world["token"], "body": value}),
                       (f"/api/v1/cases/{world['case_ref']}/messages", {"body": value})):
        response = client.post(path, json=body, headers=world["api"])
        assert response.status_code == 400, path
    snap.assert_unchanged()
    ok = client.post("/api/v1/concerns",
                     json={"category": "conduct", "details": "line one\r\nline two\n\tindented"})
    assert ok.status_code == 201


def test_unpaired_surrogates_are_refused_in_every_json_text_field(
        app: Flask, client: FlaskClient, world: dict[str, Any], private_tmp: Path) -> None:
    ref, s = world["case_ref"], "x\ud800y"
    sends = [
        ("/api/v1/concerns", {"category": "conduct", "details": s}),
        ("/api/v1/concerns", {"category": "conduct", "details": "x", "identity": {"name": s}}),
        ("/api/v1/concerns", {"category": "conduct", "details": "x",
                              "identity": {"name": "P", "contact": s}}),
        ("/api/v1/status", {"token": s}),
        ("/api/v1/status/messages", {"token": world["token"], "body": s}),
        ("/api/v1/status/token", {"token": s}),
        ("/api/v1/auth/login", {"email": s, "password": PASSWORD}),
        ("/api/v1/auth/login", {"email": world["ann"]["email"], "password": s}),
        (f"/api/v1/cases/{ref}/messages", {"body": s}),
        (f"/api/v1/cases/{ref}/notes", {"body": s}),
        (f"/api/v1/cases/{ref}/transitions", {"to": "acknowledged", "note": s}),
        (f"/api/v1/cases/{ref}/reviewers", {"reviewer_id": s}),
    ]
    snap = snapshot(app, private_tmp)
    for path, body in sends:
        # json.dumps keeps the lone surrogate as the escape \ud800.
        response = client.post(path, data=json.dumps(body), content_type="application/json",
                               headers=world["api"])
        assert response.status_code == 400, (path, response.get_data(as_text=True))
    snap.assert_unchanged()


# -- markup and template syntax -------------------------------------------------------------

PAYLOAD = ('<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
           '" autofocus onfocus="window.__xss=3" x=\' {{7*7}} {% if 1 %}SSTI{% endif %} '
           "javascript:alert(1)")


class Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self.text.extend(v for _k, v in attrs if v)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert(page: str, *shown: str) -> None:
    """No script, no event handler, no javascript: URL, and each payload shown as text."""
    scan = Scan()
    scan.feed(page)
    for tag, attrs in scan.tags:
        assert tag not in ("script", "iframe", "object", "embed", "frame"), tag
        for name, value in attrs:
            assert not name.startswith("on") and name != "autofocus", (tag, name)
            if name in ("href", "src", "action", "formaction"):
                assert not (value or "").strip().lower().startswith(("javascript:", "data:"))
    everything = "".join(scan.text)
    for payload in shown:
        # Shown literally: "{{7*7}}" stays "{{7*7}}" (never 49), "<script>" stays text.
        assert payload in everything, f"{payload[:40]!r} not shown literally"


def test_markup_and_template_syntax_are_shown_as_text_on_every_page(
        app: Flask, client: FlaskClient, private_tmp: Path) -> None:
    evil_name = ("Eve <script>x</script>{{7*7}}" + PAYLOAD)[:200]
    ann = make_reviewer(app, "Ann " + PAYLOAD[:150], admin=True)
    eve = make_reviewer(app, evil_name)
    fields = {f: f"[{f}]" + PAYLOAD for f in ("details", "name", "role", "contact")}
    single = {f: v.replace("\n", " ")[:200] for f, v in fields.items() if f != "details"}
    receipt = submit_concern(client, details=fields["details"],
                             identity=single | {"release": "to_reviewers"})  # shown (22)
    ref, token = receipt["case_ref"], receipt["token"]
    api = login(client, ann)
    assert client.post("/api/v1/status/messages",
                       json={"token": token, "body": "[reporter]" + PAYLOAD}).status_code == 201
    assert client.post(f"/api/v1/cases/{ref}/messages", headers=api,
                       json={"body": "[reviewer]" + PAYLOAD}).status_code == 201
    assert client.post(f"/api/v1/cases/{ref}/notes", headers=api,
                       json={"body": "[note]" + PAYLOAD}).status_code == 201
    assert client.post(f"/api/v1/cases/{ref}/transitions", headers=api,
                       json={"to": "closed", "outcome": "referred",
                             "feedback": "[feedback]" + PAYLOAD}).status_code == 200
    # A second reviewer confirms: only then is the feedback released to the reporter.
    assert client.post(f"/api/v1/cases/{ref}/transitions", headers=login(client, eve),
                       json={"to": "closed"}).status_code == 200

    web = html_login(app, ann)
    case_page = web.get(f"/reviewer/cases/{ref}").get_data(as_text=True)
    assert_inert(case_page, fields["details"], *single.values(), "[reporter]" + PAYLOAD,
                 "[reviewer]" + PAYLOAD, "[note]" + PAYLOAD)
    for page in ("/reviewer/", "/admin/", f"/admin/reviewers/{ann['id']}", "/reviewer/account"):
        response = web.get(page)
        assert response.status_code == 200, page
        assert_inert(response.get_data(as_text=True))

    reporter = app.test_client()
    status = reporter.post("/status", data={"csrf_token": csrf(reporter, "/status"),
                                            "token": token})
    assert status.status_code == 200
    assert_inert(status.get_data(as_text=True), "[reporter]" + PAYLOAD,
                 "[reviewer]" + PAYLOAD, "[feedback]" + PAYLOAD)
    assert "[note]" not in status.get_data(as_text=True)
    form = reporter.get("/report").get_data(as_text=True)
    assert_inert(form, evil_name)


def test_the_report_form_echoes_refused_input_inertly(app: Flask, client: FlaskClient,
                                                      private_tmp: Path) -> None:
    make_reviewer(app), make_reviewer(app)
    one_line = PAYLOAD.replace("\n", " ")[:200]
    response = client.post("/report", data={
        "csrf_token": csrf(client), "category": "no-such-category", "details": PAYLOAD,
        "identity": "named", "name": one_line, "role": one_line, "contact": one_line})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert_inert(page, PAYLOAD, one_line)


# -- injection ----------------------------------------------------------------------------

SQL = ["' OR '1'='1", "1; DROP TABLE concerns--", "%' UNION SELECT id FROM reviewers --",
       "WH-' OR 1=1 --", '" OR ""="', "\\'; --"]


def test_sql_injection_in_ids_and_tokens_finds_nothing_and_changes_nothing(
        app: Flask, client: FlaskClient, world: dict[str, Any], private_tmp: Path) -> None:
    api, web, ref = world["api"], world["web"], world["case_ref"]
    miss = client.post("/api/v1/status", json={"token": "abandon " * 11 + "about"})
    snap = snapshot(app, private_tmp)
    for s in SQL:
        quoted = s.replace("/", "%2F").replace("#", "%23").replace("?", "%3F")
        for path in (f"/api/v1/cases/{quoted}", f"/api/v1/cases/{ref}/attachments/{quoted}"):
            assert client.get(path, headers=api).status_code == 404, path
        assert web.get(f"/reviewer/cases/{quoted}").status_code == 404
        assert client.post(f"/api/v1/cases/{quoted}/messages", headers=api,
                           json={"body": "x"}).status_code == 404
        assert client.post(f"/api/v1/cases/{ref}/reviewers", headers=api,
                           json={"reviewer_id": s}).status_code == 404
        assert client.post("/api/v1/concerns", json={"category": "conduct", "details": "x",
                                                     "exclude_reviewers": [s]}
                           ).status_code == 400
        response = client.post("/api/v1/status", json={"token": s})
        assert response.status_code == 404
        assert response.get_data() == miss.get_data()  # the same answer as any other miss
        assert client.post("/api/v1/auth/login", json={"email": s, "password": s}
                           ).status_code == 401
        assert client.get("/api/v1/cases", headers=api,
                          query_string={"status": s}).status_code == 400
        assert client.get("/api/v1/cases", headers=api,
                          query_string={"page": s}).status_code == 400
    snap.assert_unchanged()
    assert client.get(f"/api/v1/cases/{ref}", headers=api).status_code == 200


def test_cr_lf_never_reaches_a_mail_header(app: Flask, client: FlaskClient, smtp: Any,
                                           world: dict[str, Any], private_tmp: Path) -> None:
    from whistle import notify
    from whistle.errors import InvalidInput

    snap = snapshot(app, private_tmp)
    for field in ("name", "role", "contact"):
        response = client.post("/api/v1/concerns", json={
            "category": "conduct", "details": "x",
            "identity": {"name": "Pat", field: "Pat\r\nBcc: spy@example.org"}})
        assert response.status_code == 400
    with db.new_session(app) as s, pytest.raises(InvalidInput):
        from whistle.people import accounts

        accounts.enrol(s, settings_of(app), "Mallory", "m@example.org\r\nBcc: spy@example.org",
                       PASSWORD, keys=app.extensions["whistle_keys"])
    result = app.test_cli_runner().invoke(args=[
        "reviewer", "add", "--name", "Mallory", "--email", "m@example.org\nBcc: spy@x.org",
        "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code != 0
    snap.assert_unchanged()
    with db.new_session(app) as s:
        assert notify.deliver_pending(s, app).sent == 2
    for message, (_sender, recipients) in zip(smtp.wait_for(2), smtp.envelopes, strict=True):
        assert "spy@" not in message.as_string() and len(recipients) == 1
        assert "bcc" not in {k.lower() for k in message.keys()}


def test_overlong_tokens_are_refused_before_any_hashing(
        app: Flask, client: FlaskClient, world: dict[str, Any], private_tmp: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[bytes] = []
    real = tokens.lookup_id
    monkeypatch.setattr(tokens, "lookup_id", lambda pepper, e: hashed.append(e) or real(pepper, e))
    snap = snapshot(app, private_tmp)
    for length in (tokens.MAX_TOKEN_CHARS + 1, 10_000, 60_000):
        long_token = ("abandon " * (length // 8 + 1))[:length]
        for path in ("/api/v1/status", "/api/v1/status/messages", "/api/v1/status/token"):
            response = client.post(path, json={"token": long_token, "body": "x"})
            assert response.status_code == 400, path
        page = client.post("/status", data={"csrf_token": csrf(client, "/status"),
                                            "token": long_token})
        assert page.status_code == 400
    assert hashed == []
    snap.assert_unchanged()
    assert client.post("/api/v1/status", json={"token": world["token"]}).status_code == 200
    assert len(hashed) == 1


def test_methods_no_route_declares_get_405(app: Flask, client: FlaskClient,
                                           world: dict[str, Any], private_tmp: Path) -> None:
    snap = snapshot(app, private_tmp)
    adapter = app.url_map.bind("localhost")
    values = {"case_ref": world["case_ref"], "reviewer_id": world["bob"]["id"],
              "attachment_id": "0" * 32, "change_id": "0" * 32, "filename": "style.css"}
    checked = 0
    for rule in app.url_map.iter_rules():
        path = adapter.build(rule.endpoint, {a: values.get(a, "0" * 32)  # a new route's id
                                             for a in rule.arguments},
                             method=sorted(rule.methods or ())[0])
        served = set(adapter.allowed_methods(path))  # every rule on this path (GET and DELETE
        for method in ("PUT", "DELETE", "TRACE", "PATCH", "PROPFIND"):  # may be two rules)
            if method in served:
                continue
            response = world["web"].open(path, method=method, headers=world["api"])
            assert response.status_code == 405, (method, path)
            checked += 1
    assert checked > 100
    snap.assert_unchanged()


@pytest.mark.parametrize("app_config", [LIMITS | {"TRUSTED_HOSTS": "whistle.example"}])
def test_a_foreign_host_header_gets_400_when_trusted_hosts_is_set(
        app: Flask, client: FlaskClient, private_tmp: Path) -> None:
    snap = snapshot(app, private_tmp)
    for method, path in (("GET", "/"), ("GET", "/report"), ("GET", "/api/v1/intake"),
                         ("GET", "/healthz"), ("GET", "/static/style.css"),
                         ("POST", "/api/v1/concerns"), ("POST", "/report")):
        response = client.open(path, method=method, headers={"Host": "evil.example"},
                               json={"category": "conduct", "details": "x"})
        assert response.status_code == 400, (method, path)
        assert "evil.example" not in response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
    snap.assert_unchanged()
    assert client.get("/", headers={"Host": "whistle.example"}).status_code == 200


@pytest.mark.parametrize("app_config", [LIMITS | {"STATUS_LIMIT": "3 per minute"}])
def test_a_forged_x_forwarded_for_is_ignored_and_never_stored(
        app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture,
        private_tmp: Path) -> None:
    caplog.set_level("DEBUG")
    make_reviewer(app), make_reviewer(app)
    forged = {"X-Forwarded-For": "203.0.113.77", "X-Real-IP": "198.51.100.9",
              "Forwarded": "for=192.0.2.44"}
    receipt = client.post("/api/v1/concerns", headers=forged,
                          json={"category": "conduct", "details": "x"}).get_json()
    assert client.post("/api/v1/status", headers=forged,
                       json={"token": receipt["token"]}).status_code == 200
    for i in range(3):
        client.post("/api/v1/status", json={"token": f"wrong {i}"},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"})
    # A new forged address does not reset the count: the limiter keys on no address.
    limited = client.post("/api/v1/status", json={"token": "wrong again"},
                          headers={"X-Forwarded-For": "192.0.2.200"})
    assert limited.status_code == 429
    stored = database_bytes(app)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for value in ("203.0.113", "198.51.100.9", "192.0.2.44", "192.0.2.200"):
        assert value.encode() not in stored and value not in logged


def test_the_real_server_answers_chunked_and_oversized_requests_with_4xx(
        tmp_path: Path, database_url: str) -> None:
    from tests.support import server

    env = {f"WHISTLE_{k}": str(v) for k, v in LIMITS.items()}
    instance = server.new_instance(tmp_path / "instance", database_url, env)
    with server.gunicorn_server(instance) as srv:
        def chunked(path: str, content_type: str, size: int) -> bytes:
            payload = b"a" * size
            body = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 8192]), payload[i:i + 8192])
                            for i in range(0, size, 8192)) + b"0\r\n\r\n"
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}"
                    f"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
            return server.raw_exchange(srv.host, srv.port, head + body)

        big = LIMITS["MAX_CONTENT_LENGTH"] + 100_000
        for path, ctype in (("/api/v1/concerns", "application/json"),
                            ("/api/v1/status", "application/json"),
                            ("/report", URLENC), ("/api/v1/concerns", MP)):
            answer = chunked(path, ctype, big)
            assert re.match(rb"HTTP/1\.1 4(13|15|00) ", answer), (path, answer[:200])
        answer = chunked("/api/v1/concerns", "application/json", LIMITS["MAX_JSON_BYTES"] + 10)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        long_line = server.raw_exchange(srv.host, srv.port,
                                        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n")
        assert re.match(rb"HTTP/1\.1 4(00|14) ", long_line)
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(500))
        headers = server.raw_exchange(srv.host, srv.port,
                                      b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        assert headers.startswith(b"HTTP/1.1 431 ") or headers.startswith(b"HTTP/1.1 400 ")
        cookie = server.raw_exchange(srv.host, srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n"
                                     b"Cookie: whistle=" + b"a" * 9000 + b"\r\n\r\n")
        assert re.match(rb"HTTP/1\.1 4(00|31) ", cookie)
        status, _h, _b = srv.request("GET", "/healthz")
        assert status == 200
        assert "Traceback" not in srv.output()
    engine = db.make_engine(instance.database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM concerns")).scalar_one() == 0
    engine.dispose()


# -- properties ---------------------------------------------------------------------------

ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                     st.text(), st.binary(), st.lists(st.text(max_size=40), max_size=5),
                     st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
TEXTS = st.one_of(st.text(), st.text(alphabet=st.characters(codec=None)),
                  st.text(alphabet="\x00\x01\x1b\r\n\t\u2028\ufffd\ud800 ab<>{}%", max_size=50))


# What a clean value looks like: the tests below also generate these (positive controls), so
# a check that refused everything would fail them, not only one that let too much through.
CLEAN_LINES = st.text(alphabet=st.characters(categories=("L", "M", "N", "P", "S", "Zs"),
                                             exclude_characters="\u034f\u115f\u1160\u3164"
                                                                "\uffa0\ufffd"),
                      min_size=1, max_size=60)
REFUSED = object()


def expected_line(value: Any, max_chars: int, required: bool) -> Any:
    """What ``validation.line`` must return, written out from its contract; REFUSED for an
    InvalidInput."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return REFUSED if required else None
    if not isinstance(value, str) or "\ufffd" in value:
        return REFUSED
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return REFUSED
    if re.search(r"[\x00-\x1f\x7f\u2028\u2029]", value) or any(
            ch in "\u034f\u115f\u1160\u3164\uffa0" or unicodedata.category(ch) == "Cf"
            for ch in value):
        return REFUSED
    out = unicodedata.normalize("NFC", value).strip()
    return out if len(out) <= max_chars else REFUSED


@given(value=st.one_of(ANYTHING, TEXTS, CLEAN_LINES), max_chars=st.integers(1, 300),
       required=st.booleans())
@settings(suppress_health_check=[HealthCheck.too_slow])
@example(value="Ann Reviewer", max_chars=50, required=True)
@example(value="  Zoë Ōkubo  ", max_chars=10, required=False)
def test_line_accepts_only_clean_single_lines_and_raises_only_invalid_input(
        value: Any, max_chars: int, required: bool) -> None:
    expected = expected_line(value, max_chars, required)
    try:
        out = validation.line(value, "f", max_chars, required)
    except validation.InvalidInput as exc:
        assert 400 <= exc.status < 500 and exc.field == "f"
        assert expected is REFUSED, f"refused a clean line: {value!r}"
        return
    assert out == expected, f"{value!r} gave {out!r}"
    if out is not None:
        assert isinstance(out, str) and len(out) <= max_chars and out == out.strip()
        assert not re.search(r"[\x00-\x1f\x7f\u2028\u2029\ufffd]", out)
        out.encode("utf-8")
    else:
        assert not required


def test_line_keeps_a_clean_name_and_refuses_each_hidden_character() -> None:
    assert validation.line("  Zoe\u0301 Smith ", "f", 20) == "Zo\u00e9 Smith"
    assert validation.line("", "f", 5) is None and validation.line(None, "f", 5) is None
    for bad in ("a\nb", "a\x00b", "a\u202eb", "a\u200bb", "a\u3164b", "a\ufffdb", "a\ud800b",
                "x" * 6, 5, ["a"]):
        with pytest.raises(validation.InvalidInput):
            validation.line(bad, "f", 5)
    with pytest.raises(validation.InvalidInput):
        validation.line(" ", "f", 5, required=True)


def expected_text(value: Any, max_chars: int, required: bool) -> Any:
    """What ``validation.text`` must return, written out from its contract."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return REFUSED if required else None
    if not isinstance(value, str) or "\ufffd" in value:
        return REFUSED
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return REFUSED
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202d\u202e]", value) or len(value) > max_chars:
        return REFUSED
    return value


@given(value=st.one_of(ANYTHING, TEXTS, CLEAN_LINES), max_chars=st.integers(1, 300),
       required=st.booleans())
@settings(suppress_health_check=[HealthCheck.too_slow])
@example(value="Line one\r\nline two\twith a tab", max_chars=300, required=True)
def test_text_keeps_only_newlines_and_tabs_and_raises_only_invalid_input(
        value: Any, max_chars: int, required: bool) -> None:
    expected = expected_text(value, max_chars, required)
    try:
        out = validation.text(value, "f", max_chars, required)
    except validation.InvalidInput:
        assert expected is REFUSED, f"refused clean text: {value!r}"
        return
    assert out == expected, f"{value!r} gave {out!r}"
    if out is not None:
        assert len(out) <= max_chars and "\r" not in out
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]", out)
        out.encode("utf-8")


@given(value=ANYTHING)
def test_boolean_and_id_list_raise_only_invalid_input(value: Any) -> None:
    for check in (lambda v: validation.boolean(v, "f"), lambda v: validation.id_list(v, "f")):
        try:
            check(value)
        except validation.InvalidInput:
            pass


@given(st.lists(st.text(alphabet="0123456789abcdefABCDEF'; -%", min_size=0, max_size=40),
                max_size=5))
def test_id_list_returns_only_lowercase_128_bit_hex_ids(items: list[str]) -> None:
    try:
        out = validation.id_list(items, "f")
    except validation.InvalidInput:
        return
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in out)


@given(st.one_of(st.text(), TEXTS, st.text(min_size=200, max_size=400)))
def test_token_parse_never_raises_and_returns_16_bytes_or_none(value: str) -> None:
    out = tokens.parse(value)
    assert out is None or (isinstance(out, bytes) and len(out) == tokens.TOKEN_BYTES)


@given(data=st.data())
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
def test_a_new_token_round_trips_through_any_case_dash_and_space_variation(data: Any) -> None:
    token, entropy = tokens.new_token()
    words = token.split()
    seps = data.draw(st.lists(st.sampled_from([" ", "-", "  ", " - ", "\t", "--", "\n"]),
                              min_size=len(words) - 1, max_size=len(words) - 1))
    cased = [data.draw(st.sampled_from([w, w.upper(), w.title(), w.swapcase()])) for w in words]
    typed = cased[0] + "".join(s + w for s, w in zip(seps, cased[1:], strict=True))
    typed = data.draw(st.sampled_from(["", " ", "\t"])) + typed + data.draw(
        st.sampled_from(["", " ", "\n"]))
    assert tokens.parse(typed) == entropy
    # One changed word breaks the checksum or the word list: never another case's entropy.
    i = data.draw(st.integers(0, len(words) - 1))
    other = data.draw(st.sampled_from(["abandon", "zoo", "zzzz", words[(i + 1) % len(words)]]))
    if other != words[i]:
        assert tokens.parse(" ".join(words[:i] + [other] + words[i + 1:])) != entropy


@given(st.binary(max_size=300))
def test_parse_json_bytes_raises_only_its_4xx(raw: bytes) -> None:
    try:
        common.parse_json_bytes(raw)
    except common.ApiError as exc:
        assert exc.status == 400


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(k) + strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


JSON_TEXT = st.text(st.one_of(st.characters(), st.sampled_from(["\x00", "\ud800", "\udfff"])),
                    max_size=8)


@given(st.recursive(st.none() | st.booleans() | st.integers() | JSON_TEXT,
                    lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(JSON_TEXT, children, max_size=3), max_leaves=10))
def test_json_strings_with_nul_or_surrogates_are_refused_anywhere(value: Any) -> None:
    raw = json.dumps({"v": value}).encode()  # ASCII: surrogates and NUL become \u escapes
    # Decoded as any JSON parser would (a surrogate pair becomes one character).
    bad = any(re.search(r"[\x00\ud800-\udfff]", s) for s in strings(json.loads(raw)))
    try:
        common.parse_json_bytes(raw)
    except common.ApiError:
        assert bad
        return
    assert not bad
