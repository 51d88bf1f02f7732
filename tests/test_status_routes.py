"""The reporter's status page as separate routes, each driven through the Flask test client.

``POST /status`` shows the page; ``/status/reply``, ``/status/files`` and ``/status/token``
answer its three forms. The older spelling, ``POST /status`` with ``action=reply|attach|rotate``,
still works and does the same. The token travels in the form body only: never in a URL,
a redirect or a cookie.
"""

from __future__ import annotations

import io
import re
import sqlite3
from typing import Any
from urllib.parse import unquote_plus

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from werkzeug.test import TestResponse

from tests.support.factories import make_reviewer, submit_concern
from tests.support.webflow import csrf, marker, reporter_status
from whistle.cases import reporter
from whistle.store import db
from whistle.store.models import Attachment, AuditEvent

ROUTES = {"reply": "/status/reply", "files": "/status/files", "token": "/status/token"}
ACTIONS = {"reply": "reply", "files": "attach", "token": "rotate"}  # the older spelling
NO_CASE = "No report matches these words."  # as the page words it
MISS = "abandon " * 11 + "about"  # a well-formed token that no case has


@pytest.fixture
def token(app: Flask, client: FlaskClient) -> str:
    make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    found: str = submit_concern(client)["token"]
    return found


def post(client: FlaskClient, path: str, data: dict[str, Any]) -> TestResponse:
    """POST a status form as the browser would: with the CSRF token of the page it came from."""
    return client.post(path, data={"csrf_token": csrf(client, "/status")} | data)


def send(client: FlaskClient, what: str, spelling: str, data: dict[str, Any]) -> TestResponse:
    """One of the three status actions, on its own route or as ``POST /status action=...``."""
    if spelling == "route":
        return post(client, ROUTES[what], data)
    return post(client, "/status", data | {"action": ACTIONS[what]})


def forms(html: str) -> list[tuple[str, str]]:
    """(action, inside) of every form on a page."""
    return re.findall(r'<form method="post" action="([^"]*)"[^>]*>(.*?)</form>', html, re.S)


def form_actions(html: str) -> dict[str, str]:
    """Where the status page's own forms post, by what they do (the language switches aside)."""
    found = {}
    for action, inside in forms(html):
        if 'name="body"' in inside:
            found["reply"] = action
        elif 'name="attachment"' in inside:
            found["files"] = action
        elif "Replace my token" in inside:
            found["token"] = action
    return found


def count(app: Flask, model: Any, **where: Any) -> int:
    with db.new_session(app) as s:
        query = select(func.count()).select_from(model).filter_by(**where)
        return int(s.scalar(query) or 0)


def messages(client: FlaskClient, token: str) -> list[str]:
    return [m["body"] for m in reporter_status(client, token)["messages"]]


def new_words(html: str) -> str:
    return " ".join(re.findall(r'<span class="w">([a-z]+)</span>', html))


# -- POST /status: the page itself --------------------------------------------------------


def test_the_status_page_posts_each_form_to_its_own_route_with_the_token_in_the_body(
        client: FlaskClient, token: str) -> None:
    response = post(client, "/status", {"token": token})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Your report" in html and "Token last used" in html
    # Reply and files are one form (issue 20); POST /status/files still works on its own.
    assert form_actions(html) == {k: v for k, v in ROUTES.items() if k != "files"}
    for action, inside in forms(html):
        assert f'<input type="hidden" name="token" value="{token}">' in inside, action


@pytest.mark.parametrize("action", ["view", "no-such-action"])
def test_post_status_without_a_known_action_only_shows_the_page(
        app: Flask, client: FlaskClient, token: str, action: str) -> None:
    before = count(app, AuditEvent)
    response = post(client, "/status", {"token": token, "action": action, "body": "not sent"})
    assert response.status_code == 200 and "Your message was sent." not in response.text
    assert messages(client, token) == [] and count(app, AuditEvent) == before


@pytest.mark.parametrize("path", ["/status", *ROUTES.values()])
def test_a_token_that_matches_nothing_shows_the_token_form_again_and_changes_nothing(
        app: Flask, client: FlaskClient, token: str, path: str) -> None:
    before = count(app, AuditEvent)
    text = marker("LOST")
    response = post(client, path, {"token": MISS, "body": text})
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert NO_CASE in html and 'name="token"' in html
    # A reply keeps its words (issue 20): the reply form comes back with them, nothing stored.
    assert (text in html) == (path == ROUTES["reply"])
    assert count(app, AuditEvent) == before


# -- the three actions, in both spellings ---------------------------------------------------


@pytest.mark.parametrize("spelling", ["route", "action"])
def test_a_reply_is_stored_and_shown(client: FlaskClient, token: str, spelling: str) -> None:
    text = marker("REPLY")
    response = send(client, "reply", spelling, {"token": token, "body": text})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Your message was sent." in html and text in html
    assert messages(client, token) == [text]


@pytest.mark.parametrize("spelling", ["route", "action"])
def test_an_invalid_reply_is_refused_with_400_and_the_draft_kept(
        client: FlaskClient, token: str, spelling: str) -> None:
    text = marker("DRAFT") + " \x1b[2J"
    response = send(client, "reply", spelling, {"token": token, "body": text})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "body contains control characters" in html
    assert re.search(r'<textarea id="body"[^>]*aria-invalid="true"[^>]*>' + re.escape(text), html)
    assert messages(client, token) == []


