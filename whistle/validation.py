"""Strict checks for text that users send. Every failure is an ``InvalidInput`` (a 4xx)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from whistle.errors import InvalidInput, Text

_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# Characters that change how a one-line field looks without being seen. Every format
# character (Unicode category Cf) counts: the bidirectional marks, embeddings, overrides and
# isolates (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), the zero-width ones
# (U+200B, U+200C, U+200D, U+2060, U+FEFF, U+180E), the soft hyphen, the tags. So do a few
# letters and marks that are drawn as nothing at all: the Hangul fillers and the combining
# grapheme joiner.
_INVISIBLE_LETTERS = frozenset("\u034f\u115f\u1160\u3164\uffa0")
# The only characters free text refuses beyond control characters: the two overrides, which
# draw the letters that follow in reverse order, so that a reviewer reads other words than
# were written. Nothing a keyboard types, and no app people copy from, puts them in text.
_OVERRIDES = re.compile(r"[\u202d\u202e]")


def invisible(value: str) -> str | None:
    """The first character of ``value`` that one-line fields refuse (see ``line``), or None."""
    for ch in value:
        if ch in _INVISIBLE_LETTERS or unicodedata.category(ch) == "Cf":
            return ch
    return None


def _code(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def _shown(ch: str) -> str:
    return f"{_code(ch)} {unicodedata.name(ch, '')}".rstrip()


def _check_encoding(value: str, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(Text("%(field)s contains invalid characters", field=field),
                           field) from exc
    if "\ufffd" in value:
        raise InvalidInput(Text("%(field)s is not valid UTF-8 text", field=field), field)


def _present_text(value: Any, field: str, required: bool) -> str | None:
    """``value`` as checked text, or None when it is absent or blank (refused if required)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(Text("%(field)s is required", field=field), field)
        return None
    if not isinstance(value, str):
        raise InvalidInput(Text("%(field)s must be text", field=field), field)
    _check_encoding(value, field)
    return value


def line(value: Any, field: str, max_chars: int, required: bool = False) -> str | None:
    """A single-line field: no control characters, trimmed, NFC, at most ``max_chars``.

    Every one-line field is a name of something: a reviewer's name and address, a unit, a
    category, the reporter's name, role and contact. People tell them apart by eye (the
    reporter's list of whom to exclude, the roster, the inbox), so this is also the rule
    against look-alike names: a value holding any format character (category Cf: the
    bidirectional controls U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069, the
    zero-width U+200B, U+200C, U+200D, U+2060, U+FEFF, U+180E, ...) or an invisible letter
    (the Hangul fillers, U+034F) is refused with ``InvalidInput`` naming ``field``. That
    refuses ZWNJ (U+200C), which Persian writes inside words, too: a decision (docs/design.md,
    "Decisions"). The value comes back NFC-normalised, so that a name typed with combining
    accents and the same name typed precomposed are one name; the length is counted after.
    """
    value = _present_text(value, field, required)
    if value is None:
        return None
    if _CONTROL_LINE.search(value):
        raise InvalidInput(Text("%(field)s must be a single line without control characters",
                                field=field), field)
    hidden = invisible(value)
    if hidden is not None:
        raise InvalidInput(Text("%(field)s contains an invisible or text-direction character "
                                "(%(char)s): remove it", field=field, char=_shown(hidden),
                                code=_code(hidden)), field)
    value = unicodedata.normalize("NFC", value).strip()
    if len(value) > max_chars:
        raise InvalidInput(Text("%(field)s is longer than %(n)s characters", field=field,
                                n=max_chars), field)
    return value


def text(value: Any, field: str, max_chars: int, required: bool = False) -> str | None:
    """Multi-line text: newlines and tabs allowed, other control characters refused.

    Free text keeps every format character but the two bidirectional overrides (U+202D,
    U+202E), which make a reviewer read the letters after them backwards. The marks,
    embeddings and isolates stay: keyboards type the marks, and chats people paste as
    evidence carry embeddings around phone numbers; ZWJ and ZWNJ stay for emoji and Persian.
    The text is kept as written (not normalised): it is the reporter's own words.
    """
    value = _present_text(value, field, required)
    if value is None:
        return None
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL_TEXT.search(value):
        raise InvalidInput(Text("%(field)s contains control characters", field=field), field)
    override = _OVERRIDES.search(value)
    if override:
        raise InvalidInput(Text("%(field)s contains a character that reverses the text after "
                                "it (%(char)s): remove it", field=field,
                                char=_shown(override.group()), code=_code(override.group())),
                           field)
    if len(value) > max_chars:
        raise InvalidInput(Text("%(field)s is longer than %(n)s characters", field=field,
                                n=max_chars), field)
    return value


def boolean(value: Any, field: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise InvalidInput(Text("%(field)s must be true or false", field=field), field)


def id_list(value: Any, field: str, max_items: int = 100) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > max_items:
        raise InvalidInput(Text("%(field)s must be a list of ids", field=field), field)
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not re.fullmatch(r"[0-9a-f]{32}", item):
            raise InvalidInput(Text("%(field)s must be a list of ids", field=field), field)
        out.append(item)
    return out


_ASCII_DIGITS = re.compile(r"[0-9]+")


def whole_number(value: Any, max_digits: int) -> int | None:
    """``value`` as a non-negative whole number written in ASCII digits only, or None.

    ``str.isdigit`` and ``int`` accept other scripts' digits (``"٣"``), and ``isdigit`` even
    superscripts that ``int`` then refuses (``"²"``): numbers users send are checked here.
    """
    if not isinstance(value, str) or len(value) > max_digits or not _ASCII_DIGITS.fullmatch(value):
        return None
    return int(value)
