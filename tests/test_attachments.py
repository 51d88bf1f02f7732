"""Issue 4: attachments sealed in chunks, never plaintext on disk, cleaned, downloaded safely.

Real parts throughout: a SQLite file, the real crypto, Pillow and pikepdf,
the Flask test client with hand-built multipart bodies (the test client's own
encoder spools big bodies to plaintext temp files, which would hide what the
server does), and one test against a real gunicorn process.
"""

from __future__ import annotations

import io
import json
import os
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pikepdf
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import delete, func, select, update

from tests.support import services, webflow
from tests.support.factories import database_bytes, login, make_reviewer, submit_concern
from tests.support.webflow import encodings
from whistle import crypto, keys, metadata, settings_of
from whistle.cases import attachments
from whistle.cases import spool as spool_mod
from whistle.store import db, migrate
from whistle.store.models import (
    Attachment,
    AttachmentChunk,
    AuditEvent,
    Concern,
    OutboxMail,
    utcnow,
)

ROOT = Path(__file__).resolve().parent.parent
CHUNK = spool_mod.CHUNK_SIZE


# -- helpers -------------------------------------------------------------------


def marker() -> str:
    return webflow.marker("MARK")


FilePart = tuple[str, str, bytes] | tuple[str, str, bytes, str]


def multipart(fields: dict[str, str], files: list[FilePart],
              raw_disposition: dict[int, bytes] | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body built by hand: (body, content type).

    ``files`` are (part name, filename, content[, content type]). A filename is
    sent as a quoted UTF-8 string; ``raw_disposition`` replaces the whole
    Content-Disposition value of file number i (for hostile encodings).
    """
    boundary = "----whistle" + secrets.token_hex(12)
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                  .encode())
        out.write(value.encode() + b"\r\n")
    for i, part in enumerate(files):
        name, filename, content = part[0], part[1], part[2]
        ctype = part[3] if len(part) > 3 else "application/octet-stream"  # type: ignore[misc]
        disposition = (raw_disposition or {}).get(i) or (
            f'form-data; name="{name}"; filename="'.encode() + filename.encode("utf-8",
                                                                               "surrogatepass")
            + b'"')
        out.write(f"--{boundary}\r\n".encode() + b"Content-Disposition: " + disposition
                  + f"\r\nContent-Type: {ctype}\r\n\r\n".encode())
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def concern_json(**extra: Any) -> str:
    return json.dumps({"category": "conduct", "details": "See the attached files."} | extra)


def post_concern(client: FlaskClient, files: list[FilePart], **extra: Any) -> Any:
    body, ctype = multipart({"concern": concern_json(**extra)}, files)
    return client.post("/api/v1/concerns", data=body, content_type=ctype)


def submit_with_files(client: FlaskClient, files: list[FilePart], **extra: Any
                      ) -> dict[str, Any]:
    response = post_concern(client, files, **extra)
    assert response.status_code == 201, response.get_data(as_text=True)
    data: dict[str, Any] = response.get_json()
    return data


def case(client: FlaskClient, headers: dict[str, str], case_ref: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/cases/{case_ref}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    data: dict[str, Any] = response.get_json()
    return data


def download(client: FlaskClient, headers: dict[str, str], case_ref: str, att_id: str) -> Any:
    return client.get(f"/api/v1/cases/{case_ref}/attachments/{att_id}", headers=headers)


def count(app: Flask, model: Any) -> int:
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def jpeg_with_gps(serial: str) -> bytes:
    image = Image.new("RGB", (96, 64), (30, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "MakerCo"
    exif[0x0110] = "PhoneModel"
    exif[0x0112] = 6  # orientation: rotate on display
    exif.get_ifd(0x8769)[0xA431] = serial  # BodySerialNumber
    exif.get_ifd(0x8825).update({1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), comment=serial.encode())
    return out.getvalue()


def pdf_with_author(author: str) -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.trailer.Info = pdf.make_indirect(pikepdf.Dictionary(
        Author=pikepdf.String(author), Producer=pikepdf.String("Office " + author)))
    xmp = (f'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
           f'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
           f'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>{author}</dc:creator>'
           f'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()
    pdf.Root.Metadata = pdf.make_stream(xmp, Type=pikepdf.Name.Metadata,
                                        Subtype=pikepdf.Name.XML)
    out = io.BytesIO()
    pdf.save(out, compress_streams=False, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    return out.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return (len(body).to_bytes(4, "big") + kind + body
            + zlib.crc32(kind + body).to_bytes(4, "big"))


def pixel_flood_png(side: int = 50_000) -> bytes:
    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + png_chunk(b"IEND", b""))


@pytest.fixture
def app_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Per-test configuration through ``parametrize("app_config", [...], indirect=True)``."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def two(app: Flask) -> list[dict[str, str]]:
    return [make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")]


@pytest.fixture
def headers(client: FlaskClient, two: list[dict[str, str]]) -> dict[str, str]:
    return login(client, two[0])


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp directory of our own, so "nothing in the temp dir" is checkable exactly."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


def files_under(path: Path) -> Iterator[Path]:
    for root, _dirs, names in os.walk(path):
        for name in names:
            yield Path(root) / name


def open_file_contents(pid: int | str = "self") -> Iterator[tuple[str, bytes]]:
    """(link target, contents) of every regular file a process has open, deleted ones too."""
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
            if not target.startswith("/") or target.startswith(("/dev/", "/proc/")):
                continue
            with open(f"{fd_dir}/{fd}", "rb") as f:
                yield target, f.read()
        except (FileNotFoundError, PermissionError, IsADirectoryError, OSError):
            continue


# -- upload, listing and download -----------------------------------------------


def test_files_sent_with_a_concern_are_listed_and_download_exactly(
        client: FlaskClient, headers: dict[str, str]) -> None:
    big = os.urandom(3 * CHUNK + 1234)
    exact = os.urandom(2 * CHUNK)
    receipt = submit_with_files(client, [
        ("attachment", "evidence.bin", big), ("attachment", "exact.bin", exact),
        ("attachment", "notes.txt", b"plain words\n", "text/plain"),
        ("attachment", "empty.txt", b"")], clean_metadata=False)
    assert len(receipt["attachment_notes"]) == 4
    listed = {a["filename"]: a for a in case(client, headers, receipt["case_ref"])["attachments"]}
    assert set(listed) == {"evidence.bin", "exact.bin", "notes.txt", "empty.txt"}
    assert listed["evidence.bin"]["size"] == len(big)
    assert listed["notes.txt"]["content_type"] == "text/plain"
    assert listed["evidence.bin"]["content_type"] == "application/octet-stream"
    for name, content in (("evidence.bin", big), ("exact.bin", exact),
                          ("notes.txt", b"plain words\n"), ("empty.txt", b"")):
        response = download(client, headers, receipt["case_ref"], listed[name]["id"])
        assert response.status_code == 200
        assert response.data == content
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Length"] == str(len(content))
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"].startswith("sandbox")
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment;")
        assert f"filename*=UTF-8''{name}" in disposition


def test_ids_are_random_and_the_chunks_are_64_kib(app: Flask, client: FlaskClient,
                                                  two: list[dict[str, str]]) -> None:
    submit_with_files(client, [("attachment", "a.bin", os.urandom(2 * CHUNK + 1))])
    with db.new_session(app) as s:
        att = s.scalars(select(Attachment)).one()
        assert re.fullmatch(r"[0-9a-f]{32}", att.id)
        sizes = [len(b) for b in s.scalars(select(AttachmentChunk.blob)
                                           .order_by(AttachmentChunk.index))]
    assert att.chunk_count == 3
    assert sizes == [CHUNK + 16, CHUNK + 16, 1 + 16]


def test_download_name_is_encoded_per_rfc_6266(client: FlaskClient,
                                                headers: dict[str, str]) -> None:
    name = 'Überweisung "März"; 100% ✓.pdf'
    body, ctype = multipart({"concern": concern_json(clean_metadata=False)},
                            [("attachment", "x", b"%PDF-1.4 not really")],
                            {0: b"form-data; name=\"attachment\"; filename*=UTF-8''"
                                + quote(name).encode()})
    response = client.post("/api/v1/concerns", data=body, content_type=ctype)
    assert response.status_code == 201
    receipt = response.get_json()
    att = case(client, headers, receipt["case_ref"])["attachments"][0]
    assert att["filename"] == name.replace('"', "_")
    disposition = download(client, headers, receipt["case_ref"], att["id"]) \
        .headers["Content-Disposition"]
    assert disposition.isascii()
    fallback = re.search(r'filename="([^"]*)"', disposition)
    assert fallback and ";" not in fallback.group(1)
    encoded = re.search(r"filename\*=UTF-8''(\S+)$", disposition)
    assert encoded and unquote(encoded.group(1)) == att["filename"]


def test_the_report_form_attaches_files_and_the_reviewer_page_downloads_them(
        client: FlaskClient, two: list[dict[str, str]]) -> None:
    content = os.urandom(100_000)
    body, ctype = multipart({
        "csrf_token": csrf(client, "/report"), "category": "conduct",
        "details": "With a file", "identity": "anonymous", "clean_metadata": "yes",
        "idempotency_key": secrets.token_hex(16)}, [
        ("attachment", "scan.dat", content), ("attachment", "", b"")])
    page = client.post("/report", data=body, content_type=ctype)
    assert page.status_code == 201, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    assert "scan.dat</bdi>: kept as sent" in html
    case_ref = re.search(r'<strong class="ref">([^<]+)</strong>', html)
    assert case_ref
    assert client.post("/reviewer/login", data={
        "csrf_token": csrf(client, "/reviewer/login"), "email": two[0]["email"],
        "password": two[0]["password"]}).status_code == 302
    case_page = client.get(f"/reviewer/cases/{case_ref.group(1)}").get_data(as_text=True)
    link = re.search(r'href="(/reviewer/cases/[^"]+/attachments/[0-9a-f]{32})"', case_page)
    assert link and "scan.dat" in case_page
    response = client.get(link.group(1))
    assert response.status_code == 200 and response.data == content
    assert response.headers["Content-Disposition"].startswith("attachment;")


def test_intake_and_the_form_show_the_limits(client: FlaskClient) -> None:
    limits = client.get("/api/v1/intake").get_json()["limits"]
    assert limits["attachments"] == 10
    assert limits["attachment_bytes"] == 25 * 1024 * 1024
    assert limits["attachments_total_bytes"] == 100 * 1024 * 1024
    form = client.get("/report").get_data(as_text=True)
    # Decimal megabytes, rounded down so the page never promises more (issue 21: "MiB" is jargon).
    assert "up to 10 files, 26 MB each, 104 MB in all" in form
    assert 'name="clean_metadata" value="yes" checked' in form


# -- nothing readable at rest, not even while uploading --------------------------


def test_a_marker_in_a_file_and_its_name_is_nowhere_at_rest(
        app: Flask, client: FlaskClient, headers: dict[str, str], tmp_path: Path,
        spool_dir: Path) -> None:
    mark = marker()
    content = (f"start {mark} ".encode() + os.urandom(CHUNK - 50) + mark.encode()
               + b"x" * (2 * CHUNK) + f" end {mark}".encode())
    receipt = submit_with_files(client, [("attachment", f"{mark}.txt", content),
                                         ("attachment", f"b-{mark}.png", content)],
                                clean_metadata=False)
    # The full flow: list and download too.
    for att in case(client, headers, receipt["case_ref"])["attachments"]:
        assert mark in att["filename"]
        assert download(client, headers, receipt["case_ref"], att["id"]).data == content
    stored = database_bytes(app)
    assert len(stored) > len(content)
    for form in encodings(mark):
        assert form not in stored
    for path in files_under(tmp_path):
        data = path.read_bytes()
        assert all(form not in data for form in encodings(mark)), path
        assert mark not in path.name
    assert list(files_under(spool_dir)) == []


class ScanningBody(io.RawIOBase):
    """A request body that, each time the server reads from it, scans this process's open files."""

    def __init__(self, body: bytes, needle: bytes, spool_dir: Path) -> None:
        super().__init__()
        self._body = io.BytesIO(body)
        self.needle = needle
        self.spool_dir = str(spool_dir)
        self.scans = 0
        self.hits: list[str] = []
        self.spools_seen: set[str] = set()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._body.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._body.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        self.scan()
        data = self._body.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def scan(self) -> None:
        self.scans += 1
        for target, data in open_file_contents():
            if target.startswith(self.spool_dir):
                self.spools_seen.add(target)
            if self.needle in data:
                self.hits.append(target)


def test_a_large_upload_never_puts_plaintext_in_any_open_file(
        app: Flask, client: FlaskClient, two: list[dict[str, str]], spool_dir: Path) -> None:
    mark = marker().encode()
    content = (mark + os.urandom(4096)) * 640  # about 2.6 MiB, the marker every 4 KiB
    body, ctype = multipart({"concern": concern_json(clean_metadata=False)},
                            [("attachment", "big.bin", content)])
    stream = ScanningBody(body, mark, spool_dir)
    response = client.post("/api/v1/concerns", input_stream=stream, content_type=ctype,
                           headers={"Content-Length": str(len(body))})
    assert response.status_code == 201, response.get_data(as_text=True)
    stream.scan()
    assert stream.scans > 20
    # The spool really went to disk (an unlinked file in our temp dir) and was scanned.
    assert any("(deleted)" in s for s in stream.spools_seen), stream.spools_seen
    assert stream.hits == []
    assert mark not in database_bytes(app)


def _free_port() -> int:
    return services.free_port()


@pytest.fixture
def served_app(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """A real gunicorn worker serving Whistle from a fresh SQLite file and keys."""
    keys_dir, spool, heartbeat = tmp_path / "srv-keys", tmp_path / "srv-tmp", tmp_path / "srv-hb"
    spool.mkdir()
    heartbeat.mkdir()
    keys.create_missing(str(keys_dir), str(tmp_path / "srv-recovery.txt"))
    url = f"sqlite:///{tmp_path / 'served.db'}"
    migrate.upgrade(db.make_engine(url))
    port = _free_port()
    env = os.environ | {"WHISTLE_DATABASE_URL": url, "WHISTLE_KEYS_DIR": str(keys_dir),
                        "TMPDIR": str(spool), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}",
         "--worker-tmp-dir", str(heartbeat), "--chdir", str(ROOT), "app:app"], env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        # The master listens before the worker has loaded the app: wait for an answer.
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                    probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if probe.recv(64).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"gunicorn did not start: {err[-2000:]}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}", proc.pid, spool
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _process_tree(pid: int) -> list[int]:
    out = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for child in children:
        out.extend(_process_tree(int(child)))
    return out


def test_a_real_server_never_holds_an_uploads_plaintext_in_a_file(
        served_app: tuple[str, int, Path]) -> None:
    address, pid, spool = served_app
    mark = marker().encode()
    content = (mark + os.urandom(8192)) * 320  # about 2.6 MiB
    body, ctype = multipart({"concern": concern_json(clean_metadata=False)},
                            [("attachment", f"{mark.decode()}.bin", content)])
    host, port = address.split(":")
    hits: list[str] = []
    spools: set[str] = set()
    scans = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST /api/v1/concerns HTTP/1.1\r\nHost: {address}\r\n"
                     f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                     "Connection: close\r\n\r\n".encode())
        step = 128 * 1024
        for offset in range(0, len(body), step):
            sock.sendall(body[offset:offset + step])
            time.sleep(0.02)  # let the worker read and spool what has arrived
            scans += 1
            for proc_id in _process_tree(pid):
                for target, data in open_file_contents(proc_id):
                    if target.startswith(str(spool)):
                        spools.add(target)
                    if mark in data:
                        hits.append(target)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 201"), reply[:500]
    assert scans > 15
    assert any("(deleted)" in s for s in spools), spools
    assert hits == []
    assert mark not in (spool.parent / "served.db").read_bytes()
    assert list(files_under(spool)) == []


