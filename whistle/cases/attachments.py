"""Attachments: spooled encrypted, sealed in fixed-size chunks, verified before download.

The life of a file (plaintext only ever in memory, one 64 KiB chunk at a time
except while an image or PDF is being cleaned):

1. While the request body is parsed, each file part is written into an
   :class:`EncryptedSpool`: every 64 KiB is sealed under a random key that
   exists only in this process's memory, and the ciphertext goes to memory or,
   past 1 MiB, to an unlinked temporary file. Limits are enforced as bytes
   arrive, so an oversized upload stops at the first byte over.
2. :func:`read_uploads` checks the limits again, sniffs the real type,
   sanitises the name for display, and cleans images and PDFs if the
   reporter asked (the one step that needs the whole file in memory; see
   whistle.metadata), re-spooling the cleaned bytes encrypted.
3. :func:`store_all` (in the submission's transaction) and :func:`add_later`
   (files added from the status page) stream each spool chunk by chunk into
   ``attachment_chunks`` rows.

Storage format (version 1)::

    attachments.id          random 128-bit hex id
    attachments.meta_ct     kind (1 byte) | crypto.seal(key, JSON meta, meta_context(...))
    attachment_chunks       (attachment id, index) -> crypto.seal_chunk(
                                file_key(key, chunk_context(...)), index, last, <= 64 KiB)

``kind`` says which of the case's keys seals the file: ``c`` the case key
(files sent with the concern), ``t`` the thread key (files the reporter added
later: the reporter holds only the thread key, as for messages). The kind is
bound into every context, so changing it makes the file fail to open.
The JSON meta holds the display name, sizes, detected and declared types,
whether it was cleaned, the mismatch flag and a SHA-256 of the stored bytes:
nothing about a file but its chunk count and ciphertext length is visible
outside the seal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, cast

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle import confined, crypto, metadata
from whistle.cases import audit, notices
from whistle.cases import keys as casekeys
from whistle.cases.spool import (CHUNK_SIZE, TAG, EncryptedSpool, file_too_large,
                                 files_too_large, mebibytes, too_large,
                                 too_many_files)
from whistle.store.models import Attachment, AttachmentChunk, utcnow
from whistle.errors import InvalidInput, Text

# Chunks written or read per database statement / short transaction: 1 MiB of
# ciphertext in memory at most, and 16 times fewer round trips.
_BATCH = 16
KIND_CASE = "c"
KIND_THREAD = "t"
_SNIFF_BYTES = 4096
_MAX_NAME_CHARS = 150
_WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
                               *(f"LPT{i}" for i in range(10))})


def meta_context(case_ref: str, attachment_id: str, kind: str = KIND_CASE) -> str:
    name = f"attachment:{attachment_id}:meta"
    return casekeys.part(case_ref, name if kind == KIND_CASE else f"{name}:{kind}")


def chunk_context(case_ref: str, attachment_id: str, kind: str = KIND_CASE) -> str:
    name = f"attachment:{attachment_id}:chunks"
    return casekeys.part(case_ref, name if kind == KIND_CASE else f"{name}:{kind}")




# -- reading uploads -------------------------------------------------------


@dataclass
class Upload:
    """One file ready to store: a display name, what we know of it, and a readable stream."""

    filename: str
    size: int
    detected_type: str | None
    declared_type: str | None
    mismatch: bool
    clean_requested: bool
    cleaned: bool
    note: str
    stream: IO[bytes]


def display_name(raw: Any) -> str:
    """A file name safe to show and to put in a download header; never used as a path.

    Control and format characters (NUL, CR/LF, bidi overrides such as U+202E)
    become ``_``; directory parts are joined with ``_`` (``../../etc/passwd``
    -> ``etc_passwd``); Windows device names get a ``_`` prefix; length is
    capped, keeping the extension.
    """
    if not isinstance(raw, str) or not raw:
        return "attachment"
    text = unicodedata.normalize("NFC", raw[:65536])
    text = "".join("_" if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    text = re.sub(r'[<>:"|?*]', "_", text)
    parts = [p.strip() for p in re.split(r"[/\\]", text)]
    name = "_".join(p for p in parts if p and p not in (".", ".."))
    name = re.sub(r"\s+", " ", name).strip(" .")
    if not name.strip("_"):
        return "attachment"
    if name.split(".")[0].strip().upper() in _WINDOWS_RESERVED:
        name = "_" + name
    if len(name) > _MAX_NAME_CHARS:
        ext = metadata.extension(name)
        keep = _MAX_NAME_CHARS - (len(ext) + 1 if ext else 0)
        name = name[:keep].rstrip(" .") + ("." + ext if ext else "")
    return name


def _declared_type(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.split(";")[0].strip().lower()
    return value if re.fullmatch(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,60}/[a-z0-9][a-z0-9!#$&^_.+-]{0,60}",
                                 value) else None




def _stream_size(stream: IO[bytes]) -> int:
    if isinstance(stream, EncryptedSpool):
        return stream.size
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def read_uploads(files: Sequence[Any], settings: Settings, clean: bool
                 ) -> list[Upload]:
    """Turn posted file parts (``FileStorage``-like) into :class:`Upload` objects.

    Enforces the count and size limits (InvalidInput 413 ``too_large``: nothing
    is stored), skips empty unnamed parts (an empty file input), and cleans
    images and PDFs when ``clean``. A pixel flood is refused (413); a
    cleanable file that cannot be read is refused (400 ``cannot_clean``) rather
    than stored with the hidden information the reporter asked us to remove.
    """
    max_files = settings.max_attachments
    max_bytes = settings.max_attachment_bytes
    max_total = settings.max_attachments_total
    max_pixels = settings.max_image_pixels
    sized = []
    for f in files:
        size = _stream_size(f.stream)
        if size or getattr(f, "filename", None):
            sized.append((f, size))
    if len(sized) > max_files:
        raise too_many_files(max_files)
    if any(size > max_bytes for _, size in sized):
        raise file_too_large(max_bytes)
    if sum(size for _, size in sized) > max_total:
        raise files_too_large(max_total)
    return [_prepare(f, size, clean, max_pixels, settings.max_image_memory_bytes,
                     settings.max_pdf_memory_bytes) for f, size in sized]


def _prepare(f: Any, size: int, clean: bool, max_pixels: int,
             max_memory: int | None = None, max_pdf_memory: int | None = None) -> Upload:
    name = display_name(getattr(f, "filename", None))
    stream: IO[bytes] = f.stream
    stream.seek(0)
    head = stream.read(_SNIFF_BYTES)
    stream.seek(0)
    detected = metadata.sniff(head)
    cleaned, note = False, "kept exactly as sent"
    if clean:
        if detected in metadata.CLEANABLE:
            # The one place a whole file is in memory: bounded by MAX_ATTACHMENT_BYTES.
            data = stream.read()
            try:
                # PDFs in a child process under MAX_PDF_MEMORY_BYTES (whistle.confined).
                result = confined.clean(data, detected, max_pixels, max_memory, max_pdf_memory)
            except metadata.TooManyPixels as exc:
                raise too_large(Text("%(name)s: %(reason)s", name=name,
                                     reason=exc.reason)) from exc
            except metadata.CannotClean as exc:
                raise InvalidInput(Text(
                    "Hidden information could not be removed from %(name)s: %(reason)s. "
                    "Send it without that file, or untick the box to keep files exactly as "
                    "they are.", name=name, reason=exc.reason), "attachment",
                    code="cannot_clean") from exc
            del data
            note = result.note
            if result.data is not None:
                spool = EncryptedSpool()
                spool.write(result.data)
                spool.seek(0)
                stream, size, cleaned = cast(IO[bytes], spool), len(result.data), True
                head = result.data[:_SNIFF_BYTES]
                detected = metadata.sniff(head) or detected
        else:
            note = ("kept as sent: hidden information can only be removed from "
                    f"{metadata.CLEANABLE_NAMES}")
    return Upload(
        filename=name, size=size, detected_type=detected,
        declared_type=_declared_type(getattr(f, "mimetype", None)),
        mismatch=metadata.mismatch(name, detected), clean_requested=clean, cleaned=cleaned,
        note=note, stream=stream,
    )


# -- storing ---------------------------------------------------------------


def _store(session: Session, case_ref: str, kind: str, key: bytes, upload: Upload,
           today: dt.date, added_later: bool) -> Attachment:
    """Stream one upload into sealed chunk rows; plaintext is held one chunk at a time."""
    att = Attachment(concern_id=case_ref, meta_ct=b"", chunk_count=0, created=today)
    session.add(att)
    session.flush()
    fkey = crypto.file_key(key, chunk_context(case_ref, att.id, kind))
    ctx = chunk_context(case_ref, att.id, kind)
    digest = hashlib.sha256()
    stream = upload.stream
    stream.seek(0)
    index, size = 0, 0
    batch: list[dict[str, Any]] = []
    current = _read_chunk(stream)
    while True:
        following = _read_chunk(stream) if len(current) == CHUNK_SIZE else b""
        last = not following
        digest.update(current)
        size += len(current)
        batch.append({"attachment_id": att.id, "index": index,
                      "blob": crypto.seal_chunk(fkey, index, last, current, ctx)})
        index += 1
        if last or len(batch) == _BATCH:
            # Core inserts: the ORM would keep every blob in the session until commit.
            session.execute(insert(AttachmentChunk), batch)
            batch = []
        if last:
            break
        current = following
    meta = {
        "v": 1, "filename": upload.filename, "size": size,
        "content_type": upload.detected_type or "application/octet-stream",
        "detected_type": upload.detected_type, "declared_type": upload.declared_type,
        "mismatch": upload.mismatch, "clean_requested": upload.clean_requested,
        "cleaned": upload.cleaned, "sha256": digest.hexdigest(), "added_later": added_later,
    }
    att.meta_ct = kind.encode() + crypto.seal(key, json.dumps(meta).encode(),
                                              meta_context(case_ref, att.id, kind))
    att.chunk_count = index
    return att


def _read_chunk(stream: IO[bytes]) -> bytes:
    parts, want = [], CHUNK_SIZE
    while want:
        data = stream.read(want)
        if not data:
            break
        parts.append(data)
        want -= len(data)
    return b"".join(parts)


class Note(str):
    """"<filename>: <what happened>", keeping both parts so pages can translate the second."""

    filename: str
    text: str

    def __new__(cls, filename: str, text: str) -> Note:
        note = super().__new__(cls, f"{filename}: {text}")
        note.filename, note.text = filename, text
        return note


def _notes(uploads: Sequence[Upload]) -> tuple[str, ...]:
    return tuple(Note(u.filename, u.note) for u in uploads)


def store_all(session: Session, case_ref: str, case_key: bytes, uploads: Sequence[Upload],
              today: dt.date) -> tuple[str, ...]:
    """Seal the concern's files with the case key, in the caller's transaction.

    Returns one note per file for the reporter's receipt (cleaned, kept as
    sent, or which formats could not be cleaned).
    """
    for upload in uploads:
        _store(session, case_ref, KIND_CASE, case_key, upload, today, added_later=False)
    return _notes(uploads)


def usage(session: Session, case_ref: str) -> tuple[int, int]:
    """(files, plaintext bytes) a case already holds, from ciphertext lengths alone."""
    files = session.scalar(select(func.count()).select_from(Attachment)
                           .where(Attachment.concern_id == case_ref)) or 0
    row = session.execute(
        select(func.coalesce(func.sum(func.length(AttachmentChunk.blob)), 0), func.count())
        .join(Attachment, Attachment.id == AttachmentChunk.attachment_id)
        .where(Attachment.concern_id == case_ref)).one()
    return files, int(row[0]) - TAG * int(row[1])


def check_later_allowed(settings: Settings) -> None:
    """The one rule for files sent after the concern (``ALLOW_LATER_ATTACHMENTS``)."""
    if not settings.allow_later_attachments:
        raise InvalidInput("adding files after sending a concern is turned off",
                           code="not_allowed", status=403)


def add_later(session: Session, view: Any, uploads: Sequence[Upload],
              settings: Settings, now: dt.datetime | None = None) -> tuple[str, ...]:
    """Files the reporter adds from the status page, sealed with the thread key.

    ``view`` is an ``reporter.ReporterView``. Per-concern limits count the files
    already stored. Records ``attachment_added`` in the audit trail (ids
    only) and notifies the case's active reviewers. Commits.
    """
    check_later_allowed(settings)
    if not uploads:
        raise InvalidInput("choose at least one file", "attachment")
    concern = view.concern
    files, used = usage(session, concern.id)
    if files + len(uploads) > settings.max_attachments:
        raise too_large(Text("at most %(n)s files can be attached to a concern; it has "
                             "%(files)s", n=settings.max_attachments, files=files))
    if used + sum(u.size for u in uploads) > settings.max_attachments_total:
        raise too_large(Text("the files of a concern together may not exceed %(mib)s MiB",
                             mib=mebibytes(settings.max_attachments_total)))
    today = (now or utcnow()).date()
    day = dt.datetime.combine(today, dt.time())
    for upload in uploads:
        att = _store(session, concern.id, KIND_THREAD, view.thread_key, upload, today,
                     added_later=True)
        audit.record(session, concern.id, "attachment_added", "reporter", day,
                     {"attachment": att.id})
    notices.tell_reviewers(session, concern)
    session.commit()
    return _notes(uploads)


# -- reading back ----------------------------------------------------------


def _keys(keys: Any) -> tuple[bytes, bytes | None]:
    """(case key, thread key or None) from a casekeys.CaseKeys or a bare case key."""
    if isinstance(keys, bytes):
        return keys, None
    return keys.case, keys.thread


def _open_meta(att: Any, keys: Any) -> tuple[str, bytes, dict[str, Any]]:
    case_key, thread_key = _keys(keys)
    kind = att.meta_ct[:1].decode("ascii", "replace")
    key = case_key if kind == KIND_CASE else thread_key if kind == KIND_THREAD else None
    if key is None:
        raise crypto.CryptoError("attachment sealed with an unknown or unavailable key")
    meta = json.loads(crypto.open_sealed(key, att.meta_ct[1:],
                                         meta_context(att.concern_id, att.id, kind)))
    return kind, key, meta


# Built once: every case view runs it (building a statement costs more than running it).
_LISTING = select(Attachment.id, Attachment.concern_id, Attachment.created, Attachment.meta_ct
                  ).where(Attachment.concern_id == bindparam("case_id")).order_by(
    Attachment.created, Attachment.id)


def listing(session: Session, case_ref: str, keys: Any) -> list[dict[str, Any]]:
    """Decrypted names, sizes and types of a case's attachments (keys: CaseKeys or case key)."""
    out = []
    for att in session.connection().execute(_LISTING, {"case_id": case_ref}):
        try:
            _kind, _key, meta = _open_meta(att, keys)
        except (crypto.CryptoError, ValueError):
            # One damaged file must not hide the rest of the case: show it as such.
            out.append({"id": att.id, "created": att.created.isoformat(),
                        "filename": "(integrity error: this file cannot be opened)",
                        "size": None, "content_type": None, "mismatch": True,
                        "integrity_error": True})
            continue
        out.append({k: meta.get(k) for k in (
            "filename", "size", "content_type", "detected_type", "declared_type", "mismatch",
            "cleaned", "clean_requested", "sha256", "added_later")}
            | {"id": att.id, "created": att.created.isoformat(), "integrity_error": False})
    return out


