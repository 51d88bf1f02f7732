"""Costs bounded before work is done (issue 20, item 6).

Site-wide limits on submissions and uploads that identify no one (429 with Retry-After,
nothing stored), and images refused from their header, before a pixel is decoded, when
they claim too many pixels or would need more memory than a cleaning may take.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import struct
import zlib
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, ImageFile
from sqlalchemy import func, select

from tests.support.factories import make_reviewer
from tests.support.probes import csrf
from whistle.store import db
from whistle.store.models import Attachment, Concern

BODY = {"category": "conduct", "details": "Costs marker text."}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header that claims ``width`` x ``height`` RGBA pixels, with one tiny
    compressed row behind it: a few hundred bytes that would decode to gigabytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 4096, 9)) + _chunk(b"IEND", b""))


def _small_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _counts(app: Flask) -> tuple[int, int]:
    with db.new_session(app) as s:
        return (s.scalar(select(func.count()).select_from(Concern)) or 0,
                s.scalar(select(func.count()).select_from(Attachment)) or 0)


def _send(client: FlaskClient, files: list[tuple[bytes, str]]) -> Any:
    data: dict[str, Any] = {"concern": json.dumps(BODY)}
    data["attachment"] = [(io.BytesIO(raw), name) for raw, name in files]
    return client.post("/api/v1/concerns", data=data, content_type="multipart/form-data")


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The sizes of images Pillow was asked to decode (``ImageFile.load``)."""
    seen: list[tuple[int, int]] = []
    original = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> Any:
        seen.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return seen


@pytest.mark.parametrize("size", [(7000, 7000), (100_000, 100_000), (65_535, 1)])
def test_an_image_claiming_too_many_pixels_is_refused_before_decoding(
        app: Flask, client: FlaskClient, decoded: list[tuple[int, int]],
        size: tuple[int, int]) -> None:
    make_reviewer(app), make_reviewer(app)
    before = _counts(app)
    bomb = png_claiming(*size)
    assert len(bomb) < 1000
    response = _send(client, [(bomb, "photo.png")])
    if size == (65_535, 1):  # a control: a strip of few pixels is decoded and cleaned
        assert response.status_code in (201, 400), response.get_data(as_text=True)
        assert decoded
        return
    assert response.status_code == 413, response.get_data(as_text=True)
    assert response.get_json()["error"] == "too_large"
    assert "too large" in response.get_json()["message"]
    assert decoded == []  # refused from the header: not a pixel was decoded (no clock needed)
    assert _counts(app) == before


@pytest.mark.parametrize("app_config", [{"MAX_IMAGE_MEMORY_BYTES": 8 * 1024 * 1024}])
def test_an_image_that_would_need_more_memory_than_a_cleaning_may_take_is_refused(
        app: Flask, client: FlaskClient, decoded: list[tuple[int, int]]) -> None:
    make_reviewer(app), make_reviewer(app)
    before = _counts(app)
    response = _send(client, [(png_claiming(2000, 2000), "scan.png")])  # 2 x 16 MB decoded
    assert response.status_code == 413
    assert "too large to clean safely" in response.get_json()["message"]
    assert decoded == [] and _counts(app) == before
    # An ordinary image within the budget is cleaned and stored.
    ok = _send(client, [(_small_png(), "small.png")])
    assert ok.status_code == 201, ok.get_data(as_text=True)
    assert set(decoded) == {(64, 48)}