# -- integrity ---------------------------------------------------------------------


def _flip(app: Flask, att_id: str, index: int, bit: int = 0) -> bytes:
    with db.new_session(app) as s:
        blob = s.scalar(select(AttachmentChunk.blob).where(
            AttachmentChunk.attachment_id == att_id, AttachmentChunk.index == index))
        assert blob is not None
        flipped = bytearray(blob)
        flipped[bit // 8] ^= 1 << (bit % 8)
        s.execute(update(AttachmentChunk).where(
            AttachmentChunk.attachment_id == att_id, AttachmentChunk.index == index)
            .values(blob=bytes(flipped)))
        s.commit()
        return blob


def _restore(app: Flask, att_id: str, index: int, blob: bytes) -> None:
    with db.new_session(app) as s:
        s.execute(update(AttachmentChunk).where(
            AttachmentChunk.attachment_id == att_id, AttachmentChunk.index == index)
            .values(blob=blob))
        s.commit()


def _assert_integrity_error(response: Any, content: bytes) -> None:
    assert response.status_code == 409
    assert response.get_json()["error"] == "integrity_error"
    assert content[:32] not in response.data and content[-32:] not in response.data


def test_a_flipped_bit_in_any_chunk_fails_the_whole_download_clearly(
        app: Flask, client: FlaskClient, headers: dict[str, str]) -> None:
    content = os.urandom(3 * CHUNK + 10)
    receipt = submit_with_files(client, [("attachment", "x.bin", content)])
    att_id = case(client, headers, receipt["case_ref"])["attachments"][0]["id"]
    for index, bit in ((0, 0), (1, 8 * 1000 + 3), (2, 8 * CHUNK + 7), (3, 8 * 5 + 1)):
        original = _flip(app, att_id, index, bit)
        _assert_integrity_error(download(client, headers, receipt["case_ref"], att_id), content)
        _restore(app, att_id, index, original)
    assert download(client, headers, receipt["case_ref"], att_id).data == content


def test_every_download_is_recorded_in_the_case_trail(
        app: Flask, client: FlaskClient, two: list[dict[str, str]],
        headers: dict[str, str]) -> None:
    """Chain of custody: each download is an ``attachment_downloaded`` event naming the
    reviewer and the file, every time (not once per window as "opened"); a download that
    fails verification sends nothing and records nothing; the reporter's timeline does
    not show these events; the case's hash chain still verifies."""
    from whistle.cases import audit

    content = os.urandom(CHUNK + 5)
    receipt = submit_with_files(client, [("attachment", "x.bin", content)],
                                clean_metadata=False)
    ref = receipt["case_ref"]
    att_id = case(client, headers, ref)["attachments"][0]["id"]
    assert download(client, headers, ref, att_id).data == content
    assert download(client, headers, ref, att_id).data == content
    original = _flip(app, att_id, 0, 3)
    _assert_integrity_error(download(client, headers, ref, att_id), content)
    _restore(app, att_id, 0, original)
    downloads = [e for e in case(client, headers, ref)["events"]
                 if e["type"] == "attachment_downloaded"]
    assert [(e["actor"], e["data"]) for e in downloads] == [
        (two[0]["id"], {"attachment": att_id})] * 2
    status = client.post("/api/v1/status", json={"token": receipt["token"]}).get_json()
    assert status["events"] and all(e["type"] != "attachment_downloaded"
                                    for e in status["events"])
    with db.new_session(app) as s:
        checked, broken = audit.verify(s)
    assert checked >= 1 and broken is None


def test_truncated_reordered_or_swapped_chunks_fail_to_download(
        app: Flask, client: FlaskClient, headers: dict[str, str]) -> None:
    content = os.urandom(2 * CHUNK + 10)
    receipt = submit_with_files(client, [("attachment", "a.bin", content),
                                         ("attachment", "b.bin", content)])
    ref = receipt["case_ref"]
    a_id, b_id = (a["id"] for a in case(client, headers, ref)["attachments"])
    with db.new_session(app) as s:  # swap chunk 0 between two files of the same case
        blob_a = s.scalar(select(AttachmentChunk.blob).where(
            AttachmentChunk.attachment_id == a_id, AttachmentChunk.index == 0))
        blob_b = s.scalar(select(AttachmentChunk.blob).where(
            AttachmentChunk.attachment_id == b_id, AttachmentChunk.index == 0))
    _restore(app, a_id, 0, blob_b or b"")
    _assert_integrity_error(download(client, headers, ref, a_id), content)
    _restore(app, a_id, 0, blob_a or b"")
    with db.new_session(app) as s:  # drop the tail and claim fewer chunks
        s.execute(update(Attachment).where(Attachment.id == a_id).values(chunk_count=2))
        s.commit()
    _assert_integrity_error(download(client, headers, ref, a_id), content)
    with db.new_session(app) as s:
        s.execute(update(Attachment).where(Attachment.id == a_id).values(chunk_count=3))
        s.execute(delete(AttachmentChunk).where(
            AttachmentChunk.attachment_id == a_id, AttachmentChunk.index == 2))
        s.commit()
    _assert_integrity_error(download(client, headers, ref, a_id), content)
    assert download(client, headers, ref, b_id).data == content


def test_a_damaged_file_name_shows_as_an_integrity_error_without_hiding_the_case(
        app: Flask, client: FlaskClient, headers: dict[str, str]) -> None:
    receipt = submit_with_files(client, [("attachment", "a.bin", b"first"),
                                         ("attachment", "b.bin", b"second")])
    ref = receipt["case_ref"]
    a_id = {a["filename"]: a["id"] for a in case(client, headers, ref)["attachments"]}["a.bin"]
    with db.new_session(app) as s:
        meta = s.scalar(select(Attachment.meta_ct).where(Attachment.id == a_id)) or b""
        s.execute(update(Attachment).where(Attachment.id == a_id)
                  .values(meta_ct=meta[:-1] + bytes([meta[-1] ^ 1])))
        s.commit()
    listed = {a["id"]: a for a in case(client, headers, ref)["attachments"]}
    assert listed[a_id]["integrity_error"] is True
    assert [a["filename"] for a in listed.values() if not a["integrity_error"]] == ["b.bin"]
    _assert_integrity_error(download(client, headers, ref, a_id), b"first")


def test_the_spool_reads_back_anywhere_and_detects_tampering(spool_dir: Path) -> None:
    content = os.urandom(3 * CHUNK + 77)
    spool = spool_mod.EncryptedSpool(memory_limit=CHUNK)
    for offset in range(0, len(content), 10_000):
        spool.write(content[offset:offset + 10_000])
    spool.seek(0)
    assert spool.on_disk and spool.read() == content
    spool.seek(CHUNK - 5)
    assert spool.read(10) == content[CHUNK - 5:CHUNK]  # a read stops at a chunk boundary
    assert spool.read(10) == content[CHUNK:CHUNK + 10]
    spool.seek(-3, io.SEEK_END)
    assert spool.read() == content[-3:]
    with pytest.raises(ValueError):
        spool.write(b"no more")
    disk = spool._store  # the ciphertext on disk: flip one bit
    disk.seek(CHUNK + 16 + 100)
    byte = disk.read(1)
    disk.seek(CHUNK + 16 + 100)
    disk.write(bytes([byte[0] ^ 1]))
    disk.flush()
    spool.seek(CHUNK + 1)
    with pytest.raises(crypto.CryptoError):
        spool.read(1)
    spool.close()


def test_display_names_are_sanitised() -> None:
    name = attachments.display_name
    assert name("../../etc/passwd") == "etc_passwd"
    assert name("..\\..\\win.ini") == "win.ini"
    assert name('say "hi".txt') == "say _hi_.txt"
    assert name("a.pdf\x00.exe") == "a.pdf_.exe"
    assert name("CON") == "_CON"
    assert name("\u202egpj.exe") == "_gpj.exe"
    assert name("") == name(None) == name("..") == "attachment"
    long = name("x" * 10_000 + ".docx")
    assert len(long) == 150 and long.endswith(".docx")


# -- metadata removal --------------------------------------------------------------


def test_exif_gps_and_camera_serial_are_removed_when_cleaning(
        client: FlaskClient, headers: dict[str, str]) -> None:
    serial = "SERIAL" + secrets.token_hex(6)
    original = jpeg_with_gps(serial)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)
    receipt = submit_with_files(client, [("attachment", "photo.jpg", original, "image/jpeg")])
    assert receipt["attachment_notes"] == ["photo.jpg: hidden information removed"]
    att = case(client, headers, receipt["case_ref"])["attachments"][0]
    assert att["cleaned"] is True and att["content_type"] == "image/jpeg"
    cleaned = download(client, headers, receipt["case_ref"], att["id"]).data
    assert serial.encode() not in cleaned and b"Exif" not in cleaned
    assert b"MakerCo" not in cleaned and b"PhoneModel" not in cleaned
    image = Image.open(io.BytesIO(cleaned))
    assert not image.getexif() and not image.getexif().get_ifd(0x8825)
    assert "exif" not in image.info and "comment" not in image.info
    assert image.size == (64, 96)  # the orientation was applied to the pixels


