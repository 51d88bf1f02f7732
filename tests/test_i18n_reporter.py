"""A Polish or Arabic reporter meets no English: every refusal and limit, the plurals, the direction.

Issue 27. The domain refuses in English (the JSON API keeps it); the reporter's pages say
each refusal through the catalogue (``whistle.wording``, the ``tr`` filter). These tests
render every refusal a reporter can meet on the HTML pages, in English first (which shows
the domain's own English, as the API does: the control that the intended refusal was met)
and then in Polish and Arabic (which must say it without one English word). They also pin each language's
plural forms, so that a changed ``Plural-Forms`` header cannot silently break them.
"""

from __future__ import annotations

import ast
import html as htmllib
import io
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from babel.support import Translations
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from tests.support.factories import make_reviewer
from tests.support.webflow import csrf
from whistle import i18n, wording
from whistle.errors import Text
from whistle.store import db, options

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "whistle"
TRANSLATIONS = PACKAGE / "translations"
SHIPPED = ("pl", "ar")

# Small limits, so that each one can be met with a few bytes.
LIMITS = {"MAX_DETAILS_CHARS": 60, "MAX_FIELD_CHARS": 40, "MAX_ATTACHMENTS": 2,
          "MAX_ATTACHMENT_BYTES": 2000, "MAX_ATTACHMENTS_TOTAL": 3000,
          "MAX_CONTENT_LENGTH": 100_000, "MAX_FORM_PARTS": 20, "MAX_IMAGE_PIXELS": 100}

# English words that no Polish or Arabic refusal contains ("limit", "pole", "to", "a", "do"
# and "nie" are Polish words too, so they are not listed).
ENGLISH = frozenset("""
the is are was were be can could cannot not with from this that than must contains contain
characters character files file larger large too long longer request sent send another site
website remove removed hidden information choose at most least of it its and or your you
please field form text type again allowed valid more once attached attach image picture
password protected read turned off adding after sending concern untick box words token
match matches reload page try wait address browser something wrong went
""".split())


def english_words(text: str) -> list[str]:
    return sorted({w for w in re.findall(r"[A-Za-z]+", text) if w.lower() in ENGLISH})


def refusal(page: str) -> str:
    """What a page says about a refusal: the error summary (form, status pages) or the
    heading and message of the error page, as plain text."""
    found = re.search(r'<(p|div) class="error-summary"[^>]*>(.*?)</\1>', page, re.S)
    part = found.group(2) if found else None
    if part is None:
        page_error = re.search(r'<main id="main">.*?<h1>(.*?)</h1><p>(.*?)</p>', page, re.S)
        part = " ".join(page_error.groups()) if page_error else ""
    text = htmllib.unescape(re.sub(r"<[^>]+>", " ", part))
    return " ".join(text.replace("\u2068", "").replace("\u2069", "").split())


# -- the things a reporter can send, each meeting one refusal ---------------------------------


