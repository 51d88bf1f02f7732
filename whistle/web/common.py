"""Request parsing shared by the web layers: strict JSON and strict forms, clear 4xx errors."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from flask import flash, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from whistle import current_settings
from whistle.errors import DomainError, Text


class ApiError(DomainError):
    """A request the web layer itself refuses (malformed, too large, wrong type, ...): a
    ``DomainError`` spelled status first, as the HTTP answer it becomes."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code, status, field, headers)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ApiError(400, "invalid_json", Text("duplicate key %(key)s", key=repr(key)))
        out[key] = value
    return out


def _reject_constant(name: str) -> None:
    raise ApiError(400, "invalid_json", Text("%(name)s is not allowed", name=name))


def parse_json_bytes(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", "the body is not valid UTF-8") from exc
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from exc
    _check_strings(data)
    return data


_BAD_TEXT = re.compile(r"[\x00\ud800-\udfff]")


def _check_strings(data: Any) -> None:
    """No NUL and no unpaired surrogate in any key or value: neither is text anyone typed,
    and either would fail later (PostgreSQL refuses NUL, UTF-8 cannot encode a surrogate)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _BAD_TEXT.search(item):
                raise ApiError(400, "invalid_json", "the body contains a NUL character or an "
                               "unpaired surrogate")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def read_body(limit: int) -> bytes:
    """The whole request body, or 413 past ``limit`` bytes (also for chunked bodies). Kept
    for the request: a request run again (see whistle.store.db.run) reads the same body."""
    kept: bytes | None = g.get("request_body")
    if kept is not None:
        if len(kept) > limit:
            raise ApiError(413, "too_large", "the body is too large")
        return kept
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, "too_large", "the body is too large")
    chunks: list[bytes] = []
    size = 0
    try:
        while size != length:  # a declared length is read to its end, no further
            # Without a declared length, one more read after the end: Werkzeug's stream
            # raises 413 only then when a chunked body ran into MAX_CONTENT_LENGTH,
            # instead of silently truncating.
            chunk = request.stream.read(min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too_large", "the body is too large")
    except RequestEntityTooLarge as exc:
        raise ApiError(413, "too_large", "the body is too large") from exc
    body = b"".join(chunks)
    g.request_body = body
    return body


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 4xx: 415 wrong type, 413 too big, 400 malformed."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    data = parse_json_bytes(read_body(current_settings().max_json_bytes))
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def optional_json_body() -> dict[str, Any]:
    """``json_body`` for calls whose body is optional: none at all is ``{}``; anything sent
    must be a well-formed JSON object like any other body."""
    if request.content_length == 0 or (request.content_length is None
                                       and "chunked" not in request.headers.get(
                                           "Transfer-Encoding", "").lower()):
        return {}
    return json_body()


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def form_pairs() -> list[tuple[str, str]]:
    """Every (name, value) of the posted form, checked: 415 not a form, 413 too many fields,
    400 for invalid UTF-8 (urlencoded or multipart) or a NUL character anywhere."""
    if request.mimetype not in FORM_TYPES:
        raise ApiError(415, "unsupported_media_type", "send the form as a web form")
    if request.mimetype == "application/x-www-form-urlencoded":
        request.form  # noqa: B018 - parsing caches the raw body (see web.uploads)
        raw = request.get_data(cache=True)
        try:
            text = raw.decode("ascii")
            pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
        except ValueError as exc:  # UnicodeDecodeError included
            raise ApiError(400, "invalid_form", "the form is not valid UTF-8") from exc
    else:
        # Werkzeug decodes multipart text with errors="replace": U+FFFD marks invalid UTF-8.
        pairs = list(request.form.items(multi=True))
    if len(pairs) > current_settings().max_form_parts:
        raise ApiError(413, "too_large", "the form has too many fields")
    for key, value in pairs:
        if "\ufffd" in key + value or "\x00" in key + value:
            raise ApiError(400, "invalid_form", Text("%(key)s is not valid text", key=key), key)
    return pairs


def form_fields(multi: tuple[str, ...] = ()) -> dict[str, Any]:
    """The posted form as a dict; 415 for other content types, 400 for duplicates or bad text.

    Fields named in ``multi`` may repeat and come back as lists.
    """
    out: dict[str, Any] = {}
    for key, value in form_pairs():
        if key in multi:
            out.setdefault(key, []).append(value)
        elif key in out:
            raise ApiError(400, "invalid_form", Text("%(key)s was sent more than once", key=key),
                           key)
        else:
            out[key] = value
    return out


def act(action: Any, done: str) -> None:
    """Run a reviewer page's action and flash ``done``, or the refusal's message; a 404
    (not the caller's case) stays a 404."""
    try:
        action()
        flash(done, "ok")
    except DomainError as exc:
        if exc.status == 404:
            raise
        flash(exc.message, "error")