def test_files_are_kept_byte_identical_when_cleaning_is_off(
        client: FlaskClient, headers: dict[str, str]) -> None:
    photo = jpeg_with_gps("SERIAL" + secrets.token_hex(6))
    document = pdf_with_author("AUTHOR" + secrets.token_hex(6))
    receipt = submit_with_files(client, [("attachment", "photo.jpg", photo),
                                         ("attachment", "report.pdf", document)],
                                clean_metadata=False)
    assert all(n.endswith("kept exactly as sent") for n in receipt["attachment_notes"])
    for att in case(client, headers, receipt["case_ref"])["attachments"]:
        assert att["cleaned"] is False and att["clean_requested"] is False
        expected = photo if att["filename"] == "photo.jpg" else document
        assert download(client, headers, receipt["case_ref"], att["id"]).data == expected


def test_pdf_author_and_xmp_are_removed_when_cleaning(
        client: FlaskClient, headers: dict[str, str]) -> None:
    author = "AUTHOR" + secrets.token_hex(6)
    original = pdf_with_author(author)
    assert author.encode() in original
    receipt = submit_with_files(client, [("attachment", "report.pdf", original)])
    att = case(client, headers, receipt["case_ref"])["attachments"][0]
    assert att["cleaned"] is True
    cleaned = download(client, headers, receipt["case_ref"], att["id"]).data
    assert author.encode() not in cleaned
    with pikepdf.open(io.BytesIO(cleaned)) as pdf:
        assert "/Author" not in pdf.docinfo and "/Producer" not in pdf.docinfo
        assert "/Metadata" not in pdf.Root
        assert len(pdf.pages) == 1


