"""Signed receipts: proof that a concern was received, when, and what it said (issue 22).

A receipt is a small text file, given with the token and fetched again with it::

    -----BEGIN WHISTLE RECEIPT-----
    Format: whistle-receipt 1
    Note: Whistle received this concern. This receipt holds no token and none of its text.
    Case: WH-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX
    Received: 2026-12-05
    Salt: <32 hex digits: 16 random bytes>
    Details: sha256:<SHA-256(b"whistle:1:receipt-details:" | salt | details as UTF-8)>
    Attachments: <n>
    Attachment: sha256:<SHA-256(b"whistle:1:receipt-file:" | salt | the file's SHA-256)>
    ... (one line per file, in the order sent)
    Key: <the signing key's id: lowercase hex SHA-256 of its public key>
    Signature:
    <base64 of the hybrid signature, in lines of 76>
    -----END WHISTLE RECEIPT-----

The signed message is the lines from ``Format:`` to ``Key:``, each ending in ``\\n``,
signed with the instance signing key (``whistle.crypto.sign``: Ed25519 and ML-DSA-65 over
``b"whistle:1:sign:" + message``). Received is a day, never a time (reporter-side time is
kept to the day). A receipt names no token and holds none of the concern's text: only salted
digests, the salt being random and kept in the receipt alone.

Verification is the receipt's own arithmetic and the published public keys (current and
past, ``published_keys``); it reads no database, so it keeps working after the case is
closed or deleted and says nothing about any other case.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from whistle import crypto
from whistle.errors import InvalidInput
from whistle.store.models import CaseReceipt

FORMAT = "whistle-receipt 1"
BEGIN, END = "-----BEGIN WHISTLE RECEIPT-----", "-----END WHISTLE RECEIPT-----"
NOTE = "Whistle received this concern. This receipt holds no token and none of its text."
MAX_CHARS = 64 * 1024
# Past signing public keys (hex, one a line; ``#`` comments) published beside the current
# one, so that receipts signed before a key rotation still verify.
PAST_KEYS_FILE = "signing_public_past"
_CASE = re.compile(r"WH-[0-9A-Z]{4}(?:-[0-9A-Z]{4}){6}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def key_id(public: bytes) -> str:
    return crypto.digest(bytes(public)).hex()


def details_digest(salt: bytes, details: str) -> str:
    return "sha256:" + hashlib.sha256(b"whistle:1:receipt-details:" + salt
                                      + details.encode("utf-8")).hexdigest()


def file_digest(salt: bytes, file_sha256: bytes) -> str:
    return "sha256:" + hashlib.sha256(b"whistle:1:receipt-file:" + salt
                                      + file_sha256).hexdigest()


def stream_sha256(stream: IO[bytes]) -> bytes:
    """SHA-256 of an upload's stream as it will be stored, leaving it at the start."""
    digest = hashlib.sha256()
    stream.seek(0)
    for chunk in iter(lambda: stream.read(1 << 16), b""):
        digest.update(chunk)
    stream.seek(0)
    return digest.digest()


def _body(case_ref: str, received: dt.date, salt: bytes, details: str, files: list[str],
          signer: str) -> str:
    lines = [f"Format: {FORMAT}", f"Note: {NOTE}", f"Case: {case_ref}",
             f"Received: {received.isoformat()}", f"Salt: {salt.hex()}",
             f"Details: {details}", f"Attachments: {len(files)}",
             *[f"Attachment: {f}" for f in files], f"Key: {signer}"]
    return "".join(line + "\n" for line in lines)


def issue(signing_key: bytes, case_ref: str, received: dt.date, details: str,
          file_hashes: list[bytes]) -> str:
    """A signed receipt for a concern (``file_hashes``: each attachment's SHA-256)."""
    salt = os.urandom(16)
    body = _body(case_ref, received, salt, details_digest(salt, details),
                 [file_digest(salt, h) for h in file_hashes],
                 key_id(crypto.signing_public_key(signing_key)))
    signature = base64.b64encode(crypto.sign(signing_key, body.encode())).decode()
    wrapped = "\n".join(signature[i:i + 76] for i in range(0, len(signature), 76))
    return f"{BEGIN}\n{body}Signature:\n{wrapped}\n{END}\n"


# -- verifying -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    valid: bool
    case_ref: str | None
    received: str | None
    content_matches: bool | None


def published_keys(keys_dir: str, current: bytes) -> list[bytes]:
    """The signing public keys receipts may be signed with: the current one first, then the
    past ones in ``keys/signing_public_past`` (unreadable lines are skipped)."""
    found = [bytes(current)]
    path = Path(keys_dir) / PAST_KEYS_FILE
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                value = bytes.fromhex(line)
            except ValueError:
                continue
            if len(value) == crypto.SIGNING_PUBLIC_SIZE and value not in found:
                found.append(value)
    return found