@pytest.mark.parametrize("app_config", [{"SUBMISSION_LIMIT": "3 per minute"}])
def test_submissions_past_the_site_wide_limit_get_429_and_nothing_is_stored(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    for _ in range(3):
        assert client.post("/api/v1/concerns", json=BODY).status_code == 201
    before = _counts(app)
    refused = client.post("/api/v1/concerns", json=BODY)
    assert refused.status_code == 429 and refused.get_json()["error"] == "busy"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # The form: 429 with Retry-After, and the reporter's words are given back.
    page = client.post("/report", data={"csrf_token": csrf(client, "/report"),
                                        "category": "conduct",
                                        "details": "Form marker 7f3a: keep my words."})
    assert page.status_code == 429 and int(page.headers["Retry-After"]) >= 1
    assert "Form marker 7f3a: keep my words." in page.get_data(as_text=True)
    assert _counts(app) == before


@pytest.mark.parametrize("app_config", [{"UPLOAD_LIMIT": "2 per minute"}])
def test_uploads_past_the_site_wide_limit_get_429_and_nothing_is_stored(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    before = _counts(app)
    three = [(b"note %d" % i, f"note{i}.txt") for i in range(3)]
    refused = _send(client, three)
    assert refused.status_code == 429 and refused.get_json()["error"] == "busy"
    assert int(refused.headers["Retry-After"]) >= 1
    assert _counts(app) == before
    # A concern without files is not an upload; the limit's window still holds two.
    assert client.post("/api/v1/concerns", json=BODY).status_code == 201


def test_the_default_limits_never_refuse_a_realistic_burst(app: Flask,
                                                           client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    for _ in range(20):  # far more than any organisation files in a minute
        assert _send(client, [(b"a note", "note.txt")]).status_code == 201


@pytest.mark.parametrize("app_config", [{"UPLOAD_LIMIT": "2 per minute"}])
def test_files_kept_at_the_review_step_count_once_against_the_upload_limit(
        app: Flask, client: FlaskClient) -> None:
    """The review step stores the files chosen so far (sealed, for the next page): past the
    site-wide upload limit it answers 429, keeps nothing and gives the words back. Files it
    did keep were counted then, so sending them does not count them a second time."""
    from tests.support.probes import Snapshot
    from whistle.store.models import KeptUpload

    make_reviewer(app), make_reviewer(app)

    def review(names: list[str]) -> Any:
        return client.post("/report", data={
            "csrf_token": csrf(client, "/report"), "step": "review", "category": "conduct",
            "details": "Review marker 51c2: keep my words.", "identity": "anonymous",
            "idempotency_key": "ab" * 16,
            "attachment": [(io.BytesIO(b"note " + n.encode()), n) for n in names]},
            content_type="multipart/form-data")

    kept = review(["a.txt", "b.txt"])
    assert kept.status_code == 200, kept.get_data(as_text=True)
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(KeptUpload))  # kept, sealed
    refs = re.findall(r'name="kept" value="([0-9a-f]{32}\.[0-9a-f]{64})"',
                      kept.get_data(as_text=True))
    assert len(refs) == 2
    # The two kept files used up the window: one more file at the review step is refused.
    snapshot = Snapshot(app)
    refused = review(["c.txt"])
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Review marker 51c2: keep my words." in refused.get_data(as_text=True)
    snapshot.assert_unchanged("a file past the limit at the review step")
    # Sending the two kept files does not count them again.
    sent = client.post("/report", data={
        "csrf_token": csrf(client, "/report"), "category": "conduct",
        "details": "Review marker 51c2: keep my words.", "identity": "anonymous",
        "idempotency_key": "ab" * 16, "kept": refs})
    assert sent.status_code == 201, sent.get_data(as_text=True)
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(Attachment)) == 2


def test_the_review_step_removes_kept_files_past_their_time(
        app: Flask, client: FlaskClient) -> None:
    """Kept files wait ``KEPT_UPLOAD_HOURS`` at most even when no cron job runs: each review
    step that keeps files first removes those past their time."""
    from sqlalchemy import update

    from whistle.store.models import KeptUpload, utcnow

    make_reviewer(app), make_reviewer(app)

    def review(name: str) -> Any:
        return client.post("/report", data={
            "csrf_token": csrf(client, "/report"), "step": "review", "category": "conduct",
            "details": "Kept for later.", "identity": "anonymous",
            "attachment": [(io.BytesIO(b"note"), name)]}, content_type="multipart/form-data")

    assert review("old.txt").status_code == 200
    with db.new_session(app) as s:
        old = set(s.scalars(select(KeptUpload.id)))
        s.execute(update(KeptUpload).values(created=utcnow() - dt.timedelta(hours=7)))
        s.commit()
    assert review("new.txt").status_code == 200
    with db.new_session(app) as s:
        left = set(s.scalars(select(KeptUpload.id)))
    assert left and not left & old
