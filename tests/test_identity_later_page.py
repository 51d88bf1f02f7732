"""An anonymous reporter gives their name later on the status page, without JavaScript
(issue 22, item 2): the same sealing and the same choice of release as
``POST /api/v1/status/identity`` (``test_identity_release.py``). A refused form stores
nothing and gives the words back; a name is never given twice."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import database_bytes, get_json, make_reviewer, submit_concern
from tests.support.probes import Snapshot
from tests.support.webflow import assert_not_at_rest, marker, post_form, reporter_status
from tests.support.webflow import status_page


def _case(client: FlaskClient, reviewer: dict[str, str], ref: str) -> dict[str, Any]:
    return get_json(client, reviewer, f"/api/v1/cases/{ref}")


def test_a_reporter_gives_their_name_later_sealed_until_two_agree(
        app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    sent = submit_concern(client)
    token, ref = sent["token"], sent["case_ref"]
    page = status_page(client, token)
    assert "Give my name" in page and 'action="/status/identity"' in page

    # No name: refused (400), the role and contact come back, nothing is stored.
    role, name = marker("ROLE"), marker("NAME")
    snapshot = Snapshot(app)
    refused = post_form(client, "/status/identity", {"token": token, "name": "",
                                                     "role": role, "release": "on_request"},
                        "/status")
    assert refused.status_code == 400, refused.status_code
    assert f'value="{role}"' in refused.get_data(as_text=True)
    snapshot.assert_unchanged("a name left empty")

    added = post_form(client, "/status/identity", {"token": token, "name": name, "role": role,
                                                   "release": "on_request"}, "/status")
    assert added.status_code == 200, added.get_data(as_text=True)[:500]
    html = added.get_data(as_text=True)
    assert "Your name was added." in html and "Your name is locked" in html
    assert "Give my name" not in html
    assert reporter_status(client, token)["identity_state"] == "sealed"
    seen = _case(client, ann, ref)
    assert seen["identity"] is None and seen["identity_provided"] is True
    stored = database_bytes(app)
    assert_not_at_rest(stored, name)
    assert_not_at_rest(stored, role)

    # A second name for the same report: 409, nothing changes.
    snapshot = Snapshot(app)
    again = post_form(client, "/status/identity", {"token": token, "name": "Someone Else"},
                      "/status")
    assert again.status_code == 409, again.status_code
    snapshot.assert_unchanged("a second name")


def test_a_reporter_may_open_their_name_to_the_reviewers_at_once(
        app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    sent = submit_concern(client)
    name = marker("NAME")
    added = post_form(client, "/status/identity", {"token": sent["token"], "name": name,
                                                   "release": "to_reviewers"}, "/status")
    assert added.status_code == 200, added.get_data(as_text=True)[:500]
    assert "Your name has been opened to the reviewers" in added.get_data(as_text=True)
    assert _case(client, ann, sent["case_ref"])["identity"]["name"] == name


def test_a_named_report_or_an_unknown_token_gets_no_name_form(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    named = submit_concern(client, identity={"name": "Nia Named"})
    assert "Give my name" not in status_page(client, named["token"])
    snapshot = Snapshot(app)
    unknown = post_form(client, "/status/identity", {"token": "abandon " * 12, "name": "X"},
                        "/status")
    assert unknown.status_code == 404, unknown.status_code
    snapshot.assert_unchanged("an unknown token")
