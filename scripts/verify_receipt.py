#!/usr/bin/env python3
"""Check a Whistle receipt offline, both halves of its signature, without Whistle.

Needs only Python 3 and a ``cryptography`` release with ML-DSA (Whistle pins 48.0.0); it imports
nothing from Whistle, so anyone (a tribunal, a lawyer, an agency) can run it with the
receipt and the instance's published keys:

    curl -s https://whistle.example.org/api/v1/receipts/keys > keys.json
    python3 verify_receipt.py receipt.txt keys.json [details.txt]

Exit 0: Whistle's published key (the one the ``Key:`` line names) signed exactly these lines,
both the Ed25519 and the ML-DSA-65 halves verify, and (with ``details.txt``) the text matches
the ``Details:`` line. Exit 1 otherwise, with the reason. The format is in
docs/identity-and-receipts.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

SIGNED_PREFIX = b"whistle:1:sign:"
MLDSA_CONTEXT = b"whistle:1"


def check(receipt: str, keys: dict, details: str | None = None) -> str | None:
    """None when the receipt is valid (and matches ``details``), else why not."""
    lines = receipt.strip().replace("\r\n", "\n").split("\n")
    if "Signature:" not in lines or not lines[1].startswith("Format:"):
        return "this is not a Whistle receipt"
    at = lines.index("Signature:")
    body = "".join(line + "\n" for line in lines[1:at])
    fields = dict(line.split(": ", 1) for line in lines[1:at] if ": " in line)
    signature = base64.b64decode("".join(lines[at + 1:-1]), validate=True)
    named = fields.get("Key", "")
    public = next((base64.b64decode(k["public_key"]) for k in keys["keys"]
                   if hashlib.sha256(base64.b64decode(k["public_key"])).hexdigest() == named),
                  None)
    if public is None:
        return "the Key line names no published key"
    if len(signature) != 1 + 64 + 3309 or signature[:1] != b"\x01" or public[:1] != b"\x01":
        return "the signature has the wrong shape"
    signed = SIGNED_PREFIX + body.encode("utf-8")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public[1:33]).verify(signature[1:65], signed)
    except InvalidSignature:
        return "the Ed25519 half does not verify"
    try:
        mldsa.MLDSA65PublicKey.from_public_bytes(public[33:]).verify(
            signature[65:], signed, MLDSA_CONTEXT)
    except InvalidSignature:
        return "the ML-DSA-65 half does not verify"
    if details is not None:
        salt = bytes.fromhex(fields.get("Salt", ""))
        text = details.replace("\r\n", "\n").replace("\r", "\n")
        digest = "sha256:" + hashlib.sha256(b"whistle:1:receipt-details:" + salt
                                            + text.encode("utf-8")).hexdigest()
        if not hmac.compare_digest(digest, fields.get("Details", "")):
            return "the text does not match the Details line"
    return None


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        receipt = f.read()
    with open(argv[2], encoding="utf-8") as f:
        keys = json.load(f)
    details = None
    if len(argv) == 4:
        with open(argv[3], encoding="utf-8", newline="") as f:
            details = f.read()
    try:
        problem = check(receipt, keys, details)
    except (ValueError, KeyError, IndexError) as exc:
        problem = f"the receipt or the keys could not be read ({exc.__class__.__name__})"
    if problem:
        print(f"NOT VALID: {problem}")
        return 1
    print("VALID: " + ("signed by Whistle and matches the text" if details is not None
                       else "signed by Whistle (both halves)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
