"""Issue 2's promises, end to end through the API, the pages, the database file and real mail."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.support import webflow
from tests.support.factories import database_bytes, login, make_reviewer, submit_concern
from tests.support.webflow import assert_not_at_rest
from whistle import crypto, keys, notify
from whistle.cases import identity as identity_mod
from whistle.cases import keys as casekeys
from whistle.store import db
from whistle.store.models import CaseIdentity, Concern, OutboxMail, WrappedKey


def marker() -> str:
    return webflow.marker("MARK")


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def count(app: Flask, model: Any) -> int:
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def two(app: Flask) -> list[dict[str, str]]:
    return [make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")]


# -- nothing readable at rest ------------------------------------------------


def test_no_plaintext_marker_from_details_or_identity_is_in_the_database_file(
        app: Flask, client: FlaskClient, two: list[dict[str, str]],
        recovery_key_file: Any) -> None:
    marks = {k: marker() for k in ("details", "name", "role", "contact")}
    # Prefixes of 0, 1 and 2 bytes: each marker starts at another base64 alignment.
    receipts = [submit_concern(client, details=f"{pad}Concern {marks['details']} here",
                               identity={"name": pad + marks["name"], "role": marks["role"],
                                         "contact": marks["contact"]}) for pad in ("", "a", "ab")]
    stored = database_bytes(app)
    assert len(stored) > 10_000
    for value in marks.values():
        assert_not_at_rest(stored, value)
    # And the columns hold ciphertext: each opens with the recovery key (and only decrypted).
    private = keys.read_recovery_private(str(recovery_key_file))
    with db.new_session(app) as s:
        for receipt, pad in zip(receipts, ("", "a", "ab"), strict=True):
            concern = s.get(Concern, receipt["case_ref"])
            # The identity is sealed apart, under its own key (issue 22).
            sealed = s.get(CaseIdentity, receipt["case_ref"])
            assert concern is not None and sealed is not None and concern.identity_ct is None
            case_key = casekeys.unwrap(s, concern.id, "recovery", "org", private)["case"]
            details = crypto.open_sealed(case_key, concern.details_ct,
                                         casekeys.part(concern.id, "details"))
            assert details == f"{pad}Concern {marks['details']} here".encode()
            assert marks["contact"] == identity_mod.recover(sealed, private)["contact"]
            for column in (concern.details_ct, sealed.identity_ct):
                assert marks["details"].encode() not in column


def test_the_token_is_not_stored_in_any_recognisable_form(app: Flask, client: FlaskClient,
                                                          two: list[dict[str, str]]) -> None:
    from whistle import tokens

    receipt = submit_concern(client)
    entropy = tokens.parse(receipt["token"])
    assert entropy is not None
    stored = database_bytes(app)
    for form in [receipt["token"].encode(), entropy, entropy.hex().encode(),
                 crypto.digest(entropy), crypto.digest(receipt["token"].encode())]:
        assert form not in stored


# -- routing and keys --------------------------------------------------------


def test_every_case_is_wrapped_for_two_reviewers_the_recovery_key_and_the_reporter(
        app: Flask, client: FlaskClient) -> None:
    # The excluded reviewer alone covers the concern's unit: without the exclusion, routing
    # would pick them first every time (no tie to break at random).
    reviewers = [make_reviewer(app, units=["Education"])] + [make_reviewer(app) for _ in range(3)]
    excluded = reviewers[0]["id"]
    receipt = submit_concern(client, unit="Education", exclude_reviewers=[excluded])
    assert receipt["reviewer_count"] == 2 and receipt["status"] == "received"
    with db.new_session(app) as s:
        rows = list(s.scalars(select(WrappedKey).where(
            WrappedKey.concern_id == receipt["case_ref"])))
    by_kind: dict[str, set[str]] = {}
    for r in rows:
        by_kind.setdefault(r.recipient_kind, set()).add(r.recipient_id)
    assert len(by_kind["reviewer"]) == 2
    assert excluded not in by_kind["reviewer"]
    assert by_kind["recovery"] == {"org"} and by_kind["reporter"] == {"reporter"}
    assert excluded not in {r.recipient_id for r in rows}


def test_excluded_reviewer_never_sees_the_case_in_any_list(
        app: Flask, client: FlaskClient) -> None:
    a, b = make_reviewer(app), make_reviewer(app)
    c = make_reviewer(app, units=["Education"])  # the one routing would pick first
    receipt = submit_concern(client, unit="Education", exclude_reviewers=[c["id"]])
    assert receipt["reviewer_count"] == 2
    headers = login(client, c)
    listed = client.get("/api/v1/cases", headers=headers).get_json()
    assert listed["total"] == 0 and listed["cases"] == []
    assert client.get(f"/api/v1/cases/{receipt['case_ref']}", headers=headers).status_code == 404
    for other in (a, b):  # the positive control: the two others have it
        seen = client.get("/api/v1/cases", headers=login(client, other)).get_json()
        assert [x["case_ref"] for x in seen["cases"]] == [receipt["case_ref"]]


def test_a_reviewer_not_assigned_gets_404_like_a_case_that_does_not_exist(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    receipt = submit_concern(client)
    outsider = make_reviewer(app)
    headers = login(client, outsider)
    missing = client.get("/api/v1/cases/WH-0000-0000-0000-0000-0000-0000-0000", headers=headers)
    hidden = client.get(f"/api/v1/cases/{receipt['case_ref']}", headers=headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_json() == missing.get_json()


def test_the_outsiders_key_cannot_open_the_case_even_with_the_database(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    receipt = submit_concern(client)
    outsider = crypto.generate_keypair()
    with db.new_session(app) as s:
        rows = list(s.scalars(select(WrappedKey).where(
            WrappedKey.concern_id == receipt["case_ref"])))
    assert len(rows) >= 4  # two reviewers, the recovery key, the reporter
    for row in rows:  # every wrapped copy refuses the outsider, not only the first tried
        with pytest.raises(crypto.CryptoError):
            crypto.unwrap_key(row.blob, outsider.private, casekeys.wrap_context(
                row.concern_id, row.key_kind, row.recipient_kind, row.recipient_id))


def test_assigned_reviewer_reads_details_and_identity(app: Flask, client: FlaskClient,
                                                      two: list[dict[str, str]]) -> None:
    receipt = submit_concern(client, details="The <b>door</b> was left open\nat night.",
                             unit="Education", about_senior=True,
                             identity={"name": "Jo Smith", "role": "Nurse",
                                       "release": "to_reviewers"})  # at once (issue 22)
    for reviewer in two:
        case = client.get(f"/api/v1/cases/{receipt['case_ref']}",
                          headers=login(client, reviewer)).get_json()
        assert case["details"] == "The <b>door</b> was left open\nat night."
        assert case["identity"] == {"name": "Jo Smith", "role": "Nurse", "contact": None}
        assert case["unit"] == "Education" and case["about_senior"] is True
        assert {r["id"] for r in case["reviewers"]} == {r["id"] for r in two}


def test_anonymous_concern_has_no_identity(client: FlaskClient, two: list[dict[str, str]]
                                           ) -> None:
    receipt = submit_concern(client)
    case = client.get(f"/api/v1/cases/{receipt['case_ref']}",
                      headers=login(client, two[0])).get_json()
    assert case["identity"] is None


def test_the_recovery_key_opens_every_case(app: Flask, client: FlaskClient,
                                           two: list[dict[str, str]],
                                           recovery_key_file: Any) -> None:
    receipt = submit_concern(client, details="recoverable text")
    private = keys.read_recovery_private(str(recovery_key_file))
    with db.new_session(app) as s:
        found = casekeys.unwrap(s, receipt["case_ref"], "recovery", "org", private)
        concern = s.get(Concern, receipt["case_ref"])
        assert concern is not None
        text = crypto.open_sealed(found["case"], concern.details_ct,
                                  casekeys.part(concern.id, "details"))
    assert text == b"recoverable text"


def test_too_few_eligible_reviewers_still_stores_the_concern_and_alerts_admins(
        app: Flask, client: FlaskClient, smtp: Any) -> None:
    only = make_reviewer(app)
    admin = make_reviewer(app, admin=True, reviews=False)
    receipt = submit_concern(client, exclude_reviewers=[])
    assert receipt["reviewer_count"] == 1 and receipt["under_routed"] is True
    with db.new_session(app) as s:
        concern = s.get(Concern, receipt["case_ref"])
        assert concern is not None and concern.under_routed
        notify.deliver_pending(s, app)
    recipients = {m["To"] for m in smtp.wait_for(2)}
    assert recipients == {only["email"], admin["email"]}
    case = client.get(f"/api/v1/cases/{receipt['case_ref']}", headers=login(client, only))
    assert case.status_code == 200


def test_the_under_routed_alert_never_mails_an_administrator_the_reporter_excluded(
        app: Flask, client: FlaskClient, smtp: Any) -> None:
    only = make_reviewer(app)
    admin = make_reviewer(app, admin=True, reviews=False)
    accused = make_reviewer(app, admin=True, reviews=False)
    receipt = submit_concern(client, exclude_reviewers=[accused["id"]])
    assert receipt["under_routed"] is True
    with db.new_session(app) as s:
        queued = set(s.scalars(select(OutboxMail.recipient)))
        assert notify.deliver_pending(s, app).sent == 2
    assert queued == {only["email"], admin["email"]}
    assert {m["To"] for m in smtp.wait_for(2)} == {only["email"], admin["email"]}
    assert all(accused["email"] not in m.as_string() for m in smtp.messages)


# -- notifications -----------------------------------------------------------


def test_each_assigned_reviewer_gets_one_content_free_mail(app: Flask, client: FlaskClient,
                                                           smtp: Any) -> None:
    reviewers = [make_reviewer(app) for _ in range(3)]
    mark = marker()
    receipt = submit_concern(client, details=mark, category="safeguarding", unit="Health",
                             identity={"name": mark + "N"})
    result = app.test_cli_runner().invoke(args=["outbox"])
    assert "sent 2" in result.output
    mails = smtp.wait_for(2)
    with db.new_session(app) as s:
        assigned = {r.email for c in [s.get(Concern, receipt["case_ref"])] if c
                    for r in (a.reviewer for a in c.assignments)}
    assert {m["To"] for m in mails} == assigned
    assert len(assigned & {r["email"] for r in reviewers}) == 2
    bodies = {m.get_content() for m in mails}
    assert len(bodies) == 1  # byte-identical for every case and reviewer
    for m in mails:
        raw = m.as_bytes()
        for needle in (mark.encode(), receipt["case_ref"].encode(), b"safeguarding", b"Health"):
            assert needle not in raw


def test_outbox_survives_an_smtp_outage_and_delivers_later(app: Flask, client: FlaskClient,
                                                           smtp: Any) -> None:
    make_reviewer(app), make_reviewer(app)
    smtp.stop()
    submit_concern(client)
    result = app.test_cli_runner().invoke(args=["outbox"])
    assert "deferred 2" in result.output
    smtp.start()
    with db.new_session(app) as s:
        for mail in s.scalars(select(OutboxMail)):
            mail.next_attempt = mail.created
        s.commit()
    assert "sent 2" in app.test_cli_runner().invoke(args=["outbox"]).output
    assert len(smtp.wait_for(2)) == 2


# -- the reporter's token ----------------------------------------------------


def test_status_with_the_token_in_any_case_and_with_dashes(client: FlaskClient,
                                                            two: list[dict[str, str]]) -> None:
    receipt = submit_concern(client)
    token = receipt["token"]
    assert len(token.split()) == 12
    for variant in (token, token.upper(), "  " + token.replace(" ", "-") + " ",
                    token.replace(" ", "   ").title()):
        r = client.post("/api/v1/status", json={"token": variant})
        assert r.status_code == 200, variant
        body = r.get_json()
        assert body["case_ref"] == receipt["case_ref"] and body["status"] == "received"
        assert body["acknowledge_by"] == receipt["acknowledge_by"]
        assert body["events"][0]["type"] == "received"
        assert "token" not in body


def test_wrong_tokens_all_get_the_same_404(client: FlaskClient, two: list[dict[str, str]]
                                           ) -> None:
    from whistle import tokens

    token = submit_concern(client)["token"]
    words = token.split()
    flipped = " ".join(words[:-1] + ["zoo" if words[-1] != "zoo" else "abandon"])
    valid_unknown = tokens.new_token()[0]
    answers = [client.post("/api/v1/status", json={"token": t})
               for t in (flipped, valid_unknown, "abandon " * 12, "' OR '1'='1", "x")]
    assert {a.status_code for a in answers} == {404}
    assert len({a.get_data() for a in answers}) == 1
    assert answers[0].get_json()["error"] == "not_found"


def test_receipt_token_is_shown_once_and_nowhere_else(client: FlaskClient,
                                                      two: list[dict[str, str]]) -> None:
    receipt = submit_concern(client)
    status = client.post("/api/v1/status", json={"token": receipt["token"]})
    assert receipt["token"] not in status.get_data(as_text=True)
    assert "Set-Cookie" not in status.headers


# -- pages -------------------------------------------------------------------


def test_report_form_shows_the_token_once_and_status_page_finds_it(
        client: FlaskClient, two: list[dict[str, str]]) -> None:
    form = client.get("/report").get_data(as_text=True)
    for expected in ("category", "unit", "about_senior", "exclude_reviewers", "details",
                     "Ann Reviewer", "anonymous", "name", "role", "contact"):
        assert expected in form
    page = client.post("/report", data={
        "csrf_token": csrf(client, "/report"), "category": "conduct", "unit": "Education",
        "about_senior": "yes", "exclude_reviewers": [two[0]["id"]],
        "details": "Seen on the ward.", "identity": "named", "name": "Pat",
        "idempotency_key": secrets.token_hex(16),
    })
    assert page.status_code == 201
    html = page.get_data(as_text=True)
    assert "only time they are shown" in html
    words = re.findall(r'<span class="w">([a-z]+)</span>', html)
    assert len(words) == 12
    assert re.search(r"acknowledged by", html)
    status = client.post("/status", data={"csrf_token": csrf(client, "/status"),
                                          "token": "-".join(words).upper()})
    assert status.status_code == 200
    assert "received" in status.get_data(as_text=True)


def test_report_form_keeps_the_text_when_input_is_refused(client: FlaskClient,
                                                          two: list[dict[str, str]]) -> None:
    page = client.post("/report", data={"csrf_token": csrf(client, "/report"),
                                        "category": "no-such-category",
                                        "details": "My long careful account"})
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "My long careful account" in html and "unknown category" in html


def test_double_submit_of_the_form_creates_one_concern(app: Flask, client: FlaskClient,
                                                       two: list[dict[str, str]]) -> None:
    data = {"csrf_token": csrf(client, "/report"), "category": "conduct", "details": "once",
            "idempotency_key": secrets.token_hex(16)}
    assert client.post("/report", data=data).status_code == 201
    assert client.post("/report", data=data).status_code == 409
    assert count(app, Concern) == 1


def test_reviewer_pages_sign_in_inbox_and_case(app: Flask, client: FlaskClient,
                                               two: list[dict[str, str]]) -> None:
    receipt = submit_concern(client, details="Visible to <script>x</script> reviewers")
    response = client.post("/reviewer/login", data={
        "csrf_token": csrf(client, "/reviewer/login"), "email": two[0]["email"],
        "password": two[0]["password"]})
    assert response.status_code == 302
    inbox = client.get("/reviewer/").get_data(as_text=True)
    assert receipt["case_ref"] in inbox
    case = client.get(f"/reviewer/cases/{receipt['case_ref']}").get_data(as_text=True)
    assert "Visible to &lt;script&gt;x&lt;/script&gt; reviewers" in case


def test_reviewer_pages_need_a_session(client: FlaskClient) -> None:
    assert client.get("/reviewer/").status_code == 302
    assert client.get("/api/v1/cases").status_code == 401


# -- bad input ---------------------------------------------------------------


BAD_BODIES = [
    ({}, 400), ({"category": "conduct"}, 400), ({"details": "x"}, 400),
    ({"category": "conduct", "details": 5}, 400),
    ({"category": "conduct", "details": "   "}, 400),
    ({"category": "nope", "details": "x"}, 400),
    ({"category": "conduct", "details": "x", "unit": "Nowhere"}, 400),
    ({"category": "conduct", "details": "x", "exclude_reviewers": ["f" * 32]}, 400),
    ({"category": "conduct", "details": "x", "exclude_reviewers": "abc"}, 400),
    ({"category": "conduct", "details": "x", "about_senior": "yes"}, 400),
    ({"category": "conduct", "details": "x", "identity": {"role": "no name"}}, 400),
    ({"category": "conduct", "details": "x", "identity": {"name": "a\x00b"}}, 400),
    ({"category": "conduct", "details": "x", "identity": {"name": "a\r\nBcc: e@x"}}, 400),
    ({"category": "conduct", "details": "x\x00y"}, 400),
    ({"category": "conduct", "details": "x" * 100_001}, 400),
    ({"category": "conduct", "details": "x", "surprise": 1}, 400),
    ([1, 2], 400),
]


@pytest.mark.parametrize(("body", "status"), BAD_BODIES)
def test_bad_concerns_get_a_clear_4xx_and_store_nothing(app: Flask, client: FlaskClient,
                                                        two: list[dict[str, str]], body: Any,
                                                        status: int) -> None:
    response = client.post("/api/v1/concerns", json=body)
    assert response.status_code == status
    assert response.get_json()["error"] and response.get_json()["message"]
    assert count(app, Concern) == 0 and count(app, OutboxMail) == 0


@pytest.mark.parametrize(("data", "content_type", "status"), [
    (b'{"category": "conduct", "details": "x"', "application/json", 400),
    (b'{"category": "conduct", "details": "\xff\xfe"}', "application/json", 400),
    (b'{"category": "conduct", "details": "\\ud800"}', "application/json", 400),
    (b'{"category": "conduct", "category": "fraud", "details": "x"}', "application/json", 400),
    (b'{"category": "conduct", "details": NaN}', "application/json", 400),
    (b'{"category": "conduct", "details": "x"}', "text/plain", 415),
    (b'category=conduct&details=x', "application/x-www-form-urlencoded", 415),
    (b"", "", 415),
])
def test_malformed_bodies_are_refused(app: Flask, client: FlaskClient,
                                      two: list[dict[str, str]], data: bytes,
                                      content_type: str, status: int) -> None:
    response = client.post("/api/v1/concerns", data=data, content_type=content_type)
    assert response.status_code == status
    assert response.is_json and response.get_json()["error"]
    assert count(app, Concern) == 0


def test_login_wrong_email_and_wrong_password_look_the_same(
        client: FlaskClient, two: list[dict[str, str]]) -> None:
    wrong_password = client.post("/api/v1/auth/login",
                                 json={"email": two[0]["email"], "password": "nope nope nope"})
    wrong_email = client.post("/api/v1/auth/login",
                              json={"email": "nobody@example.org", "password": "nope nope nope"})
    assert wrong_password.status_code == wrong_email.status_code == 401
    assert wrong_password.get_json() == wrong_email.get_json()
    assert wrong_email.get_json()["error"] == "invalid_credentials"


def test_logout_destroys_the_session_key_material(app: Flask, client: FlaskClient,
                                                  two: list[dict[str, str]]) -> None:
    from whistle.store.models import ReviewerSession

    headers = login(client, two[0])
    assert count(app, ReviewerSession) == 1
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert count(app, ReviewerSession) == 0
    assert client.get("/api/v1/cases", headers=headers).status_code == 401


def test_private_keys_are_stored_only_locked(app: Flask, two: list[dict[str, str]]) -> None:
    from whistle.store.models import Reviewer

    stored = database_bytes(app)
    with db.new_session(app) as s:
        for r in s.scalars(select(Reviewer)):
            private = crypto.unlock_private_key(r.locked_private_key, two[0]["password"],
                                                r.password_check)
            assert private not in stored and private.hex().encode() not in stored