def test_the_receipt_says_which_formats_could_not_be_cleaned(
        client: FlaskClient, headers: dict[str, str]) -> None:
    docx = b"PK\x03\x04" + os.urandom(500)
    receipt = submit_with_files(client, [("attachment", "minutes.docx", docx),
                                         ("attachment", "photo.jpg", jpeg_with_gps("S1"))])
    notes = receipt["attachment_notes"]
    assert notes[0].startswith("minutes.docx: kept as sent: hidden information can only be "
                               "removed from")
    assert notes[1] == "photo.jpg: hidden information removed"
    by_name = {a["filename"]: a for a in case(client, headers, receipt["case_ref"])["attachments"]}
    assert download(client, headers, receipt["case_ref"], by_name["minutes.docx"]["id"]).data \
        == docx


def test_a_broken_image_is_refused_rather_than_stored_uncleaned(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    response = post_concern(client, [("attachment", "photo.jpg",
                                      b"\xff\xd8\xff\xe1" + b"Exif GPS " * 50)])
    assert response.status_code == 400
    assert response.get_json()["error"] == "cannot_clean"
    assert "untick" in response.get_json()["message"]
    assert count(app, Concern) == 0 and count(app, Attachment) == 0


def test_a_pixel_flood_image_is_refused_quickly(app: Flask, client: FlaskClient,
                                                two: list[dict[str, str]]) -> None:
    flood = pixel_flood_png()  # 50,000 x 50,000 pixels: 7.5 GB once decoded
    assert len(flood) < 1000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    response = post_concern(client, [("attachment", "flood.png", flood)])
    # Refused from the header, before any pixel is decoded: the process's peak memory did
    # not grow by anything like one decoded row band, let alone the image.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200 * 1024
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_large"
    assert count(app, Concern) == 0 and count(app, AttachmentChunk) == 0
    # Not cleaned, it is just opaque bytes: stored as sent.
    assert post_concern(client, [("attachment", "flood.png", flood)],
                        clean_metadata=False).status_code == 201


def test_content_that_does_not_match_its_name_is_flagged(
        client: FlaskClient, headers: dict[str, str]) -> None:
    receipt = submit_with_files(client, [
        ("attachment", "holiday.jpg", b"<html><script>alert(1)</script></html>", "image/jpeg"),
        ("attachment", "invoice.pdf", b"MZ\x90\x00" + os.urandom(200), "application/pdf"),
        ("attachment", "real.jpg", jpeg_with_gps("S2")),
        ("attachment", "tool", b"\x7fELF" + os.urandom(100)),
        ("attachment", "readme.txt", b"just text")], clean_metadata=False)
    by_name = {a["filename"]: a for a in case(client, headers, receipt["case_ref"])["attachments"]}
    assert by_name["holiday.jpg"]["mismatch"] is True
    assert by_name["holiday.jpg"]["detected_type"] == "text/html"
    assert by_name["holiday.jpg"]["declared_type"] == "image/jpeg"
    assert by_name["invoice.pdf"]["mismatch"] is True
    assert by_name["tool"]["mismatch"] is True
    assert by_name["real.jpg"]["mismatch"] is False
    assert by_name["readme.txt"]["mismatch"] is False


def test_the_sniffer_ignores_names_and_declared_types() -> None:
    assert metadata.sniff(jpeg_with_gps("S")[:64]) == "image/jpeg"
    assert metadata.sniff(pdf_with_author("A")[:64]) == "application/pdf"
    assert metadata.sniff(b"GIF89a....") == "image/gif"
    assert metadata.sniff(b"\x00\x01\x02") is None
    assert metadata.mismatch("a.JPG", "image/jpeg") is False
    assert metadata.mismatch("a.jpg", None) is True


# -- hostile names -------------------------------------------------------------------


HOSTILE_NAMES = [
    "../../etc/passwd", "..\\..\\win.ini", "/etc/passwd", "a.pdf\x00.exe", "..", ".",
    "CON", "con.txt", "gpj.exe\u202e", "\u202egpj.exe", "A" * 10_000 + ".pdf", "ok\x07bell.txt",
    "dir/../../x", "  .hidden  ", "\u2028line.txt",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n)[:30])
