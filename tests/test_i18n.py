"""Languages: every text translated into Polish and Arabic, chosen per page without a cookie."""

from __future__ import annotations

import datetime as dt
import io
import re
import secrets
from pathlib import Path

import pytest
from babel.dates import format_date
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import make_reviewer, submit_concern
from tests.support.webflow import csrf, status_page
from whistle import i18n

ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "whistle" / "translations"
SHIPPED = ("pl", "ar")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _source_messages() -> set[str]:
    """Every msgid in the code and templates today (what ``pybabel extract`` would find)."""
    found: set[str] = set()
    method_map = [("whistle/**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, keywords=keywords):
        found.add(message if isinstance(message, str) else message[0])
    return found


def _catalog(lang: str) -> Catalog:
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=lang)


@pytest.mark.parametrize("lang", SHIPPED)
def test_every_text_in_the_code_is_translated_completely(lang: str) -> None:
    catalog = _catalog(lang)
    entries = {(m.id if isinstance(m.id, str) else m.id[0]): m for m in catalog if m.id}
    missing = sorted(_source_messages() - set(entries))
    assert not missing, f"{lang}: not in the catalogue (run pybabel update): {missing[:5]}"
    for key, m in entries.items():
        assert not m.fuzzy, (lang, key)
        forms = list(m.string) if isinstance(m.string, (list, tuple)) else [m.string]
        assert forms and all(forms), (lang, key, "untranslated")
        wanted = set(PLACEHOLDER.findall(key))
        if isinstance(m.id, str):
            assert set(PLACEHOLDER.findall(m.string)) == wanted, (lang, key)
        else:
            assert len(forms) == catalog.num_plurals, (lang, key)
            assert all(set(PLACEHOLDER.findall(f)) <= wanted for f in forms), (lang, key)
            assert any(set(PLACEHOLDER.findall(f)) == wanted for f in forms), (lang, key)


@pytest.mark.parametrize("lang", ("en",) + SHIPPED)
def test_the_compiled_catalogues_match_their_sources(lang: str) -> None:
    """The .mo files are committed: they must be what the .po files compile to."""
    fresh = io.BytesIO()
    write_mo(fresh, _catalog(lang))
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo", "rb") as f:
        committed = read_mo(f)
    rebuilt = read_mo(io.BytesIO(fresh.getvalue()))
    assert _entries(committed) == _entries(rebuilt), \
        f"{lang}: run pybabel compile -d whistle/translations"


def _entries(catalog: Catalog) -> dict[object, object]:
    def frozen(value: object) -> object:
        return tuple(value) if isinstance(value, (list, tuple)) else value

    return {frozen(m.id): frozen(m.string) for m in catalog if m.id}


@pytest.mark.parametrize(("lang", "direction"), [("en", "ltr"), ("pl", "ltr"), ("ar", "rtl")])
def test_the_page_says_its_language_and_direction(client: FlaskClient, lang: str,
                                                  direction: str) -> None:
    for path in ("/", "/report", "/status", "/reviewer/login"):
        html = client.get(f"{path}?lang={lang}").get_data(as_text=True)
        assert f'<html lang="{lang}" dir="{direction}">' in html, path


def test_the_language_is_kept_in_every_link_and_form_without_a_cookie(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    for path in ("/", "/report", "/status"):
        response = client.get(f"{path}?lang=pl")
        for cookie in response.headers.getlist("Set-Cookie"):
            # Only the CSRF session cookie of a form page: no language, nothing that lasts.
            assert "lang" not in cookie.split("=", 1)[0].lower(), cookie
            assert "expires" not in cookie.lower() and "max-age" not in cookie.lower(), cookie
        html = response.get_data(as_text=True)
        targets = re.findall(r'(?:href|action)="(/[^"]*)"', html)
        local = [t for t in targets if not t.startswith("/static/")]
        assert local, path
        for target in local:
            assert re.search(r"[?&]lang=(pl|en|ar)\b", target), (path, target)
    # Nothing remembers the choice: the next page without the parameter is English again.
    assert client.get("/").headers.get("Set-Cookie") is None
    assert '<html lang="en"' in client.get("/").get_data(as_text=True)


def test_the_browser_language_is_used_when_the_page_does_not_say(client: FlaskClient) -> None:
    html = client.get("/", headers={"Accept-Language": "pl-PL,pl;q=0.9,en;q=0.5"}).get_data(
        as_text=True)
    assert '<html lang="pl"' in html and "Zgłoś nieprawidłowość" in html
    assert '<html lang="en"' in client.get("/?lang=xx").get_data(as_text=True)


def test_a_whole_reporter_journey_in_polish(app: Flask, client: FlaskClient) -> None:
    make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    form = client.get("/report?lang=pl").get_data(as_text=True)
    assert "Zgłoś nieprawidłowość" in form and 'action="/report?lang=pl"' in form
    fields = {"csrf_token": csrf(client, "/report?lang=pl"), "category": "conduct",
              "details": "Opis zdarzenia.", "idempotency_key": secrets.token_hex(16)}
    review = client.post("/report?lang=pl", data=fields | {"step": "review"})
    assert review.status_code == 200
    assert "Sprawdź przed wysłaniem" in review.get_data(as_text=True)
    sent = client.post("/report?lang=pl", data=fields)
    assert sent.status_code == 201
    html = sent.get_data(as_text=True)
    assert "Zapisz teraz te 12 słów." in html
    ack = dt.date.today() + dt.timedelta(days=7)
    assert format_date(ack, i18n.DATE_PATTERN, locale="pl") in html  # e.g. "14 marca 2026"
    words = re.findall(r'<span class="w">([a-z]+)</span>', html)
    status = client.post("/status?lang=pl", data={"csrf_token": csrf(client, "/status"),
                                                  "token": " ".join(words)})
    page = status.get_data(as_text=True)
    assert "Potwierdzimy przyjęcie zgłoszenia do" in page and "Twoje zgłoszenie" in page


def test_arabic_dates_and_the_status_timeline_are_in_arabic(app: Flask, client: FlaskClient
                                                            ) -> None:
    make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    token = submit_concern(client)["token"]
    response = client.post("/status?lang=ar", data={"csrf_token": csrf(client, "/status"),
                                                    "token": token})
    html = response.get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in html
    assert "استُلم بلاغك." in html  # "Your concern was received." in the timeline
    today = dt.date.today()
    assert format_date(today, i18n.DATE_PATTERN, locale="ar") in html
    # The language switch on a form result re-posts the token instead of losing the page.
    assert re.search(r'<form method="post" action="/status\?lang=pl"', html)
    assert "Token last used" in status_page(client, token)  # and English again without lang


def test_the_stylesheet_uses_logical_properties_so_right_to_left_mirrors() -> None:
    css = (ROOT / "static" / "style.css").read_text()
    physical = re.findall(r"(?<![\w-])(?:margin|padding|border)-(?:left|right)\b|"
                          r"(?<![\w-])(?:left|right)\s*:|text-align:\s*(?:left|right)|"
                          r"float:\s*(?:left|right)", css)
    assert physical == []


def test_file_notes_on_the_token_page_are_in_the_reporters_language(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    page = client.post("/report?lang=pl", content_type="multipart/form-data", data={
        "csrf_token": csrf(client, "/report?lang=pl"), "category": "conduct",
        "details": "Z plikiem.", "idempotency_key": secrets.token_hex(16),
        "clean_metadata": "yes", "attachment": (io.BytesIO(b"plain words"), "notatki.txt"),
    })
    assert page.status_code == 201, page.get_data(as_text=True)[:500]
    html = page.get_data(as_text=True)
    assert "notatki.txt</bdi>: zachowany bez zmian: ukryte informacje" in html
    assert "kept as sent" not in html
