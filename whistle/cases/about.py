"""Whom a concern is about (issue 25): the "about whom" section, its matching key and what
reviewers see of it.

The person's work email address is the matching key. It is normalised (trimmed,
case-folded, Unicode NFC) and never stored in plaintext: ``match_tag`` is an HMAC of it
under the escrow pepper, a file in ``KEYS_DIR`` (``whistle.keys.escrow_pepper``), never in
the database; the address, name and role are sealed with the case key like any other detail
(``concern_about``). Two concerns with the same tag are *linked*: each reviewer sees the
references of the linked cases they can read themselves, and that the case matched.
Holding a concern until a match is whistle.cases.escrow.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, aliased

from whistle import crypto, validation
from whistle import keys as instancekeys
from whistle.cases import keys as casekeys
from whistle.config import Settings
from whistle.errors import InvalidInput
from whistle.store.models import Assignment, ConcernAbout, Exclusion

MAX_EMAIL_CHARS = 254
# One "@", something before it, a dotted domain after it, no spaces: enough to catch a
# typo, not a mail-server validation (the address is never written to).
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


@dataclass(frozen=True)
class About:
    """The person a concern is about; ``email`` already normalised."""

    email: str
    name: str | None = None
    role: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"email": self.email, "name": self.name, "role": self.role}


def normalise_email(value: str) -> str:
    """Trimmed, case-folded, NFC: ``Pat.Smith@EXAMPLE.org `` and ``pat.smith@example.org``
    are one key."""
    return unicodedata.normalize("NFC", value.strip().casefold())


def parse(data: dict[str, Any], max_line: int) -> tuple[About | None, bool]:
    """The ``about`` object and the ``escrow`` choice of a submission; 400 naming the field
    for anything else (``escrow`` needs ``about.email``)."""
    escrow = validation.boolean(data.get("escrow"), "escrow")
    raw = data.get("about")
    if raw is None or raw == {}:
        if escrow:
            raise InvalidInput("escrow needs the email address of the person the concern is "
                               "about", "escrow")
        return None, False
    if not isinstance(raw, dict) or set(raw) - {"email", "name", "role"}:
        raise InvalidInput("about must be an object with email, name, role", "about")
    email = validation.line(raw.get("email"), "about.email", MAX_EMAIL_CHARS)
    name = validation.line(raw.get("name"), "about.name", max_line)
    role = validation.line(raw.get("role"), "about.role", max_line)
    if email is None:
        if escrow or name or role:
            raise InvalidInput("the email address of the person the concern is about is "
                               "needed", "about.email")
        return None, False
    email = normalise_email(email)
    if not _EMAIL.fullmatch(email):
        raise InvalidInput("about.email is not an email address", "about.email")
    return About(email, name, role), escrow


def _pepper(settings: Settings) -> bytes:
    return instancekeys.escrow_pepper(settings.keys_dir)


def match_tag(settings: Settings, email: str) -> bytes:
    """The keyed hash two concerns about the same person share (never the address)."""
    return crypto.keyed_hash(_pepper(settings), "escrow-match", email.encode())


def match_key(settings: Settings, email: str) -> bytes:
    """The key held concerns about this address are sealed under: only someone who knows
    the address and holds the pepper can derive it (HKDF over a keyed hash of both)."""
    return crypto.derive_key(crypto.keyed_hash(_pepper(settings), "escrow-key", email.encode()),
                             "escrow-held")


def store(session: Session, settings: Settings, case_ref: str, case_key: bytes,
          about: About) -> bytes:
    """Record whom a new case is about (caller's transaction); returns its tag."""
    tag = match_tag(settings, about.email)
    blob = crypto.seal(case_key, json.dumps(about.as_dict()).encode(),
                       casekeys.part(case_ref, "about"))
    session.execute(insert(ConcernAbout), [{"concern_id": case_ref, "match_tag": tag,
                                            "about_ct": blob}])
    return tag


def case_view(session: Session, reviewer_id: str, case_ref: str, case_key: bytes,
              present: bool = True, index_pepper: bytes | None = None) -> dict[str, Any]:
    """``about``, ``matched`` and ``linked`` of a reviewer's case view. ``linked``: the other
    cases about the same person that this reviewer can read themselves (assigned).
    ``matched`` counts only the linked cases this reviewer is not excluded from (with
    ``index_pepper``): to an excluded reviewer another concern does not exist (DESIGN
    promise 3). ``present=False``: the caller knows the concern names no one."""
    row = session.get(ConcernAbout, case_ref) if present else None
    if row is None:
        return {"about": None, "matched": False, "linked": []}
    about = json.loads(crypto.open_sealed(case_key, row.about_ct,
                                          casekeys.part(case_ref, "about")))
    other = aliased(ConcernAbout)
    others = list(session.scalars(select(other.concern_id).where(
        other.match_tag == row.match_tag, other.concern_id != case_ref)))
    if others and index_pepper is not None:
        tags = {casekeys.exclusion_tag(index_pepper, ref, reviewer_id): ref for ref in others}
        hidden = {tags[t] for t in session.scalars(select(Exclusion.tag).where(
            Exclusion.tag.in_(list(tags))))}
        others = [ref for ref in others if ref not in hidden]
    readable = sorted(session.scalars(select(Assignment.concern_id).where(
        Assignment.concern_id.in_(others), Assignment.reviewer_id == reviewer_id))
        ) if others else []
    return {"about": about, "matched": bool(others), "linked": readable}
