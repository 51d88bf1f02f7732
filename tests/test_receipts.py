"""Signed receipts (issue 22): proof of what was sent and when, that anyone can check.

The receipt verifies; a changed byte anywhere fails; details that differ by one character do
not match; it holds no token and no content marker; a receipt signed with another key, or
edited to name another case, is not valid, and the check says nothing about other cases.
It verifies after a key rotation (past keys stay published), from the command line
(exit 0 only when valid), and offline with openssl and the published Ed25519 key.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import shutil
import subprocess  # nosec B404 - runs openssl and the offline script on files the test wrote
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import make_reviewer, submit_concern
from tests.support.webflow import encodings, marker, post_form, reporter_status
from whistle import crypto
from whistle.cases import receipts
from whistle.errors import InvalidInput

DETAILS = "The fire doors on ward 4 are chained shut at night.\nIt happened again."


@pytest.fixture
def sent(app: Flask, client: FlaskClient) -> dict[str, Any]:
    make_reviewer(app), make_reviewer(app)
    return submit_concern(client, details=DETAILS)


def check(client: FlaskClient, receipt: Any, details: Any = None) -> Any:
    body = {"receipt": receipt} | ({"details": details} if details is not None else {})
    return client.post("/api/v1/receipts/verify", json=body)


def published(app: Flask) -> list[bytes]:
    keys = app.extensions["whistle_keys"]
    return receipts.published_keys(app.config["KEYS_DIR"], keys.signing_public)


def test_the_receipt_verifies_and_matches_exactly_what_was_sent(
        client: FlaskClient, sent: dict[str, Any]) -> None:
    text = sent["receipt"]
    ok = check(client, text, DETAILS)
    assert ok.status_code == 200
    assert ok.get_json() == {"valid": True, "case_ref": sent["case_ref"],
                             "received": dt.date.today().isoformat(), "content_matches": True}
    assert check(client, text).get_json()["content_matches"] is None
    for changed in (DETAILS[:-1] + "?", DETAILS + " ", DETAILS.replace("4", "5"), ""):
        answer = check(client, text, changed).get_json()
        assert answer["valid"] is True and answer["content_matches"] is False
    assert check(client, text.replace("\n", "\r\n"), DETAILS.replace("\n", "\r\n")
                 ).get_json()["content_matches"] is True  # pasted through Windows
    assert reporter_status(client, sent["token"])["receipt"] == text  # fetched again


def test_a_changed_byte_anywhere_fails(app: Flask, sent: dict[str, Any]) -> None:
    text, keys = sent["receipt"], published(app)
    assert receipts.verify(text, keys).valid
    failed = 0
    for i, ch in enumerate(text):
        if ch == "\n" and i == len(text) - 1:
            continue  # the final newline: a file saved without it is the same receipt
        swapped = "A" if ch != "A" else "B"
        edited = text[:i] + swapped + text[i + 1:]
        try:
            assert not receipts.verify(edited, keys).valid, (i, ch)
        except InvalidInput:
            pass
        failed += 1
    assert failed == len(text) - 1


def test_it_holds_no_token_and_no_content(client: FlaskClient, app: Flask) -> None:
    make_reviewer(app), make_reviewer(app)
    secret, name = marker("DETAILS"), marker("NAME")
    made = submit_concern(client, details=f"About {secret} today",
                          identity={"name": name})
    text = made["receipt"].encode()
    for value in (secret, name, made["token"], "".join(made["token"].split())):
        for form in encodings(value):
            assert form not in text, value
    # Each token word alone is short, and BIP-39 words are also English words of the fixed
    # text ("hold" in the note, "begin", "case", "salt", "key") or runs of hex letters
    # ("bad", "add"): look for each as a whole value among the fields' values.
    lines = made["receipt"].replace(receipts.NOTE, "").split("Signature:")[0].split("\n")
    values = {item.lower() for line in lines if ": " in line
              for item in line.split(": ", 1)[1].split()}
    assert values and not values & set(made["token"].lower().split()), made["token"]
    assert "\nReceived: " + dt.date.today().isoformat() + "\n" in made["receipt"]
    assert ":" not in made["receipt"].split("Received: ")[1].split("\n")[0]  # a day, no time


def test_forged_or_edited_receipts_are_not_valid_and_tell_nothing_of_other_cases(
        app: Flask, client: FlaskClient, sent: dict[str, Any]) -> None:
    other = submit_concern(client, details="another concern")
    text = sent["receipt"]
    # A receipt signed with a key the instance never published.
    forged = receipts.issue(crypto.generate_signing_key(), sent["case_ref"],
                            dt.date.today(), DETAILS, [])
    assert check(client, forged, DETAILS).get_json()["valid"] is False
    # The same receipt edited to name another case, or another day.
    moved = text.replace(sent["case_ref"], other["case_ref"])
    answer = check(client, moved).get_json()
    assert answer["valid"] is False and answer["case_ref"] == other["case_ref"]
    earlier = text.replace("Received: " + dt.date.today().isoformat(), "Received: 2020-01-01")
    assert earlier != text
    assert check(client, earlier).get_json()["valid"] is False
    # A made-up case reference gets the same kind of answer as a real one: no lookup.
    unknown = text.replace(sent["case_ref"], "WH-0000-0000-0000-0000-0000-0000-0000")
    assert check(client, unknown).get_json().keys() == answer.keys()
    assert check(client, unknown).get_json()["valid"] is False
    for malformed in ("", "not a receipt", 12, None, ["x"], "x" * 70000):
        refused = check(client, malformed)
        assert refused.status_code == 400, malformed
        assert refused.get_json()["error"] in ("malformed_receipt", "invalid_input")
    assert check(client, text, 5).status_code == 400


def test_past_keys_stay_published_so_old_receipts_still_verify(
        app: Flask, client: FlaskClient, sent: dict[str, Any]) -> None:
    old_key = crypto.generate_signing_key()
    old = receipts.issue(old_key, sent["case_ref"], dt.date(2025, 1, 2), DETAILS, [])
    assert check(client, old).get_json()["valid"] is False
    past = Path(app.config["KEYS_DIR"]) / receipts.PAST_KEYS_FILE
    past.write_text("# retired 2026-01-01\n" + crypto.signing_public_key(old_key).hex() + "\n")
    assert check(client, old, DETAILS).get_json() == {
        "valid": True, "case_ref": sent["case_ref"], "received": "2025-01-02",
        "content_matches": True}
    listed = client.get("/api/v1/receipts/keys").get_json()["keys"]
    ids = [k["id"] for k in listed]
    assert ids[0] in sent["receipt"] and listed[0]["current"] is True
    assert receipts.key_id(crypto.signing_public_key(old_key)) in ids


def test_the_command_line_exits_zero_only_for_a_valid_receipt(
        app: Flask, sent: dict[str, Any], tmp_path: Path) -> None:
    good, bad, details = tmp_path / "good.txt", tmp_path / "bad.txt", tmp_path / "d.txt"
    good.write_text(sent["receipt"])
    bad.write_text(sent["receipt"].replace("Attachments: 0", "Attachments: 1"))
    details.write_text(DETAILS)
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["receipt", "verify", str(good), "--details-file", str(details)])
    assert ok.exit_code == 0 and "details match" in ok.output, ok.output
    assert runner.invoke(args=["receipt", "verify", str(bad)]).exit_code == 1
    details.write_text(DETAILS + "!")
    mismatch = runner.invoke(args=["receipt", "verify", str(good), "--details-file",
                                   str(details)])
    assert mismatch.exit_code == 1
    garbage = tmp_path / "g.txt"
    garbage.write_text("hello")
    assert runner.invoke(args=["receipt", "verify", str(garbage)]).exit_code == 1


def _documented_blocks() -> list[str]:
    """The ``sh`` blocks of docs/identity-and-receipts.md's offline section, as written."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "identity-and-receipts.md").read_text()
    section = doc.split("### Offline, with a standard tool (OpenSSL 3)", 1)[1]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def test_it_verifies_offline_with_openssl(client: FlaskClient, sent: dict[str, Any],
                                          tmp_path: Path) -> None:
    """The documented commands (docs/identity-and-receipts.md), run word for word in a shell:
    the Ed25519 half with ``openssl`` and the published PEM key, and the text's digest with
    ``sha256sum``; nothing from Whistle. An edited line fails the signature."""
    from tests.conftest import need

    for tool in ("openssl", "xxd", "sha256sum", "base64", "dd"):
        if shutil.which(tool) is None:
            need(tool, FileNotFoundError(tool))
    blocks = _documented_blocks()
    verify_block = next(b for b in blocks if "openssl pkeyutl -verify" in b)
    digest_block = next(b for b in blocks if "sha256sum" in b)
    pem = client.get("/api/v1/receipts/keys").get_json()["keys"][0]["ed25519_public_key_pem"]
    (tmp_path / "key.pem").write_text(pem)
    (tmp_path / "details.txt").write_text(DETAILS, newline="")

    def shell(block: str, receipt: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "receipt.txt").write_text(receipt)
        return subprocess.run(  # nosec B603 B607 - bash running the documented commands
            ["bash", "-c", block], cwd=tmp_path, capture_output=True, text=True, check=False)

    done = shell(verify_block, sent["receipt"])
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, done
    edited = shell(verify_block, sent["receipt"].replace("Attachments: 0", "Attachments: 1"))
    assert edited.returncode != 0 and "Verified Successfully" not in edited.stdout
    digest = shell(digest_block, sent["receipt"]).stdout.split()[0]
    assert "Details: sha256:" + digest in sent["receipt"]