@pytest.mark.parametrize("spelling", ["route", "action"])
def test_a_reply_the_database_cannot_store_gets_503_and_the_text_back(
        app: Flask, client: FlaskClient, token: str, spelling: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def locked(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("INSERT INTO messages", {}, sqlite3.OperationalError("locked"))

    monkeypatch.setattr(reporter, "add_reporter_message", locked)
    text = marker("KEEP")
    response = send(client, "reply", spelling, {"token": token, "body": text})
    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert "Nothing you sent was saved" in html and "Your message was sent." not in html
    assert re.search(r'<textarea id="body"[^>]*>' + re.escape(text) + "</textarea>", html)
    assert response.headers.get("Retry-After")
    monkeypatch.undo()
    assert messages(client, token) == []


@pytest.mark.parametrize("spelling", ["route", "action"])
def test_files_are_added_later(app: Flask, client: FlaskClient, token: str,
                               spelling: str) -> None:
    response = send(client, "files", spelling, {
        "token": token, "attachment": (io.BytesIO(b"more evidence"), "later.txt")})
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    assert "Your files were added." in html and "later.txt</bdi>: kept exactly as sent" in html
    assert count(app, Attachment) == 1
    assert count(app, AuditEvent, type="attachment_added") == 1


@pytest.mark.parametrize("app_config", [{"ALLOW_LATER_ATTACHMENTS": False}])
@pytest.mark.parametrize("spelling", ["route", "action"])
def test_files_refused_show_the_status_page_with_the_reason(
        app: Flask, client: FlaskClient, token: str, spelling: str) -> None:
    response = send(client, "files", spelling, {
        "token": token, "attachment": (io.BytesIO(b"more evidence"), "later.txt")})
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "adding files after sending a concern is turned off" in html
    assert "Your report" in html and 'name="attachment"' not in html
    assert count(app, Attachment) == 0


@pytest.mark.parametrize("spelling", ["route", "action"])
def test_the_token_is_replaced(app: Flask, client: FlaskClient, token: str,
                               spelling: str) -> None:
    response = send(client, "token", spelling, {"token": token})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Your new token" in html and "Your old token no longer works." in html
    new = new_words(html)
    assert len(new.split()) == 12 and new != token
    assert post(client, "/status", {"token": token}).status_code == 404
    assert post(client, "/status", {"token": new}).status_code == 200
    assert count(app, AuditEvent, type="token_replaced") == 1


def test_the_new_routes_take_only_post(client: FlaskClient) -> None:
    for path in ROUTES.values():
        assert client.get(path).status_code == 405, path


# -- the token never in a URL -----------------------------------------------------------------


def _token_in(text: str, words: list[str]) -> bool:
    """Any two neighbouring words of the token, joined in any way, in ``text`` (decoded)."""
    plain = unquote_plus(text).lower()
    return any(re.search(re.escape(a) + r"[^a-z]*" + re.escape(b), plain)
               for a, b in zip(words, words[1:], strict=False))


def _urls(response: TestResponse) -> list[str]:
    html = response.get_data(as_text=True)
    found = re.findall(r'(?:href|action|src|formaction)="([^"]*)"', html)
    return found + [response.headers.get("Location", "")] + [
        c.split(";", 1)[0] for c in response.headers.getlist("Set-Cookie")]


def test_the_token_never_appears_in_a_url_a_redirect_or_a_cookie(
        app: Flask, client: FlaskClient, token: str) -> None:
    """A whole journey that follows the page's own forms: view, reply, a refused reply,
    files, the older spelling, a miss, a replaced token, and the new token's page."""
    seen: list[tuple[str, TestResponse]] = []

    def go(path: str, data: dict[str, Any]) -> TestResponse:
        response = post(client, path, data)
        assert response.status_code < 500, (path, response.status_code)
        seen.append((path, response))
        return response

    action = form_actions(go("/status", {"token": token}).get_data(as_text=True))
    go(action["reply"], {"token": token, "body": "a reply"})
    go(action["reply"], {"token": token, "body": "bad \x1b"})
    go(ROUTES["files"], {"token": token, "attachment": (io.BytesIO(b"evidence"), "later.txt")})
    go(action["reply"], {"token": token, "body": "with a file",
                         "attachment": (io.BytesIO(b"more"), "more.txt")})
    go("/status", {"token": token, "action": "reply", "body": "the older spelling"})
    go("/status?lang=pl", {"token": token})
    go(action["reply"], {"token": MISS, "body": "lost"})
    rotated = go(action["token"], {"token": token})
    new = new_words(rotated.get_data(as_text=True))
    go("/status", {"token": new})
    seen.append(("GET /status", client.get("/status")))

    words = [token.split(), new.split()]
    for path, response in seen:
        assert not 300 <= response.status_code < 400, path
        assert response.headers.get("Location") is None, path
        assert not _token_in(path, words[0]) and not _token_in(path, words[1])
        for url in _urls(response):
            assert not _token_in(url, words[0]) and not _token_in(url, words[1]), (path, url)
    assert messages(client, new) == ["a reply", "with a file", "the older spelling"]
