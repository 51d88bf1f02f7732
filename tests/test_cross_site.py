"""The reporter API refuses writes that a browser says came from another site (issue 20, item 8).

Any web page can make its visitors' browsers post ``multipart/form-data``, form-encoded or
``text/plain`` bodies to another site without a preflight. Whistle's reporter API answers
such a post ``403 cross_site`` before any view reads it, so nothing is stored; clients that
send neither ``Origin`` nor ``Sec-Fetch-Site`` (scripts, apps, the command line) are not
affected, and the HTML forms keep their CSRF tokens.
"""

from __future__ import annotations

import io
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.support.factories import make_reviewer, submit_concern
from whistle.store import db
from whistle.store.models import Concern, Message

BODY = {"category": "conduct", "details": "Cross-site marker text."}
CROSS = [
    {"Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "https://other.localhost"},
    {"Origin": "null"},  # a sandboxed frame or a data: page on another site
]


def _counts(app: Flask) -> tuple[int, int]:
    with db.new_session(app) as s:
        return (s.scalar(select(func.count()).select_from(Concern)) or 0,
                s.scalar(select(func.count()).select_from(Message)) or 0)


@pytest.fixture
def reviewers(app: Flask) -> None:
    make_reviewer(app), make_reviewer(app)


@pytest.mark.usefixtures("reviewers")
@pytest.mark.parametrize("headers", CROSS)
def test_a_cross_site_multipart_post_is_refused_and_stores_nothing(
        app: Flask, client: FlaskClient, headers: dict[str, str]) -> None:
    before = _counts(app)
    response = client.post("/api/v1/concerns", headers=headers, content_type="multipart/form-data",
                           data={"concern": json.dumps(BODY),
                                 "attachment": (io.BytesIO(b"hello"), "note.txt")})
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.get_json()["error"] == "cross_site"
    assert response.get_json()["message"]
    assert _counts(app) == before


@pytest.mark.usefixtures("reviewers")
@pytest.mark.parametrize("headers", CROSS)
def test_a_cross_site_json_or_text_post_is_refused_and_stores_nothing(
        app: Flask, client: FlaskClient, headers: dict[str, str]) -> None:
    before = _counts(app)
    as_json = client.post("/api/v1/concerns", headers=headers, json=BODY)
    as_text = client.post("/api/v1/concerns", headers=headers, data=json.dumps(BODY),
                          content_type="text/plain")
    for response in (as_json, as_text):
        assert response.status_code == 403 and response.get_json()["error"] == "cross_site"
    assert _counts(app) == before


@pytest.mark.usefixtures("reviewers")
def test_the_status_routes_refuse_cross_site_posts_too(app: Flask, client: FlaskClient) -> None:
    receipt = submit_concern(client)
    before = _counts(app)
    for path, body in (("/api/v1/status", {"token": receipt["token"]}),
                       ("/api/v1/status/messages", {"token": receipt["token"], "body": "forged"}),
                       ("/api/v1/status/token", {"token": receipt["token"]})):
        response = client.post(path, json=body, headers={"Sec-Fetch-Site": "cross-site"})
        assert response.status_code == 403 and response.get_json()["error"] == "cross_site", path
    assert _counts(app) == before
    # The token was not rotated: it still opens the case.
    assert client.post("/api/v1/status", json={"token": receipt["token"]}).status_code == 200


@pytest.mark.usefixtures("reviewers")
@pytest.mark.parametrize("headers", [
    {},  # scripts, apps, curl
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    {"Origin": "http://localhost:5000"},  # the same host behind another port
    {"Sec-Fetch-Site": "none"},  # typed by the user
])
def test_posts_without_a_foreign_origin_work(app: Flask, client: FlaskClient,
                                             headers: dict[str, str]) -> None:
    before = _counts(app)
    response = client.post("/api/v1/concerns", headers=headers, json=BODY)
    assert response.status_code == 201, response.get_data(as_text=True)
    multipart = client.post("/api/v1/concerns", headers=headers,
                            content_type="multipart/form-data",
                            data={"concern": json.dumps(BODY),
                                  "attachment": (io.BytesIO(b"hello"), "note.txt")})
    assert multipart.status_code == 201, multipart.get_data(as_text=True)
    assert _counts(app)[0] == before[0] + 2
    token = response.get_json()["token"]
    assert client.post("/api/v1/status", json={"token": token},
                       headers=headers).status_code == 200


def test_reviewers_bearer_api_is_not_affected(app: Flask, client: FlaskClient) -> None:
    """Only the public (cookie-free, account-free) writes are screened: a reviewer's API call
    carries its bearer token, which no other site can attach."""
    from tests.support.factories import login

    ann = make_reviewer(app)
    headers = login(client, ann) | {"Origin": "https://tool.example"}
    assert client.get("/api/v1/cases", headers=headers).status_code == 200
