"""A reporter's form over a size limit still gives their words back (issue 20).

Werkzeug stops parsing a form at the first byte over a limit (``MAX_CONTENT_LENGTH``, a
field over ``MAX_FORM_MEMORY_SIZE``, more than ``MAX_FORM_PARTS`` parts; the attachment
limits of ``whistle.web.uploads``) and answers 413 before the view runs: the reporter's
typed text would be lost with the file that was too large. On the reporter's forms
(``PAGES``, registered by ``whistle.web.report``), :class:`KeepingParser` then goes on
reading the body in a bounded way: it keeps the text fields (each within
``MAX_FORM_MEMORY_SIZE``, at most ``MAX_FORM_PARTS`` of them, ``KEPT_TEXT_BYTES`` in all),
throws every file byte away, and stops after ``MAX_CONTENT_LENGTH`` bytes of body in all
(what a valid request may cost). ``answer`` renders the form again with them; nothing is
stored. JSON routes and every other form keep their 413.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import IO, Any, cast

from flask import current_app, g, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.formparser import FormDataParser, MultiPartParser
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData
from werkzeug.wsgi import LimitedStream

from whistle.errors import DomainError
from whistle.store import db

CHUNK = 64 * 1024
KEPT_TEXT_BYTES = 2 * 1024 * 1024  # all text fields kept together, at most

# endpoint -> the page that shows the form again: (rescued form, the 413) -> answer.
Page = Callable[["Rescued", Exception], Any]
PAGES: dict[str, Page] = {}


@dataclasses.dataclass
class Rescued:
    """What could be read of an oversized form: its text fields, in order, and whether it
    held files (or may have: the reading stopped before the end)."""

    fields: list[tuple[str, str]]
    had_files: bool

    def as_dict(self, multi: tuple[str, ...] = ()) -> dict[str, Any]:
        """Like ``web.common.form_fields``, but forgiving: a repeated field keeps its first
        value, NUL characters are dropped (this only goes back into the form)."""
        out: dict[str, Any] = {}
        for key, value in self.fields:
            value = value.replace("\x00", "")
            if key in multi:
                out.setdefault(key, []).append(value)
            else:
                out.setdefault(key, value)
        return out


def _too_large(exc: BaseException) -> bool:
    return isinstance(exc, RequestEntityTooLarge) or (
        isinstance(exc, DomainError) and exc.status == 413)


class _Reader:
    """Reads the body in chunks, counting; never past ``limit`` bytes in all."""

    def __init__(self, stream: IO[bytes], limit: int | None) -> None:
        self.stream, self.limit, self.read = stream, limit, 0

    def chunk(self) -> bytes:
        size = CHUNK if self.limit is None else min(CHUNK, self.limit - self.read)
        if size <= 0:
            return b""
        data = self.stream.read(size)
        self.read += len(data)
        return data


def _events(decoder: MultipartDecoder, reader: _Reader) -> Iterator[Any]:
    """The decoder's events until the epilogue, reading as it needs data."""
    while True:
        event = decoder.next_event()
        if isinstance(event, NeedData):
            decoder.receive_data(reader.chunk() or None)
        elif isinstance(event, Epilogue):
            return
        else:
            yield event


class _KeepingMultiPart(MultiPartParser):
    """Werkzeug's multipart parsing, the same events and limits, with a way out at 413."""

    def parse(self, stream: IO[bytes], boundary: bytes, content_length: int | None
              ) -> tuple[MultiDict[str, str], MultiDict[str, Any]]:
        decoder = MultipartDecoder(boundary, max_form_memory_size=self.max_form_memory_size,
                                   max_parts=self.max_form_parts)
        reader = _Reader(stream, None)
        fields: list[tuple[str, str]] = []
        files: list[tuple[str, Any]] = []
        part: Field | File | None = None
        try:
            for event in _events(decoder, reader):
                part = self._take(event, part, fields, files, content_length)
        except (RequestEntityTooLarge, DomainError) as exc:
            if _too_large(exc) and request.endpoint in PAGES:
                g.rescued_form = _rescue(decoder, reader, fields,
                                         any(f.filename for _n, f in files)
                                         or isinstance(part, File))
            raise
        return self.cls(fields), self.cls(files)

    def _take(self, event: Any, part: Any, fields: list[tuple[str, str]],
              files: list[tuple[str, Any]], content_length: int | None) -> Any:
        """One event, as Werkzeug's own loop takes it; the part now being read."""
        from werkzeug.datastructures import FileStorage

        if isinstance(event, Field):
            self._size, self._container = 0, []
            return event
        if isinstance(event, File):
            self._size = None
            self._container = self.start_file_streaming(event, content_length)
            return event
        if isinstance(event, Data):
            if self._size is not None:
                self._size += len(event.data)
                if self.max_form_memory_size is not None and \
                        self._size > self.max_form_memory_size:
                    raise RequestEntityTooLarge()
                self._container.append(event.data)
            else:
                self._container.write(event.data)
            if not event.more_data:
                if isinstance(part, Field):
                    value = b"".join(self._container).decode(
                        self.get_part_charset(part.headers), "replace")
                    fields.append((part.name, value))
                else:
                    self._container.seek(0)
                    files.append((part.name, FileStorage(self._container, part.filename,
                                                         part.name, headers=part.headers)))
                return None
        return part

    _size: int | None = None
    _container: Any = None


