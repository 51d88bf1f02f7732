"""Helpers for driving the server-rendered pages and reading what reached mail (tests only)."""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from whistle import notify
from whistle.store import db


def marker(label: str = "MARK") -> str:
    """A unique plaintext canary: if it shows up at rest or in mail, something leaked."""
    return label + secrets.token_hex(10).upper()


def encodings(text: str) -> list[bytes]:
    """The forms in which a leaked marker could sit in bytes: plain, lower, hex, UTF-16, and
    base64 (standard and URL-safe) at each of the three alignments it can start at."""
    raw = text.encode()
    return [raw, text.lower().encode(), raw.hex().encode(), raw.hex().upper().encode(),
            text.encode("utf-16-le"), text.encode("utf-16-be"), *base64_forms(raw)]


def base64_forms(raw: bytes) -> list[bytes]:
    """The base64 characters that ``raw`` always becomes inside a longer base64 text, whatever
    byte offset (0, 1 or 2 modulo 3) it starts at: encoding ``raw`` alone only matches when it
    starts on a 3-byte boundary. For offset k, the characters that also carry bits of the bytes
    before (the first ceil(8k/6)) or after (the last partial one) are cut off."""
    forms = []
    for k in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * k + raw)
            forms.append(encoded[-(-8 * k // 6):8 * (k + len(raw)) // 6])
    return forms


_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_\-]{16,}")


def decoded_base64(stored: bytes) -> bytes:
    """Every run of 16 or more base64 characters in ``stored``, decoded (standard and
    URL-safe alphabets, from each of the four character offsets), joined: a marker base64-encoded
    at rest shows up in plain in this."""
    out = []
    for run in _BASE64_RUN.findall(stored):
        for start in range(4):
            part = run[start:]
            part = part[:len(part) - len(part) % 4]
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    out.append(decode(part))
                except ValueError:
                    continue
    return b"\n".join(out)


def assert_not_at_rest(stored: bytes, text: str) -> None:
    """``text`` is in ``stored`` (the database's bytes) in none of ``encodings``, and in no
    base64 run of it once decoded."""
    for form in encodings(text):
        assert form not in stored, (text, form)
    decoded = decoded_base64(stored)
    for form in (text.encode(), text.encode("utf-16-le")):
        assert form not in decoded, text


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def post_form(client: FlaskClient, path: str, data: dict[str, Any],
              token_from: str) -> TestResponse:
    """POST a form as a browser would: with the CSRF token of a page it loaded first."""
    return client.post(path, data={"csrf_token": csrf(client, token_from)} | data)


def sign_in(app: Flask, reviewer: dict[str, str], otp: str | None = None) -> FlaskClient:
    """A fresh browser signed in on the reviewer pages."""
    browser = app.test_client()
    data = {"email": reviewer["email"], "password": reviewer["password"]}
    if otp:
        data["otp"] = otp
    response = post_form(browser, "/reviewer/login", data, "/reviewer/login")
    assert response.status_code == 302, response.get_data(as_text=True)
    return browser


def reporter_status(client: FlaskClient, token: str) -> dict[str, Any]:
    response = client.post("/api/v1/status", json={"token": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    data: dict[str, Any] = response.get_json()
    return data


def status_page(client: FlaskClient, token: str) -> str:
    response = post_form(client, "/status", {"token": token}, "/status")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def reader_text(html: str) -> str:
    """The page as a reader sees it: without the receipt's base64 block and without the
    values of form fields (CSRF tokens), whose random letters can spell any short word."""
    html = re.sub(r"-----BEGIN WHISTLE RECEIPT-----.*?-----END WHISTLE RECEIPT-----", "",
                  html, flags=re.S)
    return re.sub(r'\svalue="[^"]*"', "", html)


def deliver_mail(app: Flask) -> int:
    with db.new_session(app) as s:
        return notify.deliver_pending(s, app).sent


def all_mail_bytes(smtp: Any) -> bytes:
    return b"\n".join(m.as_bytes() for m in smtp.messages)


def enrol_code(smtp: Any, app: Flask, address: str) -> str:
    """The one-time code from the newest enrolment or reset mail that reached ``address``."""
    deliver_mail(app)
    for message in reversed(smtp.messages):
        if address in message["To"]:
            found = re.search(r"/enrol\?code=([A-Za-z0-9_\-]+)", message.get_content())
            if found:
                return found.group(1)
    raise AssertionError(f"no enrolment mail reached {address}")
