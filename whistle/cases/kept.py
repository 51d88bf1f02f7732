"""Files kept between "Review before sending" and sending (issue 20), without JavaScript.

A browser cannot carry a chosen file from one page to the next, so the server keeps it:
sealed in 64 KiB chunks (``crypto.seal_chunk``, as attachments and the upload spool) under a
fresh random key that is never stored. The key and an opaque random id go back to the
reporter's form in one hidden field (``<id>.<key hex>``); without that field the rows are
ciphertext nobody can open. Row ``part`` 0 holds the sealed name and declared type, parts
1.. the chunks. Rows carry the hour they were made, and are deleted when the concern is
sent or by the ``deadlines`` command after ``KEPT_UPLOAD_HOURS``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, cast

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.cases.spool import CHUNK_SIZE, EncryptedSpool
from whistle.errors import InvalidInput
from whistle.store.models import KeptUpload, utcnow

_REF = re.compile(r"([0-9a-f]{32})\.([0-9a-f]{64})")
EXPIRED = ("Files you chose earlier are no longer kept (they are kept for a few hours). "
           "Choose them again.")


def _context(kept_id: str, what: str) -> str:
    return f"whistle:kept-upload:{kept_id}:{what}"


@dataclass(frozen=True)
class KeptRef:
    """What the reporter's form holds for one kept file: the id, the key, the name shown."""

    id: str
    key: bytes
    filename: str

    @property
    def field(self) -> str:
        return f"{self.id}.{self.key.hex()}"


@dataclass
class KeptFile:
    """A kept file opened again, shaped like Werkzeug's ``FileStorage`` for ``read_uploads``."""

    filename: str
    mimetype: str | None
    stream: IO[bytes]


def _hour(now: dt.datetime) -> dt.datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def keep(session: Session, files: Sequence[Any], now: dt.datetime | None = None
         ) -> list[KeptRef]:
    """Seal each posted file (``FileStorage``-like) under a key of its own; the caller commits."""
    created = _hour(now or utcnow())
    refs = []
    for f in files:
        kept_id, key = secrets.token_hex(16), crypto.random_key()
        name = str(getattr(f, "filename", "") or "attachment")
        meta = json.dumps({"v": 1, "filename": name,
                           "mimetype": getattr(f, "mimetype", None)}).encode()
        rows = [{"id": kept_id, "part": 0, "created": created,
                 "blob": crypto.seal(key, meta, _context(kept_id, "meta"))}]
        stream = f.stream
        stream.seek(0)
        index, current = 0, stream.read(CHUNK_SIZE)
        while True:
            following = stream.read(CHUNK_SIZE) if len(current) == CHUNK_SIZE else b""
            rows.append({"id": kept_id, "part": index + 1, "created": created,
                         "blob": crypto.seal_chunk(key, index, not following, current,
                                                   _context(kept_id, "chunks"))})
            if len(rows) >= 16 or not following:
                session.execute(insert(KeptUpload), rows)
                rows = []
            if not following:
                break
            index, current = index + 1, following
        stream.seek(0)
        refs.append(KeptRef(kept_id, key, name))
    return refs


def parse_refs(values: Sequence[Any]) -> list[tuple[str, bytes]]:
    """The (id, key) pairs of the form's ``kept`` fields; 400 for anything else."""
    out = []
    for value in values:
        found = _REF.fullmatch(value) if isinstance(value, str) else None
        if found is None:
            raise InvalidInput(EXPIRED, "attachment", code="kept_expired")
        out.append((found.group(1), bytes.fromhex(found.group(2))))
    return out


def describe(session: Session, refs: Sequence[tuple[str, bytes]]) -> list[KeptRef]:
    """The kept files that still open with their keys, with their names (others left out)."""
    found = []
    for kept_id, key in refs:
        blob = session.scalar(select(KeptUpload.blob).where(KeptUpload.id == kept_id,
                                                            KeptUpload.part == 0))
        try:
            meta = json.loads(crypto.open_sealed(key, blob, _context(kept_id, "meta"))) \
                if blob is not None else None
        except crypto.CryptoError:
            meta = None
        if meta is not None:
            found.append(KeptRef(kept_id, key, str(meta["filename"])))
    return found


def open_all(session: Session, refs: Sequence[tuple[str, bytes]]) -> list[KeptFile]:
    """Open kept files into encrypted spools (plaintext one chunk at a time, in memory);
    InvalidInput if one is gone (expired, already sent) or its key does not open it."""
    files = []
    for kept_id, key in refs:
        blobs = session.scalars(select(KeptUpload.blob).where(KeptUpload.id == kept_id)
                                .order_by(KeptUpload.part)).all()
        if len(blobs) < 2:
            raise InvalidInput(EXPIRED, "attachment", code="kept_expired")
        try:
            meta = json.loads(crypto.open_sealed(key, blobs[0], _context(kept_id, "meta")))
            spool = EncryptedSpool()
            last = len(blobs) - 2
            for index, blob in enumerate(blobs[1:]):
                spool.write(crypto.open_chunk(key, index, index == last, blob,
                                              _context(kept_id, "chunks")))
        except crypto.CryptoError as exc:
            raise InvalidInput(EXPIRED, "attachment", code="kept_expired") from exc
        spool.seek(0)
        files.append(KeptFile(str(meta["filename"]), meta.get("mimetype"),
                              cast(IO[bytes], spool)))
    return files


def forget(session: Session, ids: Sequence[str]) -> None:
    """Delete kept files (once sent); the caller commits."""
    if ids:
        session.execute(delete(KeptUpload).where(KeptUpload.id.in_(list(ids))))


def purge_expired(session: Session, hours: int, now: dt.datetime | None = None) -> int:
    """Delete every kept file older than ``hours``; commits. Returns the files removed."""
    cutoff = (now or utcnow()) - dt.timedelta(hours=hours)
    gone = session.scalars(select(KeptUpload.id).where(KeptUpload.part == 0,
                                                       KeptUpload.created < cutoff)).all()
    session.execute(delete(KeptUpload).where(KeptUpload.created < cutoff))
    session.commit()
    return len(gone)
