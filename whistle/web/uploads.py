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