def _report(client: FlaskClient, lang: str, fields: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> TestResponse:
    data = {"csrf_token": csrf(client, f"/report?lang={lang}"), "category": "conduct",
            "details": "Opis.", "idempotency_key": secrets.token_hex(16)} | (fields or {})
    return client.post(f"/report?lang={lang}", data=data, content_type="multipart/form-data",
                       headers=headers or {})


def _files(*parts: tuple[str, bytes], clean: bool = False) -> dict[str, Any]:
    return {"clean_metadata": "yes" if clean else "no",
            "attachment": [(io.BytesIO(content), name) for name, content in parts]}


def _protected_pdf() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    out = io.BytesIO()
    pdf.save(out, encryption=pikepdf.Encryption(user="secret", owner="secret"))
    return out.getvalue()


def _png(side: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (side, side), "white").save(out, "PNG")
    return out.getvalue()


def _pixel_flood() -> bytes:
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (len(body).to_bytes(4, "big") + kind + body
                + zlib.crc32(kind + body).to_bytes(4, "big"))

    header = (50_000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


def _raw(client: FlaskClient, lang: str, body: bytes, content_type: str,
         path: str = "/report") -> TestResponse:
    return client.post(f"{path}?lang={lang}", data=body, content_type=content_type)


def _status(client: FlaskClient, lang: str, route: str, fields: dict[str, Any]) -> TestResponse:
    data = {"csrf_token": csrf(client, f"/status?lang={lang}")} | fields
    return client.post(f"/status{route}?lang={lang}", data=data,
                       content_type="multipart/form-data")


Send = Callable[[FlaskClient, str, dict[str, str]], TestResponse]
# (name, how to meet it, the HTTP status, words of the English refusal that show it is the one)
REFUSALS: list[tuple[str, Send, int, str]] = [
    ("details missing", lambda c, lang, t: _report(c, lang, {"details": ""}), 400,
     "Write your concern"),
    ("details too long", lambda c, lang, t: _report(c, lang, {"details": "x" * 61}), 400,
     "details is longer than 60 characters"),
    ("details control character", lambda c, lang, t: _report(c, lang, {"details": "a\x1bb"}),
     400, "details contains control characters"),
    ("details reversing character",
     lambda c, lang, t: _report(c, lang, {"details": "a\u202eb"}), 400,
     "reverses the text after it"),
    ("name missing", lambda c, lang, t: _report(c, lang, {"identity": "named", "name": ""}),
     400, "Write your name"),
    ("name invisible character",
     lambda c, lang, t: _report(c, lang, {"identity": "named", "name": "Ann\u200bX"}), 400,
     "invisible or text-direction character"),
    ("name on two lines",
     lambda c, lang, t: _report(c, lang, {"identity": "named", "name": "Ann\nX"}), 400,
     "must be a single line"),
    ("name too long",
     lambda c, lang, t: _report(c, lang, {"identity": "named", "name": "N" * 41}), 400,
     "identity.name is longer than 40 characters"),
    ("unknown category", lambda c, lang, t: _report(c, lang, {"category": "nope"}), 400,
     "unknown category"),
    ("unknown unit", lambda c, lang, t: _report(c, lang, {"unit": "Nowhere"}), 400,
     "unknown unit"),
    ("excluded id unreadable",
     lambda c, lang, t: _report(c, lang, {"exclude_reviewers": "not-an-id"}), 400,
     "must be a list of ids"),
    ("excluded reviewer unknown",
     lambda c, lang, t: _report(c, lang, {"exclude_reviewers": "0" * 32}), 400,
     "not a reviewer any more"),
    ("too many files",
     lambda c, lang, t: _report(c, lang, _files(("a.txt", b"a"), ("b.txt", b"b"),
                                                ("c.txt", b"c"))), 413,
     "at most 2 files can be attached"),
    ("file too large", lambda c, lang, t: _report(c, lang, _files(("big.txt", b"x" * 2001))),
     413, "a file is larger than"),
    ("files too large together",
     lambda c, lang, t: _report(c, lang, _files(("a.txt", b"x" * 1600), ("b.txt", b"x" * 1600))),
     413, "the files together are larger than"),
    ("request too large",
     lambda c, lang, t: _report(c, lang, _files(("huge.txt", b"x" * 120_000))), 413,
     "the request is too large"),
    ("password-protected PDF",
     lambda c, lang, t: _report(c, lang, _files(("tajne.pdf", _protected_pdf()), clean=True)),
     400, "password-protected"),
    ("unreadable image",
     lambda c, lang, t: _report(c, lang, _files(("zdjecie.jpg", b"\xff\xd8\xff\xe1" + b"?" * 80),
                                                clean=True)), 400, "read as an image"),
    ("unreadable PDF",
     lambda c, lang, t: _report(c, lang, _files(("pismo.pdf", b"%PDF-1.7\n" + b"?" * 80),
                                                clean=True)), 400, "read as a PDF"),
    ("picture over the pixel limit",
     lambda c, lang, t: _report(c, lang, _files(("plan.png", _png(20)), clean=True)), 413,
     "(20 x 20 pixels"),
    ("picture too large to clean safely",
     lambda c, lang, t: _report(c, lang, _files(("mapa.png", _pixel_flood()), clean=True)), 413,
     "too large to clean safely"),
    ("form from another site",
     lambda c, lang, t: _report(c, lang, headers={"Sec-Fetch-Site": "cross-site"}), 403,
     "this form was sent from another site"),
    ("form expired (no CSRF token)",
     lambda c, lang, t: c.post(f"/report?lang={lang}", data={"details": "x"}), 400,
     "could not confirm that this form came from its own page"),
    ("not a web form", lambda c, lang, t: _raw(c, lang, b"x", "text/plain"), 415,
     "send the form as a web form"),
    ("form not UTF-8",
     lambda c, lang, t: _raw(c, lang, b"details=%FF", "application/x-www-form-urlencoded"),
     400, "the form is not valid UTF-8"),
    ("field sent twice",
     lambda c, lang, t: c.post(f"/report?lang={lang}", data=MultiDict([
         ("csrf_token", csrf(c, f"/report?lang={lang}")), ("category", "conduct"),
         ("category", "fraud"), ("details", "x")])), 400, "category was sent more than once"),
    ("too many form fields",
     lambda c, lang, t: _raw(c, lang, "&".join(f"f{i}=1" for i in range(30)).encode(),
                             "application/x-www-form-urlencoded"), 413,
     "the form has too many fields"),
    ("address not UTF-8", lambda c, lang, t: c.get(f"/report?lang={lang}&x=%FF"), 400,
     "the address is not valid UTF-8"),
    ("wrong method", lambda c, lang, t: c.get(f"/status/reply?lang={lang}"), 405,
     "cannot be used that way"),
    ("no such token", lambda c, lang, t: _status(c, lang, "", {"token": "word " * 12}), 404,
     "No report matches these words"),
    ("token too long", lambda c, lang, t: _status(c, lang, "", {"token": "w" * 300}), 400,
     "token is too long"),
    ("reply missing", lambda c, lang, t: _status(c, lang, "/reply",
                                                 {"token": t["full"], "body": ""}), 400,
     "Write your message"),
    ("reply control character",
     lambda c, lang, t: _status(c, lang, "/reply", {"token": t["full"], "body": "a\x07b"}), 400,
     "body contains control characters"),
    ("reply too long",
     lambda c, lang, t: _status(c, lang, "/reply", {"token": t["full"], "body": "y" * 61}), 400,
     "body is longer than 60 characters"),
    ("no file chosen",
     lambda c, lang, t: _status(c, lang, "/files", {"token": t["full"]}), 400,
     "choose at least one file"),
    ("too many files for the report",
     lambda c, lang, t: _status(c, lang, "/files", {"token": t["full"]}
                                | _files(("c.txt", b"c"))), 413,
     "at most 2 files can be attached to a concern"),
    ("report's files too large",
     lambda c, lang, t: _status(c, lang, "/files", {"token": t["big"]}
                                | _files(("d.txt", b"d" * 1100))), 413,
     "may not exceed"),
]


def _token(client: FlaskClient, files: dict[str, Any]) -> str:
    page = _report(client, "en", files)
    assert page.status_code == 201, refusal(page.get_data(as_text=True))
    return " ".join(re.findall(r'<span class="w">([a-z]+)</span>', page.get_data(as_text=True)))


@pytest.mark.parametrize("app_config", [LIMITS])
@pytest.mark.parametrize("lang", SHIPPED)
def test_every_refusal_a_reporter_can_meet_is_said_in_their_language(
        app: Flask, client: FlaskClient, lang: str) -> None:
    make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    tokens = {"full": _token(client, _files(("a.txt", b"a" * 1400), ("b.txt", b"b" * 1400))),
              "big": _token(client, _files(("a.txt", b"a" * 2000)))}
    found: list[str] = []
    for name, send, status, english in REFUSALS:
        control = send(client, "en", tokens)
        said_in_english = refusal(control.get_data(as_text=True))
        assert control.status_code == status, (name, said_in_english)
        assert english in said_in_english and english_words(said_in_english), \
            (name, said_in_english)
        answer = send(client, lang, tokens)
        page = answer.get_data(as_text=True)
        said = refusal(page)
        assert answer.status_code == status, (name, said)
        assert f'<html lang="{lang}"' in page, name
        if not said or english_words(said) or said_in_english in page:
            found.append(f"{name}: {said!r} (English words: {english_words(said)})")
    assert found == []


@pytest.mark.parametrize("app_config", [{"ALLOW_LATER_ATTACHMENTS": False,
                                         "STATUS_LIMIT": "2 per minute"}])
@pytest.mark.parametrize("lang", SHIPPED)
def test_later_files_turned_off_and_too_many_tries_are_said_in_their_language(
        app: Flask, client: FlaskClient, lang: str) -> None:
    make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    token = _token(client, {})
    off = _status(client, lang, "/files", {"token": token} | _files(("a.txt", b"a")))
    assert off.status_code == 403
    said = refusal(off.get_data(as_text=True))
    assert said and not english_words(said) and "turned off" not in said, said
    answers = [_status(client, lang, "", {"token": "word " * 12}) for _ in range(4)]
    assert answers[-1].status_code == 429
    said = refusal(answers[-1].get_data(as_text=True))
    assert said and not english_words(said), said


# -- the refusals in the code: no f-string, and a sentence for every one -------------------------


REPORTER_PATH = ["validation.py", "metadata.py", "cases/attachments.py", "cases/spool.py",
                 "cases/intake.py", "cases/reporter.py", "web/security.py", "web/common.py",
                 "web/uploads.py", "web/report.py", "web/shared.py", "web/errors.py"]
REFUSING = {"InvalidInput", "ApiError", "DomainError", "Refused", "NotFound", "Unavailable",
            "too_large", "CannotClean", "TooManyPixels", "AuthError", "flash"}


def _called(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _formatted(node: ast.AST) -> bool:
    """An argument whose text is assembled at run time: f-string, % or .format()."""
    return any(isinstance(n, ast.JoinedStr)
               or (isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mod)
                   and isinstance(n.left, ast.Constant) and isinstance(n.left.value, str))
               or (isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "format")
               for n in ast.walk(node))


def test_no_refusal_on_the_reporters_path_is_an_assembled_string() -> None:
    offenders = []
    for relative in REPORTER_PATH:
        tree = ast.parse((PACKAGE / relative).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called(node) in REFUSING:
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    if not (isinstance(arg, ast.Call) and _called(arg) == "Text") and \
                            _formatted(arg):
                        offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []


def _text_patterns() -> dict[str, str]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _called(node) == "Text" and node.args:
                first = node.args[0]
                assert isinstance(first, ast.Constant), f"{path}:{node.lineno}: not a literal"
                found[first.value] = f"{path.relative_to(PACKAGE)}:{node.lineno}"
    return found


def test_every_text_pattern_has_a_sentence_for_the_pages() -> None:
    patterns = _text_patterns()
    assert len(patterns) >= 20  # the walk finds them (a positive control)
    missing = {p: where for p, where in patterns.items() if p not in wording.PATTERNS}
    assert missing == {}


PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.mark.parametrize("lang", SHIPPED)
def test_every_wording_is_said_with_its_values_in_each_language(app: Flask, lang: str) -> None:
    for pattern in wording.PATTERNS:
        values: dict[str, Any] = {name: "7" for name in PLACEHOLDER.findall(pattern)}
        values |= {"code": "U+202E"} if "char" in values else {}
        values |= {"field": "details"} if "field" in values else {}
        values |= {"reason": "it is password-protected"} if "reason" in values else {}
        with app.test_request_context(f"/?lang={lang}"):
            said = i18n.translate(Text(pattern, **values))
            english = str(Text(pattern, **values))
        assert said and said != english and not english_words(said), (pattern, said)


# -- plural forms, pinned ----------------------------------------------------------------------


NUMBERS = (0, 1, 2, 3, 5, 11, 12, 22, 100, 101)
# Which msgstr[i] each number takes. Arabic: the header that Babel 2.18 writes orders forms 4
# and 5 unlike the GNU manual and Babel >= 2.19 (form 4: 100-102, 200-202...; form 5: 11-99),
# and the catalogue's entries follow it. Change the header only together with every entry.
FORM_INDEX = {
    "pl": dict(zip(NUMBERS, (2, 0, 1, 1, 2, 2, 2, 1, 2, 2), strict=True)),
    "ar": dict(zip(NUMBERS, (0, 1, 2, 3, 3, 5, 5, 5, 4, 4), strict=True)),
}
SAID = {
    ("pl", "%(num)d case is overdue: it is listed first.",
     "%(num)d cases are overdue: they are listed first."): {
        0: "0 spraw jest po terminie: są na początku listy.",
        1: "1 sprawa jest po terminie: jest na początku listy.",
        2: "2 sprawy są po terminie: są na początku listy.",
        3: "3 sprawy są po terminie: są na początku listy.",
        5: "5 spraw jest po terminie: są na początku listy.",
        11: "11 spraw jest po terminie: są na początku listy.",
        12: "12 spraw jest po terminie: są na początku listy.",
        22: "22 sprawy są po terminie: są na początku listy.",
        100: "100 spraw jest po terminie: są na początku listy.",
        101: "101 spraw jest po terminie: są na początku listy."},
    ("pl", "now %(num)d character", "now %(num)d characters"): {
        0: "teraz 0 znaków", 1: "teraz 1 znak", 2: "teraz 2 znaki", 3: "teraz 3 znaki",
        5: "teraz 5 znaków", 11: "teraz 11 znaków", 12: "teraz 12 znaków",
        22: "teraz 22 znaki", 100: "teraz 100 znaków", 101: "teraz 101 znaków"},
    ("ar", "%(num)d day", "%(num)d days"): {
        0: "0 يوم", 1: "يوم واحد", 2: "يومين", 3: "3 أيام", 5: "5 أيام", 11: "11 يومًا",
        12: "12 يومًا", 22: "22 يومًا", 100: "100 يوم", 101: "101 يوم"},
    ("ar", "Half of the cases took %(num)d day or less.",
     "Half of the cases took %(num)d days or less."): {
        0: "استغرق نصف القضايا أقل من يوم.", 1: "استغرق نصف القضايا يومًا واحدًا أو أقل.",
        2: "استغرق نصف القضايا يومين أو أقل.", 3: "استغرق نصف القضايا 3 أيام أو أقل.",
        5: "استغرق نصف القضايا 5 أيام أو أقل.", 11: "استغرق نصف القضايا 11 يومًا أو أقل.",
        12: "استغرق نصف القضايا 12 يومًا أو أقل.", 22: "استغرق نصف القضايا 22 يومًا أو أقل.",
        100: "استغرق نصف القضايا 100 يوم أو أقل.", 101: "استغرق نصف القضايا 101 يوم أو أقل."},
}


@pytest.mark.parametrize("lang", SHIPPED)
def test_the_plural_rule_of_each_language_is_pinned(lang: str) -> None:
    compiled = Translations.load(str(TRANSLATIONS), [lang])
    assert {n: compiled.plural(n) for n in NUMBERS} == FORM_INDEX[lang]


@pytest.mark.parametrize(("lang", "singular", "plural"), list(SAID))
def test_plural_entries_say_each_number_correctly(lang: str, singular: str,
                                                  plural: str) -> None:
    compiled = Translations.load(str(TRANSLATIONS), [lang])
    said = {n: compiled.ngettext(singular, plural, n) % {"num": n} for n in NUMBERS}
    assert said == SAID[(lang, singular, plural)]


# -- administrators' own words keep their own direction on a right-to-left page ----------------


def test_administrator_text_on_reporter_pages_has_its_own_direction(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    with db.new_session(app) as s:
        options.put(s, "advice", "Call the union helpline: 0100 000")
        options.put(s, "categories", [{"id": "bullying", "label": "Bullying at work"}])
        options.put(s, "units", ["North school"])
        s.commit()
    landing = client.get("/?lang=ar").get_data(as_text=True)
    assert re.search(r'<div class="[^"]*advice-text[^"]*" dir="auto">Call the union', landing)
    form = client.get("/report?lang=ar").get_data(as_text=True)
    assert '<option value="bullying" dir="auto">Bullying at work</option>' in form
    assert '<option value="North school" dir="auto">North school</option>' in form
    roster = client.get("/roster?lang=ar").get_data(as_text=True)
    assert '<td dir="auto">Ann Reviewer</td>' in roster
