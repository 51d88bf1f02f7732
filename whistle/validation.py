"""Strict checks for text that users send. Every failure is an ``InvalidInput`` (a 4xx)."""

from __future__ import annotations

import re
from typing import Any

from whistle.errors import InvalidInput

_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _check_encoding(value: str, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{field} contains invalid characters", field) from exc
    if "\ufffd" in value:
        raise InvalidInput(f"{field} is not valid UTF-8 text", field)


def _present_text(value: Any, field: str, required: bool) -> str | None:
    """``value`` as checked text, or None when it is absent or blank (refused if required)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{field} is required", field)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", field)
    _check_encoding(value, field)
    return value


def line(value: Any, field: str, max_chars: int, required: bool = False) -> str | None:
    """A single-line field: no control characters, trimmed, at most ``max_chars``."""
    value = _present_text(value, field, required)
    if value is None:
        return None
    if _CONTROL_LINE.search(value):
        raise InvalidInput(f"{field} must be a single line without control characters", field)
    value = value.strip()
    if len(value) > max_chars:
        raise InvalidInput(f"{field} is longer than {max_chars} characters", field)
    return value


def text(value: Any, field: str, max_chars: int, required: bool = False) -> str | None:
    """Multi-line text: newlines and tabs allowed, other control characters refused."""
    value = _present_text(value, field, required)
    if value is None:
        return None
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL_TEXT.search(value):
        raise InvalidInput(f"{field} contains control characters", field)
    if len(value) > max_chars:
        raise InvalidInput(f"{field} is longer than {max_chars} characters", field)
    return value


def boolean(value: Any, field: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise InvalidInput(f"{field} must be true or false", field)


def id_list(value: Any, field: str, max_items: int = 100) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > max_items:
        raise InvalidInput(f"{field} must be a list of ids", field)
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not re.fullmatch(r"[0-9a-f]{32}", item):
            raise InvalidInput(f"{field} must be a list of ids", field)
        out.append(item)
    return out