def test_hostile_filenames_are_sanitised_and_never_reach_the_filesystem(
        app: Flask, client: FlaskClient, headers: dict[str, str], tmp_path: Path,
        spool_dir: Path, name: str) -> None:
    before = set(files_under(tmp_path))
    response = post_concern(client, [("attachment", name, b"content of the file")],
                            clean_metadata=False)
    assert response.status_code == 201, response.get_data(as_text=True)
    att = case(client, headers, response.get_json()["case_ref"])["attachments"][0]
    shown = att["filename"]
    assert shown and len(shown) <= 150
    assert not re.search(r"[\x00-\x1f\x7f/\\\u202e\u2028]", shown)
    assert not shown.startswith(".") and shown.upper() not in ("CON", "CON.TXT")
    if name.startswith("A" * 100):
        assert shown.endswith(".pdf")
    got = download(client, headers, response.get_json()["case_ref"], att["id"])
    assert got.status_code == 200 and got.data == b"content of the file"
    assert "\r" not in got.headers["Content-Disposition"]
    assert "\n" not in got.headers["Content-Disposition"]
    # Nothing new on disk but the database's own files.
    new = {p.name for p in set(files_under(tmp_path)) - before}
    assert new <= {"whistle.db", "whistle.db-wal", "whistle.db-shm", "whistle.db-journal"}
    assert list(files_under(spool_dir)) == []


