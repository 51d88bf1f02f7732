"""The request class: limits from config, and no plaintext upload ever spooled to disk."""

from __future__ import annotations

import io
from typing import IO

from flask import Request


class WhistleRequest(Request):
    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None
                         ) -> IO[bytes]:
        # Werkzeug would spool parts over 500 KB to a temporary file in plaintext.
        return io.BytesIO()

    def _load_form_data(self) -> None:
        if "form" not in self.__dict__ and self.mimetype == "application/x-www-form-urlencoded" \
                and getattr(self, "_cached_data", None) is None:
            _cache_urlencoded_body(self)
        super()._load_form_data()


def _cache_urlencoded_body(req: Request) -> None:
    """Keep the raw urlencoded body so strict UTF-8 checks can see it after Werkzeug parses."""
    from werkzeug.exceptions import RequestEntityTooLarge

    limit = req.max_form_memory_size
    if limit is not None and req.content_length is not None and req.content_length > limit:
        raise RequestEntityTooLarge()
    data = req.stream.read(limit + 1 if limit is not None else -1)
    if limit is not None and len(data) > limit:
        raise RequestEntityTooLarge()
    req._cached_data = data