@dataclass(frozen=True)
class Download:
    """A verified attachment: its display name, size and decrypted chunks, in order."""

    filename: str
    size: int
    chunks: Iterator[bytes]


def open_download(session: Session, att: Attachment, keys: Any) -> Download:
    """Verify every chunk of a file, then return an iterator that decrypts them again.

    Nothing is returned unless the whole file opens (CryptoError otherwise): a flipped
    bit, a missing, extra, reordered or swapped chunk, or a changed chunk count all fail
    here, before any plaintext leaves. Memory stays at one chunk; the price is decrypting
    twice. The verification pass reads through ``session``; the returned iterator runs
    after the request's session closed and reads each batch in a short transaction of
    its own, so a slow download never holds the database while the client reads. A
    chunk altered between the two passes still fails to open and ends the stream short
    of its Content-Length.
    """
    kind, key, meta = _open_meta(att, keys)
    ctx = chunk_context(att.concern_id, att.id, kind)
    fkey = crypto.file_key(key, ctx)
    count, att_id = att.chunk_count, att.id
    if count < 1:
        raise crypto.CryptoError("attachment has no chunks")

    def rows(conn: Any, first: int, stop: int | None) -> Any:
        query = select(AttachmentChunk.index, AttachmentChunk.blob).where(
            AttachmentChunk.attachment_id == att_id, AttachmentChunk.index >= first)
        if stop is not None:
            query = query.where(AttachmentChunk.index < stop)
        return conn.execute(query.order_by(AttachmentChunk.index).execution_options(
            yield_per=_BATCH))

    def opened(expected: int, index: int, blob: bytes) -> bytes:
        if index != expected or index >= count:
            raise crypto.CryptoError("attachment chunks are missing, extra or out of order")
        return crypto.open_chunk(fkey, index, index == count - 1, blob, ctx)

    # Verification reads through the caller's session (its transaction holds the lock).
    digest = hashlib.sha256()
    size = seen = 0
    for index, blob in rows(session, 0, None):
        plain = opened(seen, index, blob)
        digest.update(plain)
        size += len(plain)
        seen += 1
    if seen != count:
        raise crypto.CryptoError("attachment chunks are missing")
    if size != meta.get("size") or digest.hexdigest() != meta.get("sha256", digest.hexdigest()):
        raise crypto.CryptoError("attachment does not match its recorded size or hash")
    engine = session.get_bind().engine

    def chunks() -> Iterator[bytes]:
        # Runs after the request's session has closed (the response body is sent later).
        for first in range(0, count, _BATCH):
            with engine.connect() as conn:
                fetched = [(int(i), bytes(b)) for i, b in rows(conn, first, first + _BATCH)]
            expected = first
            for index, blob in fetched:
                yield opened(expected, index, blob)
                expected += 1
            if expected != min(first + _BATCH, count):
                raise crypto.CryptoError("attachment chunks disappeared")

    return Download(meta["filename"], size, chunks())