@pytest.mark.parametrize("disposition", [
    b'form-data; name="attachment"; filename="evil\r\nX-Injected: yes.txt"',
    b"form-data; name=\"attachment\"; filename*=UTF-8''evil%0D%0AX-Injected%3A%20yes.txt",
    b"form-data; name=\"attachment\"; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd%00.txt",
    b'form-data; name="attachment"; filename="\xff\xfe\xc0\xaf.txt"',
    b'form-data; name="attachment"; filename=',
], ids=["raw-crlf", "encoded-crlf", "encoded-traversal-nul", "bad-utf8", "empty"])
def test_hostile_name_encodings_never_cause_a_server_error(
        client: FlaskClient, headers: dict[str, str], disposition: bytes) -> None:
    body, ctype = multipart({"concern": concern_json()},
                            [("attachment", "x", b"some content")], {0: disposition})
    response = client.post("/api/v1/concerns", data=body, content_type=ctype)
    assert response.status_code < 500, response.get_data(as_text=True)
    # Never a silent success without the file.
    assert response.status_code == 400 or response.get_json()["attachment_notes"]
    if response.status_code == 201:
        for att in case(client, headers, response.get_json()["case_ref"])["attachments"]:
            assert not re.search(r"[\x00-\x1f/\\]", att["filename"])
            got = download(client, headers, response.get_json()["case_ref"], att["id"])
            assert got.status_code == 200
            assert "X-Injected" not in got.headers


