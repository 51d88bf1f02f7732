"""Matching escrow (issue 25): a concern held until someone else names the same person.

Real parts only: the app on a real SQLite file or PostgreSQL (``WHISTLE_TEST_DB=postgres``),
real keys, real SMTP, real crypto. Each insider or attacker move the issue names is made
here and shown to fail: a held concern is in no inbox, count, list, mail or statistic; its
address and details are in no stored byte; reviewers, administrators and the recovery key
holder, with the database and their own keys, cannot open it.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.support.factories import PASSWORD, database_bytes, login, make_reviewer, submit_concern
from tests.support.webflow import (
    assert_not_at_rest,
    csrf,
    deliver_mail,
    marker,
    post_form,
    reporter_status,
)
from whistle import crypto, keys, settings_of
from whistle.cases import stats
from whistle.store import db
from whistle.store.models import (
    CaseRegistry,
    Concern,
    ConcernAbout,
    HeldConcern,
    OutboxMail,
    Reviewer,
)

PAT = "Pat.Smith@example.org"
PAT_AGAIN = "pat.smith@EXAMPLE.org "  # the same person, typed differently
PAT_KEY = "pat.smith@example.org"


def held(client: FlaskClient, details: str, email: str = PAT, **fields: Any) -> dict[str, Any]:
    body = {"about": {"email": email}, "escrow": True, "details": details} | fields
    answer = submit_concern(client, **body)
    assert answer["status"] == "escrowed" and answer["reviewer_count"] == 0, answer
    return answer


def events(client: FlaskClient, token: str) -> list[str]:
    return [e["type"] for e in reporter_status(client, token)["events"]]


def reviewers_of(app: Flask, case_ref: str) -> set[str]:
    from whistle.store.models import Assignment

    with db.new_session(app) as s:
        return set(s.scalars(select(Assignment.reviewer_id)
                             .where(Assignment.concern_id == case_ref)))


def view(client: FlaskClient, reviewer: dict[str, str], case_ref: str) -> Any:
    return client.get(f"/api/v1/cases/{case_ref}", headers=login(client, reviewer))


def count(app: Flask, model: Any) -> int:
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def everything_visible(app: Flask, client: FlaskClient, people: list[dict[str, str]]
                       ) -> dict[str, Any]:
    """What anyone could see or count: each reviewer's inbox listing and counts, the
    statistics, mail (queued and delivered), cases and the registry."""
    deliver_mail(app)
    with db.new_session(app) as s:
        overview = stats.overview(s, settings_of(app), ["conduct", "fraud", "other"],
                                  dt.date.today())
        counts = {r["id"]: stats.inbox_counts(s, r["id"]) for r in people}
    listings = {}
    for r in people:
        answer = client.get("/api/v1/cases", headers=login(client, r)).get_json()
        listings[r["id"]] = (answer["total"], sorted(c["case_ref"] for c in answer["cases"]))
    return {"overview": overview, "counts": counts, "listings": listings,
            "outbox": count(app, OutboxMail), "concerns": count(app, Concern),
            "registry": count(app, CaseRegistry)}


@pytest.fixture
def people(app: Flask) -> list[dict[str, str]]:
    return [make_reviewer(app, name=f"Reviewer {i}", independent=i == 3) for i in range(4)]


# -- held: invisible and unreadable ---------------------------------------------------------


def test_a_held_concern_is_in_no_inbox_count_list_mail_or_statistic(
        app: Flask, client: FlaskClient, people: list[dict[str, str]], smtp: Any) -> None:
    admin = make_reviewer(app, name="Admin", admin=True, reviews=False)
    for _ in range(5):  # enough cases that the statistics show numbers, not "small"
        submit_concern(client)
    before = everything_visible(app, client, people)
    mails = len(smtp.messages)

    answer = held(client, marker("HELD"))

    assert set(answer) >= {"case_ref", "token", "status", "reviewer_count", "receipt"}
    assert everything_visible(app, client, people) == before
    assert len(smtp.messages) == mails
    for r in people:  # not even by its reference
        assert view(client, r, answer["case_ref"]).status_code == 404
    # Administrators see only a suppressed count of held concerns.
    counted = client.get("/api/v1/admin/escrow", headers=login(client, admin))
    assert counted.status_code == 200 and counted.get_json() == {"held": None}
    assert client.get("/api/v1/admin/escrow",
                      headers=login(client, people[0])).status_code == 403
    status = reporter_status(client, answer["token"])
    assert status["status"] == "escrowed" and status["acknowledge_by"] is None
    assert [e["type"] for e in status["events"]] == ["escrowed"]
    assert status["receipt"] == answer["receipt"]


def test_the_address_and_the_details_of_a_held_concern_are_in_no_stored_byte(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    details, name, role = marker("DETAILS"), marker("NAME"), marker("ROLE")
    held(client, details, about={"email": PAT, "name": name, "role": role})
    assert client.get("/api/v1/roster").get_json()["sealed"] is False  # no trace there either
    stored = database_bytes(app)
    for text in (details, name, role, PAT, PAT_KEY, "pat.smith", "Pat.Smith"):
        assert_not_at_rest(stored, text)
    assert_not_at_rest(stored, base64.b64encode(PAT_KEY.encode()).decode())


def test_reviewers_administrators_and_the_recovery_key_cannot_open_a_held_concern(
        app: Flask, client: FlaskClient, people: list[dict[str, str]], tmp_path: Path) -> None:
    """A database thief who is also every reviewer and administrator, with their passwords,
    the recovery private key and every instance key but the escrow pepper, opens nothing."""
    admin = make_reviewer(app, name="Admin", admin=True)
    answer = held(client, marker("SECRET"))
    with db.new_session(app) as s:
        row = s.get_one(HeldConcern, answer["case_ref"])
        privates = [crypto.unlock_private_key(r.locked_private_key, PASSWORD, r.password_check)
                    for r in s.scalars(select(Reviewer))]
    assert len(privates) == len(people) + 1 and admin
    privates.append(keys.read_recovery_private(str(tmp_path / "recovery-private.txt")))
    context = f"escrow:{row.id}:reporter"
    for private in privates:  # the reporter's copy of the key opens for no one else
        with pytest.raises(crypto.CryptoError):
            crypto.unwrap_key(row.key_by_reporter, private, context)
    # The match copy: the address guessed right, but every key the thief holds instead of
    # the escrow pepper.
    instance = app.extensions["whistle_keys"]
    for pepper in (instance.index_pepper, instance.token_pepper, instance.reporter_pepper,
                   instance.secret_key):
        guess = crypto.derive_key(crypto.keyed_hash(pepper, "escrow-key", PAT_KEY.encode()),
                                  "escrow-held")
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(guess, row.key_by_match, f"escrow:{row.id}:match")
    # The pepper lives in KEYS_DIR, owner-only, never in the database.
    pepper_file = Path(settings_of(app).keys_dir) / keys.ESCROW_PEPPER
    assert pepper_file.stat().st_mode & 0o077 == 0
    assert bytes.fromhex(pepper_file.read_text().strip()) not in database_bytes(app)


# -- a match releases every held concern ----------------------------------------------------


def test_a_second_concern_about_the_same_person_releases_both_each_by_its_own_exclusions(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    first_text, second_text = marker("FIRST"), marker("SECOND")
    first = held(client, first_text, about={"email": PAT, "name": "Pat Smith"},
                 exclude_reviewers=[people[0]["id"]])
    mid = everything_visible(app, client, people)
    assert mid["concerns"] == 0 and all(total == 0 for total, _ in mid["listings"].values())

    # Another reporter, the same person typed differently; held as well. Told the same.
    second = held(client, second_text, email=PAT_AGAIN, exclude_reviewers=[people[1]["id"]])

    assert count(app, HeldConcern) == 0
    first_readers, second_readers = reviewers_of(app, first["case_ref"]), \
        reviewers_of(app, second["case_ref"])
    assert len(first_readers) >= 2 and people[0]["id"] not in first_readers
    assert len(second_readers) >= 2 and people[1]["id"] not in second_readers
    # The excluded reviewer cannot open it, even by reference.
    assert view(client, people[0], first["case_ref"]).status_code == 404
    assert view(client, people[1], second["case_ref"]).status_code == 404
    for case, text, readers, other in ((first, first_text, first_readers, second),
                                       (second, second_text, second_readers, first)):
        for r in people:
            if r["id"] not in readers:
                continue
            opened = view(client, r, case["case_ref"]).get_json()
            assert opened["details"] == text
            assert opened["about"]["email"] == PAT_KEY
            # Matched, unless the other case's reporter excluded this reviewer: then, to
            # them, the other case does not exist (tests/test_about_excludes.py).
            excluded_from_other = {first["case_ref"]: people[0]["id"],
                                   second["case_ref"]: people[1]["id"]}[other["case_ref"]]
            assert opened["matched"] is (r["id"] != excluded_from_other)
            # Linked both ways, but only to cases this reviewer can read.
            can_read_other = r["id"] in reviewers_of(app, other["case_ref"])
            assert opened["linked"] == ([other["case_ref"]] if can_read_other else [])
    # The name and role the first reporter gave travel with their case alone.
    reader = next(r for r in people if r["id"] in first_readers)
    assert view(client, reader, first["case_ref"]).get_json()["about"]["name"] == "Pat Smith"
    reader = next(r for r in people if r["id"] in second_readers)
    assert view(client, reader, second["case_ref"]).get_json()["about"]["name"] is None
    # Both reporters' timelines say so; deadlines start at release.
    for case in (first, second):
        status = reporter_status(client, case["token"])
        assert status["status"] == "received"
        assert "matched" in [e["type"] for e in status["events"]]
        assert status["acknowledge_by"] > dt.date.today().isoformat()
    stored = database_bytes(app)
    for text in (first_text, second_text, PAT_KEY):
        assert_not_at_rest(stored, text)
    # Released cases are ordinary cases: their trails and the registry verify.
    verified = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output


def test_a_concern_sent_at_once_releases_a_held_one_and_its_reporter_learns_nothing(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    waiting = held(client, marker("WAITING"))
    plain = submit_concern(client, details="about Pat", about={"email": PAT_AGAIN})
    elsewhere = submit_concern(client, details="about Sam",
                               about={"email": "sam.jones@example.org"})

    # The same answer and timeline whether a held concern matched or not (no oracle).
    assert set(plain) == set(elsewhere) and plain["status"] == elsewhere["status"] == "received"
    assert events(client, plain["token"]) == events(client, elsewhere["token"]) == ["received"]
    assert events(client, waiting["token"])[-1] == "matched"
    assert reviewers_of(app, waiting["case_ref"])
    reader = next(r for r in people if r["id"] in reviewers_of(app, waiting["case_ref"]))
    opened = view(client, reader, waiting["case_ref"]).get_json()
    assert opened["matched"] is True


def test_a_held_concern_arriving_after_a_match_is_answered_as_held_but_sent_on(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    submit_concern(client, details="earlier", about={"email": PAT})
    late = held(client, marker("LATE"), email=PAT_AGAIN)  # same 201 as any held concern
    assert count(app, HeldConcern) == 0
    assert events(client, late["token"]) == ["received", "matched"]


def test_a_held_concern_about_a_senior_still_goes_to_an_independent_reviewer(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    first = held(client, marker("SENIOR"), about_senior=True)
    held(client, marker("OTHER"), email=PAT_AGAIN)
    assert people[3]["id"] in reviewers_of(app, first["case_ref"])  # the independent one


def test_different_people_never_match(app: Flask, client: FlaskClient,
                                      people: list[dict[str, str]]) -> None:
    held(client, marker("ONE"), email="pat.smith@example.org")
    held(client, marker("TWO"), email="pat.smyth@example.org")
    held(client, marker("THREE"), email="pat.smith@example.com")
    assert count(app, HeldConcern) == 3 and count(app, Concern) == 0


# -- the reporter's choices ----------------------------------------------------------------


def test_send_now_routes_a_held_concern_with_its_deadlines_from_today(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    text = marker("NOW")
    answer = held(client, text, exclude_reviewers=[people[2]["id"]])
    today = dt.date.today()
    with db.new_session(app) as s:  # held for a month before it is sent on
        s.get_one(HeldConcern, answer["case_ref"]).created = today - dt.timedelta(days=30)
        s.commit()
    assert reporter_status(client, answer["token"])["created"] == (
        today - dt.timedelta(days=30)).isoformat()
    released = client.post("/api/v1/status/release", json={"token": answer["token"]})
    assert released.status_code == 200
    assert released.get_json()["case_ref"] == answer["case_ref"]
    status = reporter_status(client, answer["token"])
    assert status["status"] == "received" and status["events"][-1]["type"] == "released"
    # The deadlines run from the release, not from the day it was held.
    assert status["created"] == today.isoformat()
    assert status["acknowledge_by"] >= (today + dt.timedelta(days=1)).isoformat()
    assert "matched" not in [e["type"] for e in status["events"]]
    readers = reviewers_of(app, answer["case_ref"])
    assert len(readers) >= 2 and people[2]["id"] not in readers
    reader = next(r for r in people if r["id"] in readers)
    opened = view(client, reader, answer["case_ref"]).get_json()
    assert opened["details"] == text and opened["matched"] is False and opened["linked"] == []
    assert client.get("/api/v1/roster").get_json()["sealed"] is True  # now a case
    # Sending on again: it is not held any more.
    again = client.post("/api/v1/status/release", json={"token": answer["token"]})
    assert again.status_code == 409 and again.get_json()["error"] == "not_held"


def test_withdraw_deletes_it_and_the_token_then_answers_404(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    answer = held(client, marker("GONE"))
    with db.new_session(app) as s:
        row = s.get_one(HeldConcern, answer["case_ref"])
        blobs = [row.key_by_match, row.payload_ct[:48]]  # within the row's own page
    assert all(blob in database_bytes(app) for blob in blobs)
    gone = client.post("/api/v1/status/withdraw", json={"token": answer["token"]})
    assert gone.status_code == 200
    assert client.post("/api/v1/status", json={"token": answer["token"]}).status_code == 404
    assert client.post("/api/v1/status/withdraw",
                       json={"token": answer["token"]}).status_code == 404
    assert count(app, HeldConcern) == 0
    with db.engine_for(app).connect() as conn:  # checkpoint the WAL into the file
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = database_bytes(app)
    assert not any(blob in stored for blob in blobs)  # the ciphertext too (secure_delete)
    # A later concern about the same person finds nothing to release.
    later = submit_concern(client, about={"email": PAT})
    assert events(client, later["token"]) == ["received"]


def test_a_held_concern_refuses_what_needs_a_case_and_keeps_working_with_a_new_token(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    answer = held(client, marker("TOKEN"))
    message = client.post("/api/v1/status/messages", json={"token": answer["token"],
                                                           "body": "hello"})
    assert message.status_code == 409 and message.get_json()["error"] == "escrowed"
    rotated = client.post("/api/v1/status/token", json={"token": answer["token"]})
    assert rotated.status_code == 200
    new = rotated.get_json()["token"]
    assert client.post("/api/v1/status", json={"token": answer["token"]}).status_code == 404
    assert reporter_status(client, new)["status"] == "escrowed"
    held(client, marker("MATCH"), email=PAT_AGAIN)  # still releases, and the new token follows
    assert events(client, new)[-1] == "matched"


def test_unknown_tokens_get_the_same_404_from_release_and_withdraw(
        client: FlaskClient, people: list[dict[str, str]]) -> None:
    plain = submit_concern(client)
    for path in ("/api/v1/status/release", "/api/v1/status/withdraw"):
        miss = client.post(path, json={"token": "not a token"})
        assert miss.status_code == 404 and miss.get_json()["error"] == "not_found"
        case = client.post(path, json={"token": plain["token"]})
        assert case.status_code == 409 and case.get_json()["error"] == "not_held"


@pytest.mark.parametrize("body, field", [
    ({"escrow": True}, "escrow"),
    ({"escrow": "yes", "about": {"email": PAT}}, "escrow"),
    ({"about": {"email": "not an address"}}, "about.email"),
    ({"about": {"email": "pat@localhost"}}, "about.email"),
    ({"about": {"name": "Pat"}, "escrow": True}, "about.email"),
    ({"about": {"email": PAT, "phone": "1"}}, "about"),
    ({"about": "pat@example.org"}, "about"),
    ({"about": {"email": "pat\u200b@example.org"}}, "about.email"),
    ({"about": {"email": PAT, "name": "Pat\u202eSmith"}}, "about.name"),
])
def test_bad_about_or_escrow_is_refused_and_stores_nothing(
        app: Flask, client: FlaskClient, people: list[dict[str, str]], body: dict[str, Any],
        field: str) -> None:
    answer = client.post("/api/v1/concerns",
                         json={"category": "conduct", "details": "x"} | body)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["field"] == field
    assert count(app, HeldConcern) == count(app, Concern) == count(app, ConcernAbout) == 0


# -- expiry --------------------------------------------------------------------------------


def test_held_concerns_wait_three_years_by_default(
        client: FlaskClient, people: list[dict[str, str]]) -> None:
    status = reporter_status(client, held(client, marker("WAIT"))["token"])
    assert status["escrow"] == {
        "expires": (dt.date.today() + dt.timedelta(days=1095)).isoformat(),
        "expiring_soon": False}


def test_held_concerns_warn_then_expire_after_escrow_days(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    app.extensions["whistle_settings"] = settings_of(app).replace(escrow_days=30)
    answer = held(client, marker("OLD"))
    status = reporter_status(client, answer["token"])
    assert status["escrow"]["expiring_soon"] is True  # 30 days is inside the warning
    assert status["escrow"]["expires"] == (dt.date.today() + dt.timedelta(days=30)).isoformat()
    runner = app.test_cli_runner()
    soon = runner.invoke(args=["deadlines", "--as-of",
                               (dt.date.today() + dt.timedelta(days=29)).isoformat()])
    assert soon.exit_code == 0, soon.output
    assert reporter_status(client, answer["token"])["status"] == "escrowed"
    due = runner.invoke(args=["deadlines", "--as-of",
                              (dt.date.today() + dt.timedelta(days=30)).isoformat()])
    assert due.exit_code == 0, due.output
    # One deleted: said as a suppressed count, never the exact small number.
    assert "fewer than" in due.output and "1 expired held" not in due.output
    assert client.post("/api/v1/status", json={"token": answer["token"]}).status_code == 404


# -- the pages (no JavaScript) -------------------------------------------------------------


def test_the_form_holds_a_concern_and_the_status_page_sends_it_on(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    form = client.get("/report").get_data(as_text=True)
    assert 'name="about_email"' in form and 'name="escrow"' in form
    sent = post_form(client, "/report", {
        "category": "conduct", "details": marker("FORM"), "identity": "anonymous",
        "about_email": PAT, "about_name": "Pat", "escrow": "yes",
        "idempotency_key": "ab" * 16}, "/report")
    assert sent.status_code == 201, sent.get_data(as_text=True)
    page = sent.get_data(as_text=True)
    assert 'id="held-note"' in page
    assert count(app, HeldConcern) == 1 and count(app, Concern) == 0
    token = _token_from(page)
    shown = post_form(client, "/status", {"token": token}, "/status")
    assert shown.status_code == 200 and 'id="held-state"' in shown.get_data(as_text=True)
    released = client.post("/status/release", data={"csrf_token": csrf(client, "/status"),
                                                    "token": token})
    assert released.status_code == 200 and 'id="held-released"' in released.get_data(
        as_text=True)
    assert reporter_status(client, token)["status"] == "received"


def _token_from(page: str) -> str:
    import re

    from whistle import tokens

    words = re.findall(r'<p class="token-line" data-token>([^<]+)</p>', page)
    assert words and tokens.parse(words[0]) is not None, page
    return words[0]


def test_the_reviewers_case_page_shows_whom_it_is_about_and_the_linked_cases(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    from tests.support.webflow import sign_in

    first = held(client, marker("PAGE"), about={"email": PAT, "role": "Head of IT"})
    second = held(client, marker("PAGE2"), email=PAT_AGAIN)
    both = reviewers_of(app, first["case_ref"]) & reviewers_of(app, second["case_ref"])
    reader = next(r for r in people if r["id"] in reviewers_of(app, first["case_ref"]))
    page = sign_in(app, reader).get(f"/reviewer/cases/{first['case_ref']}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and PAT_KEY in html and "Head of IT" in html
    assert 'id="matched"' in html
    assert (second["case_ref"] in html) == (reader["id"] in both)


def test_the_same_form_sent_twice_holds_one_concern(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    fields = {"category": "conduct", "details": marker("TWICE"), "identity": "anonymous",
              "about_email": PAT, "escrow": "yes", "idempotency_key": "cd" * 16}
    assert post_form(client, "/report", fields, "/report").status_code == 201
    assert post_form(client, "/report", fields, "/report").status_code == 409
    assert count(app, HeldConcern) == 1


def test_each_person_is_matched_apart_and_a_matched_concern_is_no_longer_held(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    waiting = held(client, marker("WAITING"))
    other = held(client, marker("OTHER"), email="someone.else@example.org")
    sender = held(client, marker("SENDER"), email="someone.else@example.org ")
    assert count(app, HeldConcern) == 1  # the two about someone else matched at once
    assert events(client, other["token"])[-1] == "matched"
    assert events(client, sender["token"])[-1] == "matched"
    mine = held(client, marker("MINE"), email=PAT_AGAIN)
    assert count(app, HeldConcern) == 0 and events(client, waiting["token"])[-1] == "matched"
    assert client.post("/api/v1/status/release",
                       json={"token": mine["token"]}).status_code == 409  # matched already



def test_a_released_concern_keeps_its_reporters_key_for_the_conversation(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    """Released by a match, the held concern is sealed for the same reporter key its token
    derives: the reporter reads the reviewer's message and answers with the token they hold."""
    waiting = held(client, "held until a match")
    submit_concern(client, details="about Pat too", about={"email": PAT_AGAIN})
    reader = next(r for r in people if r["id"] in reviewers_of(app, waiting["case_ref"]))
    sent = client.post(f"/api/v1/cases/{waiting['case_ref']}/messages",
                       headers=login(client, reader), json={"body": "Can you tell us more?"})
    assert sent.status_code == 201, sent.get_data(as_text=True)
    status = reporter_status(client, waiting["token"])
    assert [m["body"] for m in status["messages"]] == ["Can you tell us more?"]
    answered = client.post("/api/v1/status/messages",
                           json={"token": waiting["token"], "body": "Yes: twice in May."})
    assert answered.status_code == 201, answered.get_data(as_text=True)
    bodies = [m["body"] for m in view(client, reader, waiting["case_ref"]).get_json()["messages"]]
    assert bodies == ["Can you tell us more?", "Yes: twice in May."]


def test_held_concerns_released_as_an_instances_first_concerns_seal_the_roster_on_record(
        app: Flask, client: FlaskClient, people: list[dict[str, str]]) -> None:
    from whistle.store.models import AdminEvent

    held(client, "first, held")
    held(client, "second, the same person", email=PAT_AGAIN)  # a match: both sent on
    with db.new_session(app) as s:
        types = list(s.scalars(select(AdminEvent.type)))
    assert types.count("roster_sealed") == 1, types
