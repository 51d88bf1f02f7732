"""Whose channel this is: the organisation's name, logo, introduction and emergency notice,
each per language, and administrators' own translations of the units and categories they
typed (issue 21, items 1 and 3). Administrators set them; every change is in the
administration log. Reporter pages show them; nothing here touches a case.

Stored as two settings: ``organisation`` (JSON: ``texts`` per language code, ``words`` per
language code) and ``organisation_logo`` (a PNG that Whistle itself re-encoded from the
upload, base64: no metadata, no other format, served from Whistle's own address).
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from whistle import validation
from whistle.errors import InvalidInput
from whistle.people import adminlog
from whistle.store import options

SETTING = "organisation"
LOGO_SETTING = "organisation_logo"
FIELDS = ("name", "intro", "emergency")
LIMITS = {"name": 200, "intro": 2000, "emergency": 1000}
WORDS_CHARS = 20000
LOGO_BYTES = 512 * 1024  # what an upload may be before Whistle re-encodes it
LOGO_BOX = (480, 160)  # the largest a logo is kept (it shows at most 48 px high)


@dataclass(frozen=True)
class Organisation:
    """What administrators set. ``texts[lang][field]``; ``words[lang][english] = theirs``."""

    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    words: dict[str, dict[str, str]] = field(default_factory=dict)
    has_logo: bool = False

    def text(self, name: str, lang: str, default_lang: str = "en") -> tuple[str, str] | None:
        """``(text, its language)`` for ``lang``, else in the default language, else None."""
        for code in (lang, default_lang):
            found = self.texts.get(code, {}).get(name)
            if found:
                return found, code
        return None

    def word(self, english: str, lang: str) -> str | None:
        return self.words.get(lang, {}).get(english)


def load(session: Session) -> Organisation:
    value = options.get(session, SETTING, {}) or {}
    logo = options.get(session, LOGO_SETTING, None)
    return Organisation(texts=value.get("texts", {}), words=value.get("words", {}),
                        has_logo=bool(logo))


def logo_png(session: Session) -> bytes | None:
    value = options.get(session, LOGO_SETTING, None)
    if not value:
        return None
    try:
        return base64.b64decode(value["png"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        return None


def parse_words(text: str, where: str) -> dict[str, str]:
    """Lines ``English = translation`` (blank lines ignored); 400 naming the line otherwise."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        english, sep, theirs = line.partition("=")
        if not sep or not english.strip() or not theirs.strip():
            raise InvalidInput("write each line as English = translation", where)
        out[english.strip()] = theirs.strip()
    return out


def parse_form(form: dict[str, Any], languages: list[str]) -> dict[str, Any]:
    """The settings form (``<field>_<lang>`` and ``words_<lang>``) as the stored value."""
    texts: dict[str, dict[str, str]] = {}
    words: dict[str, dict[str, str]] = {}
    for lang in languages:
        for name in FIELDS:
            key = f"{name}_{lang}"
            value = validation.text(form.get(key), key, LIMITS[name]) or ""
            if value.strip():
                texts.setdefault(lang, {})[name] = value.strip()
        key = f"words_{lang}"
        raw = validation.text(form.get(key), key, WORDS_CHARS) or ""
        if raw.strip():
            words[lang] = parse_words(raw, key)
    return {"texts": texts, "words": words}


def reencoded_logo(data: bytes) -> bytes:
    """A PNG drawn from the pixels of an uploaded PNG, JPEG, GIF or WebP image (nothing else
    of the upload survives: no metadata, no trailing bytes); 400 for anything else."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InvalidInput("choose an image file for the logo", "logo")
    if len(data) > LOGO_BYTES:
        raise InvalidInput("the logo may be at most 512 KiB", "logo")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("PNG", "JPEG", "GIF", "WEBP"):
                raise InvalidInput("the logo must be a PNG, JPEG, GIF or WebP image", "logo")
            if img.width * img.height > 16_000_000:
                raise InvalidInput("the logo image is too large", "logo")
            img.seek(0)
            pixels = img.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InvalidInput("the logo must be a PNG, JPEG, GIF or WebP image", "logo") from None
    pixels.thumbnail(LOGO_BOX)
    clean = Image.new("RGBA", pixels.size)
    clean.putdata(list(pixels.getdata()))
    out = io.BytesIO()
    clean.save(out, format="PNG", optimize=True)
    return out.getvalue()


def save(session: Session, value: dict[str, Any], logo: bytes | None, remove_logo: bool,
         actor: str) -> None:
    """Store the settings (and the logo: a new one, removed, or unchanged), logged. Commits."""
    before = options.get(session, SETTING, {}) or {}
    options.put(session, SETTING, value)
    changed = sorted({f"{name}_{lang}" for lang in set(before.get("texts", {}))
                      | set(value["texts"]) for name in FIELDS
                      if before.get("texts", {}).get(lang, {}).get(name)
                      != value["texts"].get(lang, {}).get(name)})
    data: dict[str, Any] = {"fields": changed,
                            "words": sorted(value["words"]) if value["words"]
                            != before.get("words", {}) else []}
    if logo is not None:
        options.put(session, LOGO_SETTING, {"png": base64.b64encode(logo).decode()})
        data["logo"] = "replaced"
    elif remove_logo:
        options.put(session, LOGO_SETTING, None)
        data["logo"] = "removed"
    adminlog.record(session, "organisation_changed", actor, data)
    session.commit()