def _limits() -> tuple[int, int, int | None]:
    cfg = current_app.config
    return (int(cfg["MAX_FORM_MEMORY_SIZE"]), int(cfg["MAX_FORM_PARTS"]),
            cfg.get("MAX_CONTENT_LENGTH"))


def _rescue(decoder: MultipartDecoder, reader: _Reader, fields: list[tuple[str, str]],
            had_files: bool) -> Rescued:
    """Go on reading after a 413, keeping text fields within bounds, dropping file data and
    the part that was being read; stop at the end, at a malformed part, at a read that fails
    or at ``MAX_CONTENT_LENGTH`` bytes of body in all."""
    field_max, parts_max, body_max = _limits()
    kept = list(fields)[:parts_max]
    total = sum(len(v) for _k, v in kept)
    reader.limit = body_max
    decoder.max_form_memory_size = decoder.max_parts = None  # bounded here instead
    part: Field | None = None
    buffer: list[bytes] = []
    finished = False
    with contextlib.suppress(ValueError, OSError, HTTPException, DomainError):
        for event in _events(decoder, reader):
            if len(decoder.buffer) > field_max:
                break  # part headers that never end
            if isinstance(event, (Field, File)):
                had_files = had_files or bool(isinstance(event, File) and event.filename)
                part, buffer = (event if isinstance(event, Field) else None), []
            elif isinstance(event, Data) and part is not None:
                buffer.append(event.data)
                size = sum(len(b) for b in buffer)
                if size > field_max or total + size > KEPT_TEXT_BYTES:
                    part = None  # too long to give back: dropped
                elif not event.more_data:
                    if len(kept) < parts_max:
                        kept.append((part.name, b"".join(buffer).decode("utf-8", "replace")))
                        total += size
                    part = None
        finished = True
    return Rescued(kept, had_files or not finished)


def rescue_unread(req: Any) -> None:
    """A multipart body refused before a byte of it was read (``Content-Length`` over
    ``MAX_CONTENT_LENGTH``): read its text fields as above, from the start."""
    if req.endpoint not in PAGES or "rescued_form" in g or req.mimetype != "multipart/form-data":
        return
    boundary = req.mimetype_params.get("boundary", "").encode("ascii", "ignore")
    _field_max, _parts, body_max = _limits()
    if not boundary or body_max is None or req.content_length is None:
        return
    stream = cast(IO[bytes], LimitedStream(req.environ["wsgi.input"],
                                           min(req.content_length, body_max)))
    g.rescued_form = _rescue(MultipartDecoder(boundary), _Reader(stream, body_max), [], False)


def rescued() -> Rescued | None:
    return g.get("rescued_form")


class KeepingParser(FormDataParser):
    """The request's form parser (``WhistleRequest.form_data_parser_class``)."""

    def _parse_multipart(self, stream: IO[bytes], mimetype: str, content_length: int | None,
                         options: dict[str, str]) -> Any:
        parser = _KeepingMultiPart(stream_factory=self.stream_factory,
                                   max_form_memory_size=self.max_form_memory_size,
                                   max_form_parts=self.max_form_parts, cls=self.cls)
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files


def answer(exc: Exception) -> Any | None:
    """The page for a 413 on a reporter's form: the same form, with what they typed (None:
    not one of those forms; the caller answers as usual)."""
    page = PAGES.get(request.endpoint or "")
    if page is None:
        return None
    found = rescued()
    if found is None:  # refused after parsing (too many fields): the form as parsed
        form = request.__dict__.get("form") or MultiDict()
        found = Rescued(list(form.items(multi=True)), True)
    db.end()  # the unit the failure left, if any (closing it rolls it back)
    with db.unit_of_work(db.database_of(current_app), db.Mode.READ):
        return page(found, exc)