# -- limits --------------------------------------------------------------------------


SMALL = {"MAX_ATTACHMENTS": 3, "MAX_ATTACHMENT_BYTES": 200_000,
         "MAX_ATTACHMENTS_TOTAL": 300_000, "MAX_CONTENT_LENGTH": 1_000_000}


@pytest.mark.parametrize("app_config", [SMALL], indirect=True)
@pytest.mark.parametrize("files", [
    [("attachment", f"f{i}.bin", b"x") for i in range(4)],
    [("attachment", "big.bin", os.urandom(200_001))],
    [("attachment", f"f{i}.bin", os.urandom(150_001)) for i in range(2)],
    [("attachment", "huge.bin", os.urandom(1_100_000))],
], ids=["too-many-files", "file-too-big", "total-too-big", "request-too-big"])
def test_over_limit_uploads_get_413_and_store_nothing(
        app: Flask, client: FlaskClient, two: list[dict[str, str]],
        files: list[FilePart]) -> None:
    response = post_concern(client, files)
    assert response.status_code == 413, response.get_data(as_text=True)
    assert response.get_json()["error"] == "too_large"
    for model in (Concern, Attachment, AttachmentChunk, OutboxMail):
        assert count(app, model) == 0


@pytest.mark.parametrize("app_config", [SMALL], indirect=True)
def test_the_report_form_refuses_over_limit_files_with_413(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    body, ctype = multipart({"csrf_token": csrf(client, "/report"), "category": "conduct",
                             "details": "too big"},
                            [("attachment", "big.bin", os.urandom(200_001))])
    response = client.post("/report", data=body, content_type=ctype)
    assert response.status_code == 413
    assert count(app, Concern) == 0 and count(app, AttachmentChunk) == 0


@pytest.mark.parametrize("app_config", [SMALL], indirect=True)
def test_exactly_at_the_limits_is_accepted(client: FlaskClient,
                                           headers: dict[str, str]) -> None:
    files: list[FilePart] = [("attachment", "a.bin", os.urandom(200_000)),
                             ("attachment", "b.bin", os.urandom(100_000)),
                             ("attachment", "c.bin", b"")]
    receipt = submit_with_files(client, files)
    assert len(case(client, headers, receipt["case_ref"])["attachments"]) == 3


# -- memory ----------------------------------------------------------------------------


def test_upload_and_download_memory_stays_far_below_the_file_size(
        client: FlaskClient, headers: dict[str, str], spool_dir: Path) -> None:
    size = 16 * 1024 * 1024
    content = os.urandom(size)
    body, ctype = multipart({"concern": concern_json(clean_metadata=False)},
                            [("attachment", "big.bin", content)])
    tracemalloc.start()
    try:
        response = client.post("/api/v1/concerns", input_stream=io.BytesIO(body),
                               content_type=ctype, headers={"Content-Length": str(len(body))})
        _, upload_peak = tracemalloc.get_traced_memory()
        assert response.status_code == 201
        ref = response.get_json()["case_ref"]
        att_id = case(client, headers, ref)["attachments"][0]["id"]
        tracemalloc.reset_peak()
        got = client.get(f"/api/v1/cases/{ref}/attachments/{att_id}", headers=headers,
                         buffered=False)
        received = 0
        for piece in got.response:
            assert content[received:received + len(piece)] == piece
            received += len(piece)
        got.close()
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert upload_peak < size // 4, upload_peak
    assert download_peak < size // 4, download_peak


# -- later attachments ------------------------------------------------------------------


def test_a_reporter_adds_files_later_from_the_status_api(
        app: Flask, client: FlaskClient, two: list[dict[str, str]],
        headers: dict[str, str]) -> None:
    receipt = submit_concern(client)
    with db.new_session(app) as s:  # the submission's mail went out
        s.execute(update(OutboxMail).values(sent=utcnow()))
        s.commit()
    content = os.urandom(CHUNK + 5)
    body, ctype = multipart({"token": receipt["token"]},
                            [("attachment", "later.bin", content),
                             ("attachment", "photo.jpg", jpeg_with_gps("S3"))])
    response = client.post("/api/v1/status/attachments", data=body, content_type=ctype)
    assert response.status_code == 201, response.get_data(as_text=True)
    notes = response.get_json()["attachment_notes"]
    assert notes[1] == "photo.jpg: hidden information removed"
    data = case(client, headers, receipt["case_ref"])
    by_name = {a["filename"]: a for a in data["attachments"]}
    assert by_name["later.bin"]["added_later"] is True
    assert download(client, headers, receipt["case_ref"], by_name["later.bin"]["id"]).data \
        == content
    assert [e["type"] for e in data["events"]].count("attachment_added") == 2
    with db.new_session(app) as s:
        recipients = set(s.scalars(select(OutboxMail.recipient).where(OutboxMail.sent.is_(None))))
    assert {two[0]["email"], two[1]["email"]} <= recipients
    timeline = client.post("/api/v1/status", json={"token": receipt["token"]}).get_json()
    assert "attachment_added" in [e["type"] for e in timeline["events"]]


def test_later_files_count_against_the_concerns_limits(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    app.extensions["whistle_settings"] = settings_of(app).replace(max_attachments=2)
    receipt = submit_with_files(client, [("attachment", "a.bin", b"a"),
                                         ("attachment", "b.bin", b"b")])
    body, ctype = multipart({"token": receipt["token"]}, [("attachment", "c.bin", b"c")])
    response = client.post("/api/v1/status/attachments", data=body, content_type=ctype)
    assert response.status_code == 413
    assert count(app, Attachment) == 2


def test_later_files_need_a_valid_token(app: Flask, client: FlaskClient,
                                        two: list[dict[str, str]]) -> None:
    submit_concern(client)
    body, ctype = multipart({"token": "abandon " * 11 + "about"},
                            [("attachment", "c.bin", b"c")])
    assert client.post("/api/v1/status/attachments", data=body,
                       content_type=ctype).status_code == 404
    assert count(app, Attachment) == 0


@pytest.mark.parametrize("app_config", [{"ALLOW_LATER_ATTACHMENTS": False}], indirect=True)
def test_later_files_can_be_turned_off(app: Flask, client: FlaskClient,
                                       two: list[dict[str, str]]) -> None:
    receipt = submit_concern(client)
    body, ctype = multipart({"token": receipt["token"]}, [("attachment", "c.bin", b"c")])
    response = client.post("/api/v1/status/attachments", data=body, content_type=ctype)
    assert response.status_code == 403
    assert count(app, Attachment) == 0
    page = client.post("/status", data={"csrf_token": csrf(client, "/status"),
                                        "token": receipt["token"]})
    assert 'type="file"' not in page.get_data(as_text=True)


def test_a_reporter_adds_files_later_from_the_status_page(
        app: Flask, client: FlaskClient, two: list[dict[str, str]],
        headers: dict[str, str]) -> None:
    receipt = submit_concern(client)
    token = csrf(client, "/status")
    page = client.post("/status", data={"csrf_token": token, "token": receipt["token"]})
    assert 'type="file" id="attachment"' in page.get_data(as_text=True)
    body, ctype = multipart({"csrf_token": token, "token": receipt["token"],
                             "action": "attach"},
                            [("attachment", "later.txt", b"more evidence")])
    page = client.post("/status", data=body, content_type=ctype)
    assert page.status_code == 200, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    assert "Your files were added." in html and "later.txt</bdi>: kept exactly as sent" in html
    att = case(client, headers, receipt["case_ref"])["attachments"][0]
    assert att["filename"] == "later.txt" and att["added_later"] is True
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.type == "attachment_added")) == 1


def test_the_concern_part_may_also_be_sent_as_a_file_part(app: Flask,
                                                          client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    body = {
        "concern": (io.BytesIO(concern_json(details="sent as a file part").encode()),
                    "concern.json", "application/json"),
        "attachment": (io.BytesIO(b"evidence bytes"), "notes.txt", "text/plain"),
    }
    response = client.post("/api/v1/concerns", data=body, content_type="multipart/form-data")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert count(app, Attachment) == 1
    missing = client.post("/api/v1/concerns", content_type="multipart/form-data",
                          data={"attachment": (io.BytesIO(b"x"), "a.txt", "text/plain")})
    assert missing.status_code == 400 and missing.get_json()["field"] == "concern"
