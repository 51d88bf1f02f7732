"""The referral package (issue 23): the chosen parts of a case, a manifest and signed
provenance, in one tar archive encrypted to the agency's age key.

Layout of the archive (POSIX pax, for names in any script and of any length; every
member 0600, times the approval's)::

    manifest.json        what is inside: case, agency, purpose, who proposed and approved,
                         the receipt data (case reference, day received, category, SHA-256
                         of the details as received), and per file its path, size and SHA-256
    provenance.json      the instance signing key's signature over ``SIGNED_LABEL`` + the
                         exact bytes of manifest.json (so over everything listed there)
    receipt.txt          the signed receipt the reporter was given, as it was given: the
                         agency checks it as anyone can (``/verify``, scripts/verify_receipt.py),
                         and details.txt against its ``Details`` line
    details.txt          the reporter's text            (part "details")
    messages.json        the conversation with the reporter (part "messages")
    notes.json           the reviewers' internal notes   (part "notes")
    attachments/NN-name  each chosen file                (part "attachments:<id>")

The signature is Whistle's hybrid one (whistle.crypto.sign: 0x01 | Ed25519 | ML-DSA-65,
both over ``b"whistle:1:sign:" + message``); the public key is ``signing_key`` of
``GET /api/v1/roster``. ``verify`` checks a package's provenance. The identity is never
put in here by this module.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from whistle import crypto

FORMAT = "whistle-referral/1"
SIGNED_LABEL = b"whistle:1:referral-manifest:"


@dataclass
class Contents:
    """What goes into a package, decrypted, with the facts the manifest states."""

    case: dict[str, Any]  # case_ref, category, received (day), status
    agency: dict[str, Any]  # id, name, age_recipient
    referral: dict[str, Any]  # id, purpose, parts, proposed_by, approved_by, approved_at
    receipt: dict[str, Any]  # case_ref, received, category, details_sha256
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (path, bytes)


def safe_name(index: int, name: str) -> str:
    """An archive member name for an attachment: no directories, no leading dots."""
    cleaned = "".join(c if c.isalnum() or c in "-_. " else "_" for c in name).strip(" .")
    return f"attachments/{index:02d}-{cleaned[:100] or 'file'}"


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False).encode()


def manifest_bytes(contents: Contents) -> bytes:
    return _json({
        "format": FORMAT, "case": contents.case, "agency": contents.agency,
        "referral": contents.referral, "receipt": contents.receipt, "identity_included": any(
            p == "identity" for p in contents.referral.get("parts", [])),
        "files": [{"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for path, data in contents.files],
    })


def _add(tar: tarfile.TarFile, path: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(path)
    info.size, info.mtime, info.mode = len(data), mtime, 0o600
    tar.addfile(info, io.BytesIO(data))


def build(contents: Contents, signing_key: bytes, signing_public: bytes,
          when: dt.datetime) -> bytes:
    """The archive's bytes (not yet encrypted)."""
    manifest = manifest_bytes(contents)
    provenance = _json({
        "format": FORMAT, "receipt": contents.receipt,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "signed": "whistle:1:referral-manifest: + manifest.json",
        "signature": base64.b64encode(crypto.sign(signing_key, SIGNED_LABEL + manifest)).decode(),
        "signing_key": base64.b64encode(signing_public).decode(),
        "signing_key_fingerprint": crypto.digest(signing_public).hex(),
    })
    out = io.BytesIO()
    mtime = when.replace(tzinfo=dt.timezone.utc).timestamp()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "manifest.json", manifest, mtime)
        _add(tar, "provenance.json", provenance, mtime)
        for path, data in contents.files:
            _add(tar, path, data, mtime)
    return out.getvalue()


def members(archive: bytes) -> dict[str, bytes]:
    """An archive's files by path (for checks and tests)."""
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        for info in tar.getmembers():
            handle = tar.extractfile(info)
            if handle is not None:
                found[info.name] = handle.read()
    return found


def verify(files: dict[str, bytes], signing_public: bytes | None = None) -> bool:
    """Whether a package's provenance holds: the signature over its manifest verifies (with
    ``signing_public``, or the key the package names) and every file matches its hash."""
    try:
        manifest = files["manifest.json"]
        provenance = json.loads(files["provenance.json"])
        key = signing_public or base64.b64decode(provenance["signing_key"])
        signature = base64.b64decode(provenance["signature"])
        listed: Iterable[dict[str, Any]] = json.loads(manifest)["files"]
    except (KeyError, ValueError, TypeError):
        return False
    if not crypto.verify_signature(key, SIGNED_LABEL + manifest, signature):
        return False
    return all(hashlib.sha256(files.get(f["path"], b"\x00missing")).hexdigest() == f["sha256"]
               for f in listed)