def _resigned(text: str, signature: bytes) -> str:
    """The receipt with its signature block replaced (base64 in 76-character lines)."""
    lines = text.rstrip("\n").split("\n")
    at = lines.index("Signature:")
    encoded = base64.b64encode(signature).decode()
    block = [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
    return "\n".join(lines[:at + 1] + block + lines[-1:]) + "\n"


def test_both_halves_verify_offline_with_the_standalone_script(
        client: FlaskClient, sent: dict[str, Any], tmp_path: Path) -> None:
    """``scripts/verify_receipt.py`` (docs/identity-and-receipts.md) checks the Ed25519 and
    the ML-DSA-65 halves with the ``cryptography`` package alone: it is run isolated
    (``-I``, from an empty directory), so nothing of Whistle can be imported. A receipt with
    either half damaged, or one line edited, is refused; so is text one character off."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "verify_receipt.py"
    (tmp_path / "keys.json").write_text(client.get("/api/v1/receipts/keys").get_data(
        as_text=True))
    (tmp_path / "details.txt").write_text(DETAILS, newline="")
    (tmp_path / "other.txt").write_text(DETAILS + ".", newline="")

    def run(receipt: str, *extra: str) -> tuple[int, str]:
        (tmp_path / "receipt.txt").write_text(receipt)
        done = subprocess.run(  # nosec B603 - this interpreter, the project's own script
            [sys.executable, "-I", str(script), "receipt.txt", "keys.json", *extra],
            cwd=tmp_path, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout + done.stderr

    text = sent["receipt"]
    assert run(text) == (0, "VALID: signed by Whistle (both halves)\n")
    assert run(text, "details.txt")[0] == 0
    code, said = run(text, "other.txt")
    assert code == 1 and "does not match" in said
    lines = text.splitlines()
    signature = base64.b64decode("".join(lines[lines.index("Signature:") + 1:-1]))
    for index, half in ((100, "ML-DSA-65"), (10, "Ed25519")):
        damaged = bytearray(signature)
        damaged[index] ^= 1
        code, said = run(_resigned(text, bytes(damaged)))
        assert code == 1 and f"the {half} half does not verify" in said, said
    code, said = run(text.replace("Attachments: 0", "Attachments: 1"))
    assert code == 1 and "Ed25519 half does not verify" in said, said


def test_the_pages_show_and_save_the_receipt_without_javascript(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    page = post_form(client, "/report", {"category": "conduct", "details": DETAILS,
                                         "identity": "anonymous"}, "/report")
    assert page.status_code == 201
    html = page.get_data(as_text=True)
    assert "-----BEGIN WHISTLE RECEIPT-----" in html and "Your receipt" in html
    start = html.index("-----BEGIN WHISTLE RECEIPT-----")
    text = html[start:html.index("-----END WHISTLE RECEIPT-----", start) + 29] + "\n"
    assert receipts.verify(text, published(app)).valid
    token = " ".join(re.findall(r'<span class="w">([a-z]+)</span>', html))
    saved = post_form(client, "/status/receipt", {"token": token}, "/verify")
    assert saved.status_code == 200 and saved.mimetype == "text/plain"
    assert "attachment" in saved.headers["Content-Disposition"]
    assert saved.get_data(as_text=True) == text
    miss = post_form(client, "/status/receipt", {"token": "abandon " * 11 + "about"}, "/verify")
    assert miss.status_code == 404 and "BEGIN WHISTLE RECEIPT" not in miss.get_data(as_text=True)
    status = post_form(client, "/status", {"token": token}, "/status").get_data(as_text=True)
    assert text.strip() in status.replace("&#43;", "+").replace("&#x2B;", "+")
    checked = post_form(client, "/verify", {"receipt": text, "details": DETAILS}, "/verify")
    assert "This receipt is genuine." in checked.get_data(as_text=True)
    assert "The text matches what was sent." in checked.get_data(as_text=True)


def test_each_attachment_line_is_the_salted_digest_of_the_file_as_stored(
        app: Flask, client: FlaskClient) -> None:
    """A reporter who kept a copy of their file can show it is the one they sent: the
    ``Attachment:`` line is SHA-256(label | salt | SHA-256 of the file), in order."""
    import hashlib
    import io
    import json

    make_reviewer(app), make_reviewer(app)
    files = [b"first file " + marker("F1").encode(), b"second file " + marker("F2").encode()]
    sent = client.post("/api/v1/concerns", content_type="multipart/form-data", data={
        "concern": json.dumps({"category": "conduct", "details": DETAILS}),
        "attachment": [(io.BytesIO(files[0]), "one.txt"), (io.BytesIO(files[1]), "two.txt")]})
    assert sent.status_code == 201, sent.get_data(as_text=True)
    text = sent.get_json()["receipt"]
    salt = bytes.fromhex(re.search(r"^Salt: ([0-9a-f]+)$", text, re.M).group(1))  # type: ignore[union-attr]
    lines = re.findall(r"^Attachment: (\S+)$", text, re.M)
    assert "Attachments: 2" in text
    assert lines == [receipts.file_digest(salt, hashlib.sha256(f).digest()) for f in files]
    assert receipts.file_digest(salt, hashlib.sha256(files[0] + b"x").digest()) not in lines
    assert check(client, text, DETAILS).get_json()["valid"] is True
