"""Issue 20, what was left: a form over a size limit gives the words back, the older status
reply form too, nginx's own 413 answered like Whistle's, and the lockout mail sent at once.

Real app and database (SQLite, or PostgreSQL with WHISTLE_TEST_DB=postgres), real SMTP,
the Flask test client with CSRF on; the serving tests run gunicorn and the shipped nginx
configuration (skipped without nginx outside CI, like tests/test_serving.py).
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.support.factories import make_reviewer, submit_concern
from tests.support.webflow import csrf, marker
from whistle.store import db
from whistle.store.models import Attachment, Concern, KeptUpload, Message

LIMIT = 64 * 1024  # MAX_ATTACHMENT_BYTES here: a file over it is cheap to send


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"MAX_ATTACHMENT_BYTES": LIMIT, "MAX_ATTACHMENTS": 2,
            "MAX_ATTACHMENTS_TOTAL": 3 * LIMIT, "MAX_CONTENT_LENGTH": 8 * LIMIT}


@pytest.fixture
def two(app: Flask) -> list[dict[str, str]]:
    return [make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")]


def counts(app: Flask) -> dict[str, int]:
    with db.new_session(app) as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0
                for m in (Concern, Message, Attachment, KeptUpload)}


def page_text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def fresh_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


Part = tuple[str, str | None, bytes]


def multipart(parts: list[Part]) -> tuple[str, bytes]:
    """A multipart body in exactly this order (a browser sends the form's fields in page
    order: text after the file input reaches the server after the file)."""
    boundary = "leftovers-" + os.urandom(8).hex()
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"'
                                                     if filename else "")
        ctype = "application/octet-stream" if filename else "text/plain; charset=utf-8"
        out += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    return f"multipart/form-data; boundary={boundary}", out + f"--{boundary}--\r\n".encode()


def post_parts(client: FlaskClient, path: str, parts: list[Part]) -> Any:
    ctype, body = multipart(parts)
    return client.post(path, data=body, content_type=ctype)


def report_parts(token: str, details: str, name: str, files: list[Part],
                 text_after_files: bool = False) -> list[Part]:
    """The report form in the page's order (choices, the text, the name, then the files),
    or with the name and role after the files (``text_after_files``)."""
    named: list[Part] = [("identity", None, b"named"), ("name", None, name.encode()),
                         ("role", None, "Kierownik zmiany".encode())]
    return [("csrf_token", None, token.encode()),
            ("idempotency_key", None, os.urandom(16).hex().encode()),
            ("category", None, b"conduct"), ("unit", None, b""),
            ("about_senior", None, b"yes"), ("details", None, details.encode()),
            *([] if text_after_files else named), *files, *(named if text_after_files else []),
            ("clean_metadata", None, b"yes")]


# -- 1. a form over a size limit comes back with the reporter's words -------------------


@pytest.mark.parametrize(("files", "after"), [
    pytest.param([("attachment", "big.bin", b"x" * (LIMIT + 1))], False,
                 id="a file over its limit"),
    pytest.param([("attachment", "big.bin", b"x" * (LIMIT + 1))], True,
                 id="a file over its limit, text after it"),
    pytest.param([("attachment", f"f{i}.bin", b"x" * 10) for i in range(3)], True,
                 id="more files than allowed"),
    pytest.param([("attachment", f"f{i}.bin", b"x" * (LIMIT - 100)) for i in range(2)]
                 + [("attachment", "g.bin", b"y" * LIMIT)], True, id="files together over"),
    pytest.param([("attachment", "huge.bin", b"z" * (9 * LIMIT))], False,
                 id="a body over MAX_CONTENT_LENGTH"),
])
def test_an_oversized_report_gives_its_words_back(
        app: Flask, client: FlaskClient, two: list[dict[str, str]], files: list[Part],
        after: bool) -> None:
    details, name = marker("DETAILS") + " zażółć gęślą jaźń", marker("NAME")
    before = counts(app)
    # when the reporter sends the form with a file (or files) over a limit
    response = post_parts(client, "/report",
                          report_parts(csrf(client, "/report"), details, name, files, after))
    # then the answer is 413, and it is the form again with everything typed in it
    assert response.status_code == 413
    page = page_text(response)
    assert 'action="/report"' in page and "Your concern was not sent yet" in page
    assert details in page and name in page and "Kierownik zmiany" in page
    assert 'value="named" checked' in page and 'name="about_senior" value="yes" checked' in page
    assert "Files you chose were not kept: choose them again." in page
    assert "Your text is still below." in page
    # and nothing was stored, not even a kept file
    assert counts(app) == before
    # and the form that came back sends it, without the files
    sent = post_parts(client, "/report", report_parts(fresh_token(page), details, name, []))
    assert sent.status_code == 201, page_text(sent)[:500]
    assert counts(app)["concerns"] == before["concerns"] + 1


def test_the_sentence_says_which_limit(app: Flask, client: FlaskClient,
                                       two: list[dict[str, str]]) -> None:
    parts = report_parts(csrf(client, "/report"), marker("D"), marker("N"),
                         [("attachment", "big.bin", b"x" * (LIMIT + 1))])
    page = page_text(post_parts(client, "/report", parts))
    assert "A file is too large. The limit is 0.0625 MiB for each file." in page \
        or "a file is larger than 0.0625 MiB" in page


def test_a_polish_reporter_reads_it_in_polish(app: Flask, client: FlaskClient,
                                              two: list[dict[str, str]]) -> None:
    details = marker("SZCZEGOLY")
    parts = report_parts(csrf(client, "/report?lang=pl"), details, marker("N"),
                         [("attachment", "big.bin", b"x" * (9 * LIMIT))])
    ctype, body = multipart(parts)
    response = client.post("/report?lang=pl", data=body, content_type=ctype,
                           headers={"Accept-Language": "pl"})
    assert response.status_code == 413
    page = page_text(response)
    assert details in page and 'lang="pl"' in page
    assert "Your concern was not sent yet" not in page


def test_an_oversized_status_reply_gives_its_words_back(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    receipt = submit_concern(client)
    before = counts(app)
    for path in ("/status/reply", "/status"):  # the older form posts action=reply to /status
        body = marker("REPLY")
        parts: list[Part] = [("csrf_token", None, csrf(client, "/status").encode()),
                             ("token", None, receipt["token"].encode()),
                             ("action", None, b"reply"),
                             ("attachment", "big.bin", b"x" * (LIMIT + 1)),
                             ("body", None, body.encode()), ("clean_metadata", None, b"yes")]
        response = post_parts(client, path, parts)
        assert response.status_code == 413, path
        page = page_text(response)
        assert body in page and receipt["token"] in page
        assert "Your reply was not sent yet" in page
        assert "Files you chose were not kept: choose them again." in page
        # and the form that came back sends the reply
        sent = client.post("/status/reply", data={"csrf_token": fresh_token(page),
                                                  "token": receipt["token"], "body": body})
        assert sent.status_code == 200 and "Your message was sent." in page_text(sent)
    assert counts(app)["messages"] == before["messages"] + 2
    assert counts(app)["attachments"] == before["attachments"]


def test_other_forms_and_the_api_keep_their_413(app: Flask, client: FlaskClient,
                                                two: list[dict[str, str]]) -> None:
    receipt = submit_concern(client)
    big = [("attachment", "big.bin", b"x" * (LIMIT + 1))]
    # the JSON API: its JSON 413, nothing rescued into a page
    response = post_parts(client, "/api/v1/concerns",
                          [("category", None, b"conduct"), ("details", None, b"words"), *big])
    assert response.status_code == 413 and response.get_json()["error"] == "too_large"
    # the status page's files form: the usual page
    response = post_parts(client, "/status/files",
                          [("csrf_token", None, csrf(client, "/status").encode()),
                           ("token", None, receipt["token"].encode()), *big])
    assert response.status_code == 413 and "<textarea" not in page_text(response)


def test_a_form_over_its_parts_limit_gives_the_first_fields_back(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    details = marker("DETAILS")
    many = [(f"extra{i}", None, b"1") for i in range(int(app.config["MAX_FORM_PARTS"]))]
    parts = report_parts(csrf(client, "/report"), details, marker("N"), []) + many
    response = post_parts(client, "/report", parts)
    assert response.status_code == 413
    assert details in page_text(response)
    assert counts(app)["concerns"] == 0


def test_the_rescue_reads_no_more_than_a_valid_request(app: Flask) -> None:
    """The rescue is bounded: a body far over MAX_CONTENT_LENGTH is read no further than it
    (text after that point is not given back)."""
    from werkzeug.test import EnvironBuilder

    from whistle.web import oversize

    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, n: int | None = -1) -> bytes:
            out = super().read(n)
            self.read_bytes += len(out)
            return out

    limit = int(app.config["MAX_CONTENT_LENGTH"])
    late = marker("LATE")
    ctype, body = multipart([("details", None, b"early"),
                             ("attachment", "huge.bin", b"z" * (3 * limit)),
                             ("details2", None, late.encode())])
    counting = Counting(body)
    builder = EnvironBuilder(path="/report", method="POST", content_type=ctype,
                             input_stream=counting, content_length=len(body))
    with app.request_context(builder.get_environ()):
        from flask import request

        with pytest.raises(Exception):  # noqa: B017, PT011 - the 413, whichever class
            request.form  # noqa: B018
        found = oversize.rescued()
        assert found is not None
        assert counting.read_bytes <= limit
        assert ("details", "early") in found.fields and late not in str(found.fields)


# -- 2. the older reply form (POST /status, action=reply) gives the words back too ------


def test_an_expired_reply_on_the_older_form_comes_back_with_its_words(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    receipt = submit_concern(client)
    before = counts(app)
    body = marker("OLDREPLY")
    stale = csrf(client, "/status")
    app.config["WTF_CSRF_TIME_LIMIT"] = 1
    time.sleep(2.1)
    # when the older reply form is sent with an expired token
    response = client.post("/status", data={"csrf_token": stale, "action": "reply",
                                            "token": receipt["token"], "body": body})
    # then the reply form comes back with the words and the token, not the generic page
    assert response.status_code == 400
    page = page_text(response)
    assert body in page and receipt["token"] in page
    assert "this page had been open too long" in page
    app.config["WTF_CSRF_TIME_LIMIT"] = 3600
    # and without a cookie (New Identity) too
    cookieless = app.test_client().post("/status", data={
        "csrf_token": stale, "action": "reply", "token": receipt["token"], "body": body})
    assert cookieless.status_code == 400 and body in page_text(cookieless)
    assert "could not confirm that this form came from its own page" in page_text(cookieless)
    assert counts(app) == before
    # and the form that came back sends it
    sent = client.post("/status/reply", data={"csrf_token": fresh_token(page),
                                              "token": receipt["token"], "body": body})
    assert sent.status_code == 200 and "Your message was sent." in page_text(sent)
    assert counts(app)["messages"] == before["messages"] + 1


def test_the_older_status_form_still_checks_its_token_for_every_action(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    receipt = submit_concern(client)
    for action in ("view", "rotate", "attach"):
        response = app.test_client().post("/status", data={
            "csrf_token": "forged", "action": action, "token": receipt["token"]})
        assert response.status_code == 400, action
        assert receipt["token"] not in page_text(response)  # no case was looked up
    # a valid token still works
    ok = client.post("/status", data={"csrf_token": csrf(client, "/status"),
                                      "token": receipt["token"]})
    assert ok.status_code == 200 and receipt["case_ref"] in page_text(ok)


# -- 4. nginx's own 413 answers as Whistle does, through the shipped configurations -----


# Under pytest-xdist the tests of this file run in one worker, so the servers of the
# module-scoped fixture below start once.
pytestmark = pytest.mark.xdist_group("test_hardening_leftovers")


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.conftest import need
    from tests.support import server
    from tests.support.services import ComponentMissing
    from tests.test_serving import DEPLOY, nginx_front

    tmp = tmp_path_factory.mktemp("too-large")
    instance = server.new_instance(tmp / "instance", f"sqlite:///{tmp / 'whistle.db'}",
                                   {"WHISTLE_STATUS_LIMIT": "1000 per minute"})
    for name in ("Ada", "Bo"):
        instance.add_reviewer(name, f"{name.lower()}@example.org", "correct horse battery")
    with server.gunicorn_server(instance, workers=1,
                                args=("-c", str(DEPLOY / "gunicorn.conf.py"))) as app:
        try:
            with nginx_front(tmp / "nginx", app) as found:
                yield found
        except ComponentMissing as exc:
            need("nginx", exc)


def _raw(port: int, context: Any, path: str, content_type: str, body: bytes,
         declared: int | None = None) -> tuple[int, dict[str, str], bytes]:
    """POST, then read the whole answer. With ``declared``, only the head is sent, claiming
    that many bytes of body (nginx refuses on the Content-Length alone)."""
    from tests.test_serving import _connect

    length = declared if declared is not None else len(body)
    head = (f"POST {path} HTTP/1.1\r\nHost: whistle.example.org\r\nContent-Type: "
            f"{content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
    with _connect(port, context, 30) as sock:
        sock.sendall(head.encode() + (b"" if declared is not None else body))
        raw = b""
        while chunk := sock.recv(65536):  # to the end of the answer (nginx lingers after)
            raw += chunk
            top, _sep, rest = raw.partition(b"\r\n\r\n")
            lines = top.decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _s, v in (x.partition(":") for x in lines[1:])}
            if _sep and len(rest) >= int(headers.get("content-length", "-1")) >= 0:
                break
    return int(lines[0].split()[1]), headers, rest


def test_nginx_answers_its_own_413_in_json_or_as_a_page(front: Any) -> None:
    two_mb = b"x" * (2 * 1024 * 1024)
    api_body = json.dumps({"details": two_mb.decode()}).encode()
    form_body = b"details=" + two_mb
    for port, context in ((front.onion_port, None), (front.tls_port, front.tls())):
        # a JSON body over a 1 MiB route, and a declared 120 MiB on the upload route
        for path, body, declared in (("/api/v1/intake", api_body, None),
                                     ("/api/v1/concerns", b"", 120 * 1024 * 1024),
                                     ("/api/v1/status", b"", 120 * 1024 * 1024)):
            status, headers, answer = _raw(port, context, path, "application/json", body,
                                           declared)
            assert status == 413, (path, answer[:300])
            assert headers["content-type"].startswith("application/json"), path
            assert json.loads(answer)["error"] == "too_large"
            assert headers["cache-control"] == "no-store"
        # a form over a 1 MiB route, and a declared 120 MiB report or reply: a page
        for path, body, declared in (("/enrol", form_body, None),
                                     ("/report", b"", 120 * 1024 * 1024),
                                     ("/status/reply", b"", 120 * 1024 * 1024)):
            status, headers, answer = _raw(port, context, path,
                                           "application/x-www-form-urlencoded", body, declared)
            assert status == 413, (path, answer[:300])
            assert headers["content-type"].startswith("text/html"), path
            page = answer.decode()
            assert "What you sent is too large. Check the limits on files and text" in page
            assert "To, co wysyłasz, jest za duże." in page and 'lang="ar"' in page
            assert "nginx" not in page.lower()
            assert headers["cache-control"] == "no-store"
            assert "default-src 'none'" in headers["content-security-policy"]
    # a staff API route on the TLS site too
    status, headers, answer = _raw(front.tls_port, front.tls(), "/api/v1/auth/login",
                                   "application/json", api_body)
    assert status == 413 and json.loads(answer)["error"] == "too_large"
    # and Whistle's own 413 still passes through as Whistle wrote it (not replaced)
    status, headers, answer = _raw(front.onion_port, None, "/api/v1/concerns",
                                   "application/json", api_body * 3)
    assert status == 413 and json.loads(answer)["message"] == "the body is too large"


# -- 5. the lockout mail goes at once, not with the next batch --------------------------


@pytest.mark.parametrize("app_config", [{"LOGIN_LIMIT": "100 per minute",
                                         "LOGIN_LOCKOUT_FAILURES": 3,
                                         "LOGIN_LOCKOUT_SECONDS": 60,
                                         "NOTIFY_INTERVAL_MINUTES": 60}])
def test_the_lockout_mail_goes_at_once_while_notifications_wait_for_the_batch(
        app: Flask, client: FlaskClient, smtp: Any) -> None:
    import datetime as dt

    from whistle import notify
    from whistle.store.models import OutboxMail, utcnow

    ann, bob = make_reviewer(app), make_reviewer(app)
    started = utcnow()
    submit_concern(client)  # activity mail for the reviewers: due at the next boundary
    smtp.clear()
    for _ in range(3):
        assert client.post("/api/v1/auth/login", json={
            "email": ann["email"], "password": "not the password"}).status_code == 401
    assert client.post("/api/v1/auth/login", json={
        "email": ann["email"], "password": ann["password"]}).status_code == 429
    now = utcnow()
    boundary = notify.next_boundary(started, 60)
    if now >= boundary - dt.timedelta(seconds=2):
        pytest.skip("ran across a batch boundary; the batch itself would be due")
    with db.new_session(app) as s:
        rows = {(r.recipient, r.template): r for r in s.scalars(select(OutboxMail))}
        locked = rows[(ann["email"], "signin_locked")]
        # what is stored of it: the day it was queued, and due now (no later than now)
        assert locked.created == dt.datetime.combine(now.date(), dt.time())
        assert locked.next_attempt <= now
        assert rows[(bob["email"], "activity")].next_attempt == boundary
        # when the outbox is delivered now (the every-minute timer), the lockout mail goes
        report = notify.deliver_pending(s, app, now=now)
    assert report.sent == 1
    subject, _body = notify.TEMPLATES["signin_locked"]
    mails = smtp.wait_for(1)
    assert [(m["To"], m["Subject"]) for m in mails] == [(ann["email"], subject)]
    with db.new_session(app) as s:
        rows = {(r.recipient, r.template): r for r in s.scalars(select(OutboxMail))}
        sent = rows[(ann["email"], "signin_locked")]
        # once sent, dates only, as for every mail
        assert sent.sent == sent.next_attempt == dt.datetime.combine(now.date(), dt.time())
        # and the reviewers' activity mail still waits for its batch
        assert rows[(bob["email"], "activity")].sent is None


# -- 3. a memory ceiling per cleaning: PDFs in a child process the OS limits ------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def inflating_pdf(inflated: int, secret: str) -> bytes:
    """A small PDF whose one compressed object stream holds a string of ``inflated`` bytes."""
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.Root.Big = pdf.make_indirect(pikepdf.String(b"a" * inflated))
    pdf.docinfo["/Author"] = secret
    out = io.BytesIO()
    pdf.save(out, object_stream_mode=pikepdf.ObjectStreamMode.generate, compress_streams=True)
    return out.getvalue()


@pytest.mark.parametrize("app_config", [{"MAX_PDF_MEMORY_BYTES": 64 * 1024 * 1024,
                                         "MAX_ATTACHMENT_BYTES": 4 * 1024 * 1024}])
def test_a_pdf_over_the_memory_ceiling_is_refused_without_the_worker_growing(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    secret = marker("AUTHOR")
    bomb = inflating_pdf(160 * 1024 * 1024, secret)  # 160 MiB inflated, a few hundred KB sent
    assert len(bomb) < 1024 * 1024
    small = inflating_pdf(1000, secret)
    before = counts(app)
    start = _status_kib("VmHWM")
    # when a concern arrives with the PDF, cleaning asked for
    response = client.post("/api/v1/concerns", data={
        "concern": json.dumps({"category": "conduct", "details": "a report"}),
        "attachment": (io.BytesIO(bomb), "minutes.pdf")}, content_type="multipart/form-data")
    # then it is refused, clearly, and nothing is stored
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == "cannot_clean"
    assert "minutes.pdf" in response.get_json()["message"]
    assert counts(app) == before
    # and this process (the worker) did not hold the inflated string: the child did, and died
    assert _status_kib("VmHWM") - start < 100 * 1024
    # while a small PDF under the same ceiling is cleaned and stored, its author gone
    ok = client.post("/api/v1/concerns", data={
        "concern": json.dumps({"category": "conduct", "details": "a report"}),
        "attachment": (io.BytesIO(small), "minutes.pdf")}, content_type="multipart/form-data")
    assert ok.status_code == 201, ok.get_data(as_text=True)
    assert any("hidden document information removed" in n
               for n in ok.get_json()["attachment_notes"])


def test_the_confined_child_is_refused_past_its_ceiling_and_cleans_below_it() -> None:
    from whistle import confined, metadata

    secret = marker("AUTHOR")
    bomb = inflating_pdf(160 * 1024 * 1024, secret)
    with pytest.raises(metadata.CannotClean):
        confined.clean_pdf(bomb, 64 * 1024 * 1024)
    cleaned = confined.clean_pdf(inflating_pdf(1000, secret), 64 * 1024 * 1024)
    assert cleaned.startswith(b"%PDF") and secret.encode() not in cleaned
    # a refusal of the cleaning itself keeps its own reason
    with pytest.raises(metadata.CannotClean, match="could not be read as a PDF"):
        confined.clean_pdf(b"%PDF-1.7\nnot really a PDF", 64 * 1024 * 1024)



# -- the list: the slow upload at its full size ----------------------------------

SLOW_RATE = 200 * 1024  # bytes per second, as the issue says


def test_a_100_mib_upload_over_a_slow_start_completes_while_status_checks_answer(
        front: Any) -> None:
    """tests/test_serving.py sends 20 MiB at 200 KiB/s (about 100 s). This sends the issue's
    full 100 MiB (four 25 MiB files) through the onion server: the first 70 s at 200 KiB/s
    (past gunicorn's old 60 s timeout), the rest at loopback speed, or all of it at 200 KiB/s
    (about 8.5 minutes) with WHISTLE_FULL_SLOW_UPLOAD=1. Status checks from another client
    answer within 3 s all along, and the upload gets its 201 with every byte stored."""
    import sqlite3
    import threading

    from tests.test_serving import _connect, _read_response, concern_json
    from tests.test_serving import multipart as serving_multipart
    from tests.test_serving import send_whole_then_read

    slow_for = float("inf") if os.environ.get("WHISTLE_FULL_SLOW_UPLOAD") == "1" else 70.0
    ctype, body = serving_multipart([("concern", None, "application/json",
                                      concern_json("Filed before the large upload."))])
    status, answer = send_whole_then_read(front.onion_port, "/api/v1/concerns", ctype, body)
    assert status == 201, answer[:300]
    token = json.loads(answer)["token"]
    files = [os.urandom(25 * 1024 * 1024 - 4096) for _ in range(4)]
    ctype, body = serving_multipart(
        [("concern", None, "application/json", concern_json("Four large files."))]
        + [("attachment", f"part{i}.bin", "application/octet-stream", f)
           for i, f in enumerate(files)])
    assert len(body) > 100 * 1000 * 1000
    result: dict[str, Any] = {}

    def upload() -> None:
        head = (f"POST /api/v1/concerns HTTP/1.1\r\nHost: x.onion\r\nContent-Type: {ctype}"
                f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        started = time.monotonic()
        try:
            with _connect(front.onion_port, None, 900) as sock:
                sock.sendall(head)
                step = SLOW_RATE // 10
                for i in range(0, len(body), step):
                    sock.sendall(body[i:i + step])
                    if time.monotonic() - started < slow_for:
                        pause = started + (i + step) / SLOW_RATE - time.monotonic()
                        if pause > 0:
                            time.sleep(pause)
                result["sent_after"] = time.monotonic() - started
                result["answer"] = _read_response(sock)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            result["error"] = exc

    thread = threading.Thread(target=upload)
    thread.start()
    waits = []
    check = json.dumps({"token": token}).encode()
    while thread.is_alive():
        started = time.monotonic()
        status, answer = send_whole_then_read(front.onion_port, "/api/v1/status",
                                              "application/json", check)
        waits.append(time.monotonic() - started)
        assert status == 200, answer[:300]
        # No clock limit (the suite asserts no wall-clock time): that they are answered while
        # the upload streams is shown by their number (at least 6 during it, below).
        thread.join(10)
    assert "error" not in result, result.get("error")
    assert float(result["sent_after"]) > 60
    status, answer = result["answer"]
    assert status == 201, answer[:300]
    receipt = json.loads(answer)
    assert len(receipt["attachment_notes"]) == 4, receipt
    with sqlite3.connect(front.database) as conn:
        (stored,) = conn.execute(
            "SELECT SUM(LENGTH(c.blob)) FROM attachments a JOIN attachment_chunks c "
            "ON c.attachment_id = a.id WHERE a.concern_id = ?", (receipt["case_ref"],)
        ).fetchone()
    total = sum(len(f) for f in files)
    assert total <= stored < total * 1.01
    assert len(waits) >= 6, waits
