"""Uploads over the web: the request class, later attachments, and download responses.

Werkzeug spools multipart file parts over 500 KB to temporary files in
plaintext. :class:`WhistleRequest` replaces that stream factory with
``spool.EncryptedSpool`` (sealed under a key that never leaves memory)
and enforces the attachment limits while the body is read, so a request over
a limit stops at the first byte too many with ``413 too_large``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any, cast
from urllib.parse import quote

from flask import Request, Response
from werkzeug.exceptions import RequestEntityTooLarge

from whistle import current_settings
from whistle.cases import attachments, spool
from whistle.store import db
from whistle.errors import InvalidInput
from whistle.web import oversize
from whistle.web.common import ApiError

DOWNLOAD_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


class WhistleRequest(Request):
    # A reporter's form over a limit still gives back its text (whistle.web.oversize).
    form_data_parser_class = oversize.KeepingParser
    _upload_budget: spool.Budget | None = None
    _upload_parts = 0

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None
                         ) -> IO[bytes]:
        # Never Werkzeug's default: it spools parts over 500 KB to disk in plaintext.
        cfg = current_settings()
        if self._upload_budget is None:
            self._upload_budget = spool.Budget(cfg.max_attachments_total)
        if filename:
            self._upload_parts += 1
            if self._upload_parts > cfg.max_attachments:
                raise spool.too_many_files(cfg.max_attachments)
        part = spool.EncryptedSpool(max_bytes=cfg.max_attachment_bytes,
                                    budget=self._upload_budget)
        return cast(IO[bytes], part)

    def _load_form_data(self) -> None:
        try:
            if "form" not in self.__dict__ and \
                    self.mimetype == "application/x-www-form-urlencoded" and \
                    getattr(self, "_cached_data", None) is None:
                _cache_urlencoded_body(self)
            super()._load_form_data()
        except RequestEntityTooLarge as exc:
            oversize.rescue_unread(self)
            self._parsed_nothing()
            raise ApiError(413, "too_large", "the request is too large: see the limits on "
                           "files and text") from exc
        except InvalidInput:  # an attachment limit (413), found while parsing
            self._parsed_nothing()
            raise

    def _parsed_nothing(self) -> None:
        # A form refused while parsing reads as empty from then on, never parsed again
        # from the middle of its body.
        self.__dict__["form"] = self.parameter_storage_class()
        self.__dict__["files"] = self.parameter_storage_class()


def _cache_urlencoded_body(req: Request) -> None:
    """Keep the raw urlencoded body so strict UTF-8 checks can see it after Werkzeug parses."""
    limit = req.max_form_memory_size
    if limit is not None and req.content_length is not None and req.content_length > limit:
        raise RequestEntityTooLarge()
    data = req.stream.read(limit + 1 if limit is not None else -1)
    # Read once more: a chunked body cut off at MAX_CONTENT_LENGTH raises 413 only now.
    data += req.stream.read(1)
    if limit is not None and len(data) > limit:
        raise RequestEntityTooLarge()
    req._cached_data = data


def flag(value: Any, default: bool) -> bool:
    """A true/false form part ("true", "false", "yes", "no", "1", "0"); absent -> default."""
    if value is None or value == "":
        return default
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ApiError(400, "invalid_input", "clean_metadata must be true or false", "clean_metadata")


def add_later(view: Any, files: Sequence[Any], clean: bool) -> tuple[str, ...]:
    """Files a reporter adds from the status page; 4xx for anything refused, nothing stored."""
    cfg = current_settings()
    attachments.check_later_allowed(cfg)  # before reading the files
    from whistle.web import shared

    shared.bounded("upload", sum(1 for f in files if getattr(f, "filename", None)))
    session = db.session()
    try:
        uploads = attachments.read_uploads(files, cfg, clean)
        return attachments.add_later(session, view, uploads, cfg)
    except InvalidInput:
        session.rollback()
        raise


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the exact name per RFC 6266 / RFC 5987."""
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\%;' else "_"
                       for ch in filename) or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download_response(download: attachments.Download) -> Response:
    """A verified attachment as a download that no browser renders or sniffs."""
    # No stream_with_context: the request's session closes before the body is sent, and
    # the chunks are read in short transactions of their own (see open_download).
    response = Response(download.chunks,
                        mimetype="application/octet-stream", direct_passthrough=True)
    response.headers["Content-Length"] = str(download.size)
    response.headers["Content-Disposition"] = content_disposition(download.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    response.headers["Cache-Control"] = "no-store"
    return response