def _fields(lines: list[str]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in lines:
        name, sep, value = line.partition(": ")
        if sep and name.isalpha():
            fields.setdefault(name, []).append(value)
    return fields


def _parse(text: Any) -> tuple[list[str], dict[str, list[str]]]:
    """The receipt's lines and fields; InvalidInput (400) when it is not a receipt at all."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("receipt must be the receipt's text", "receipt", "malformed_receipt")
    if len(text) > MAX_CHARS or "\x00" in text:
        raise InvalidInput("this is not a Whistle receipt", "receipt", "malformed_receipt")
    lines = text.replace("\r\n", "\n").strip().split("\n")
    fields = _fields(lines)
    if not {"Format", "Case", "Signature"} & set(fields) and BEGIN not in lines:
        raise InvalidInput("this is not a Whistle receipt", "receipt", "malformed_receipt")
    return lines, fields


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name, [])
    return values[0] if len(values) == 1 else None


def verify(text: Any, keys: list[bytes], details: Any = None) -> Checked:
    """Check a receipt against the published keys; ``details``, if given, against its
    digest. Anything that looks like a receipt gets an answer (``valid`` False for a forged,
    edited or damaged one); InvalidInput only for what is no receipt at all."""
    lines, fields = _parse(text)
    if details is not None and not isinstance(details, str):
        raise InvalidInput("details must be text", "details")
    case_ref, received = _one(fields, "Case"), _one(fields, "Received")
    shown_ref = case_ref if case_ref and _CASE.fullmatch(case_ref) else None
    shown_day = received if received and re.fullmatch(r"\d{4}-\d{2}-\d{2}", received) else None
    valid = _signed_and_whole(lines, fields, keys)
    matches = None
    salt_hex, digest = _one(fields, "Salt"), _one(fields, "Details")
    if details is not None and salt_hex and digest and re.fullmatch(r"[0-9a-f]{32}", salt_hex):
        text_in = details.replace("\r\n", "\n").replace("\r", "\n")
        matches = hmac.compare_digest(details_digest(bytes.fromhex(salt_hex), text_in), digest)
    return Checked(valid, shown_ref, shown_day, matches)


def _signed_and_whole(lines: list[str], fields: dict[str, list[str]], keys: list[bytes]
                      ) -> bool:
    """The receipt is exactly what ``issue`` writes, and its signature verifies under the
    published key it names."""
    try:
        salt = bytes.fromhex(_one(fields, "Salt") or "")
        received = dt.date.fromisoformat(_one(fields, "Received") or "")
        count = int(_one(fields, "Attachments") or "")
    except ValueError:
        return False
    case_ref, details, signer = (_one(fields, "Case"), _one(fields, "Details"),
                                 _one(fields, "Key"))
    files = fields.get("Attachment", [])
    if (case_ref is None or details is None or signer is None or len(salt) != 16
            or not _CASE.fullmatch(case_ref) or not _DIGEST.fullmatch(details)
            or count != len(files) or not all(_DIGEST.fullmatch(f) for f in files)):
        return False
    body = _body(case_ref, received, salt, details, files, signer)
    try:
        cut = lines.index("Signature:")
        encoded = "".join(lines[cut + 1:-1])
        signature = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        return False
    wrapped = [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
    if lines[cut + 1:-1] != wrapped or base64.b64encode(signature).decode() != encoded:
        return False  # only the one encoding issue writes (no spare padding bits, no re-wrap)
    if lines[0] != BEGIN or lines[-1] != END or "\n".join(lines[1:cut]) + "\n" != body:
        return False
    public = next((k for k in keys if hmac.compare_digest(key_id(k), signer)), None)
    return public is not None and crypto.verify_signature(public, body.encode(), signature)


# -- the reporter's copy -------------------------------------------------------------------
# Sealed under a key derived from ``keys/reporter_pepper``, not the thread key: the status
# check (a hot path) then needs no key unwrapped to give it back. A database thief alone
# cannot read it (and so cannot test a guessed document against its digests).


def storage_key(reporter_pepper: bytes) -> bytes:
    return crypto.derive_key(reporter_pepper, "receipt")


def _part(case_ref: str) -> str:
    return f"case:{case_ref}:receipt"


def stored(case_ref: str, key: bytes, receipt: str) -> CaseReceipt:
    """The row that keeps the receipt for the token (``key``: ``storage_key``)."""
    return CaseReceipt(concern_id=case_ref,
                       receipt_ct=crypto.seal(key, receipt.encode(), _part(case_ref)))


def opened(case_ref: str, key: bytes, receipt_ct: bytes) -> str:
    return crypto.open_sealed(key, bytes(receipt_ct), _part(case_ref)).decode()


def for_case(session: Session, case_ref: str, key: bytes) -> str | None:
    """The case's receipt (None for cases from before receipts)."""
    row = session.get(CaseReceipt, case_ref)
    return None if row is None else opened(case_ref, key, row.receipt_ct)
