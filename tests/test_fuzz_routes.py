"""Issue 20, item 4: no input on any route answers 5xx, anonymous or signed in.

The routes come from ``app.url_map`` (as ``tests/support/probes.py`` builds them), so a
route added later is fuzzed too. Every path parameter, the query parameters and the form
and JSON fields the web layer reads (found by reading ``whistle/web``'s source for the
names it looks up) get Unicode digits (superscripts, Arabic-Indic, Devanagari,
mathematical), fullwidth digits and letters, other look-alikes (Cyrillic, Kelvin sign,
dotless and dotted i, ligatures), invisible characters, huge and negative numbers, NUL,
and (in JSON, the only place they can be sent) lone surrogates; JSON fields also get
numbers too large for a float, lists, objects and nulls. Every answer must be below 500.

Hypothesis runs derandomized (a fixed seed from each test's name) with no example
database, so a failure replays exactly; example counts are kept small for two cores.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import BuildError

from tests.support.factories import login, make_reviewer, submit_concern
from tests.support.probes import csrf, html_login

ROOT = Path(__file__).resolve().parent.parent

SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
NASTY_DIGITS = ("²", "³", "¹²", "² 3", "1 ²", "٣", "۳", "३", "০", "๓", "߁", "᠑", "𝟏", "𝟘",
                "①", "Ⅻ", "ⅻ", "½", "０", "１", "１２", "９９", "-１")
LOOKALIKES = ("ｆｏｏ", "ＷＨ", "Ａ", "К", "К", "а", "е", "о", "р", "ı", "İ", "ſ", "ß", "ﬁ", "Ω",
              "\u0301", "1\u0301", "\ufeff1", "1\u200b", "\u202e1", "Ⓐ")
NUMBERS = ("-1", "-0", "+1", " 1", "1 ", "1_000", "0x10", "0o7", "1e309", "-1e309", "NaN",
           "inf", "-inf", "00000000000001", "9" * 30, "-" + "9" * 40, "9" * 5000,
           "18446744073709551616", "4294967296", "2147483648", "-2147483649", "0.5", "1,5")
OTHER = ("", " ", "\x00", "1\x00", "a\x00b", "\t", "\r\n", "%00", "%", "..", "../..", "/",
         "\\", "'", '"', "<", "&", "?", "#", "*", "null", "true", "[]", "{}", "x" * 3000)
FIXED = NASTY_DIGITS + LOOKALIKES + NUMBERS + OTHER
FIELD_VALUES = ("²", "² 3", "1 ²", "٣", "٣ ٤", "１", "１ ２", "𝟏", "①", "Ⅻ", "-1", "-0",
                "9" * 30, "-" + "9" * 40, "9" * 5000, "1e309", "NaN", "0x10", "\x00", "ｆｏｏ",
                "К", "ı")
# Inbox cursors (``day.case_ref``) at the ends of the calendar and in other spellings.
CURSORS = ("9999-12-31.x", "0001-01-01.x", "2026-W01-1.x", "20260101.x", "2026-01-01.٣",
           "２０２６-01-01.x", "2026-01-01." + "x" * 80, "9999-12-31.WH-ZZZZ")
SURROGATES = ("\ud800", "x\udc00", "1\udfff2")

ALPHABET = st.sampled_from(
    list(SUPERSCRIPTS) + list("٠١٢٣٤٥٦٧٨٩") + list("０１２３４５６７８９ＡＢＣａｂｃ")
    + list("0123456789-+. _eExX") + ["𝟏", "①", "Ⅻ", "К", "а", "\x00", "\u200b", "\ufeff"])
TEXT = st.one_of(st.sampled_from(FIXED), st.text(ALPHABET, max_size=24),
                 st.integers().map(str))
JSON_VALUE = st.one_of(
    TEXT, st.sampled_from(SURROGATES), st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.floats(allow_nan=False), st.booleans(), st.none(),
    st.lists(TEXT, max_size=3), st.dictionaries(TEXT, TEXT, max_size=2))


def field_names() -> list[str]:
    """Every name the web layer reads from a form, a query string or a JSON body."""
    names: set[str] = set()
    for source in sorted((ROOT / "whistle" / "web").glob("*.py")):
        text = source.read_text()
        names.update(re.findall(r"""\.get\(\s*["']([a-z][a-z0-9_]*)["']""", text))
        names.update(re.findall(r"""(?:form|data|args|fields|body)\[["']([a-z][a-z0-9_]*)["']\]""",
                                text))
    return sorted(names)


FIELDS = field_names()
QUERY = ("after", "page", "per_page", "status", "sort", "lang", "code", "token")


def rules(app: Flask) -> list[tuple[str, str, tuple[str, ...]]]:
    """(endpoint, method, path arguments) for every route and method, static files aside."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, tuple(sorted(rule.arguments))))
    return sorted(out)


def build(app: Flask, endpoint: str, method: str, values: dict[str, str]) -> str | None:
    """The path for ``endpoint`` with ``values`` in its parameters (percent-encoded as a
    browser would), or None if the URL map cannot place them (a converter's own refusal)."""
    adapter = app.url_map.bind("localhost")
    try:
        path = adapter.build(endpoint, {k: f"@@{k}@@" for k in values}, method=method)
    except BuildError:
        return None
    for key, value in values.items():
        path = path.replace(quote(f"@@{key}@@", safe="@/"), quote(value, safe=""))
        path = path.replace(f"@@{key}@@", quote(value, safe=""))
    return path


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """Two reviewers, one case; a signed-in reviewer (page session and API bearer)."""
    ann = make_reviewer(app, "Ann Reviewer", admin=True)
    bob = make_reviewer(app, "Bob Reviewer")
    receipt = submit_concern(client, details="A concern to fuzz around.")
    web = html_login(app, ann)
    return {"case_ref": receipt["case_ref"], "token": receipt["token"], "bob": bob["id"],
            "bearer": login(app.test_client(), ann), "web": web,
            "web_csrf": csrf(web, "/reviewer/account"), "anon": app.test_client(),
            "anon_csrf": None}


def valid_values(world: dict[str, Any]) -> dict[str, str]:
    return {"case_ref": world["case_ref"], "reviewer_id": world["bob"],
            "attachment_id": "0" * 32, "change_id": "0" * 32, "filename": "style.css",
            "code": "abc", "token": "x"}


def lookalike_ref(case_ref: str) -> list[str]:
    """The real case reference written with look-alike characters."""
    full = case_ref.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-"})
    return [full, case_ref.replace("W", "Ԝ").replace("H", "Н"), case_ref.lower(),
            case_ref.replace("-", "‐"), case_ref + "\x00", " " + case_ref,
            case_ref.replace("1", "١").replace("2", "²")]


SKIP_SIGNED_IN = re.compile(r"logout|sign_out|signout")


def who(world: dict[str, Any], signed_in: bool) -> tuple[FlaskClient, dict[str, str], str]:
    """The client, its headers and its CSRF token (fetched once, for the anonymous client)."""
    if signed_in:
        return world["web"], world["bearer"], world["web_csrf"]
    if world["anon_csrf"] is None:
        world["anon_csrf"] = csrf(world["anon"], "/report")
    return world["anon"], {}, world["anon_csrf"]


def fresh_anonymous(app: Flask, world: dict[str, Any]) -> None:
    """A new anonymous visitor: a route that ends the session (signing out clears it, and
    its CSRF secret with it) must not turn every later form post into a CSRF refusal."""
    world["anon"], world["anon_csrf"] = app.test_client(), None


def assert_still_signed_in(world: dict[str, Any]) -> None:
    assert world["web"].get("/reviewer/").status_code == 200
    assert world["web"].get("/api/v1/cases", headers=world["bearer"]).status_code == 200


def send(app: Flask, world: dict[str, Any], signed_in: bool, endpoint: str, method: str,
         path_values: dict[str, str], query: dict[str, str], fields: dict[str, Any],
         as_json: bool) -> tuple[str, int]:
    client, headers, token = who(world, signed_in)
    path = build(app, endpoint, method, path_values)
    if path is None:
        return "", 0
    kwargs: dict[str, Any] = {"headers": headers}
    if query:
        kwargs["query_string"] = query
    if method != "GET":
        if as_json or path.startswith("/api/"):
            kwargs["data"] = json.dumps(fields)
            kwargs["content_type"] = "application/json"
        else:
            # A valid CSRF token, so that the handler reads the fields.
            kwargs["data"] = {"csrf_token": token} | {k: str(v) for k, v in fields.items()}
    response = client.open(path, method=method, **kwargs)
    return path, response.status_code


def encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


# -- the two inputs the issue found, and every other number the code reads -----------------


def test_the_two_unicode_digit_inputs_get_400(app: Flask, world: dict[str, Any]) -> None:
    client, bearer = world["web"], world["bearer"]
    for after in ("²", "٣", "１", "𝟏", "-1", "1e3", "9" * 13):
        for path in ("/api/v1/admin/log", "/api/v1/admin/checkpoints"):
            response = client.get(path, query_string={"after": after}, headers=bearer)
            assert response.status_code == 400, (path, after)
            assert response.get_json()["error"] == "invalid_input"
    assert client.get("/api/v1/admin/log?after=2", headers=bearer).status_code == 200
    anon = app.test_client()
    token = csrf(anon, "/report")
    for positions in ("² 3", "3 ²", "٣ ٤", "１ ２", "1 1", "0 3", "13 1", "-1 2", "1", "1 2 3"):
        response = anon.post("/report/kept", data={
            "csrf_token": token, "token": world["token"], "positions": positions,
            "word_1": "a", "word_2": "b"})
        assert response.status_code == 400, positions
    for page in ("²", "٣", "１", "0", "-1", "1000001", "9" * 40):
        for name in ("page", "per_page"):
            response = client.get("/api/v1/cases", query_string={name: page}, headers=bearer)
            assert response.status_code == 400, (name, page)
            assert client.get("/reviewer/", query_string={name: page}).status_code == 400


def test_a_one_time_code_in_other_digits_is_refused_not_a_crash() -> None:
    import datetime as dt
    from types import SimpleNamespace

    from whistle.people import twofactor

    reviewer: Any = SimpleNamespace(totp_last_step=0)
    for otp in ("²²²²²²", "١٢٣٤٥٦", "１２３４５６", "12345６", "-12345", " 12345"):
        assert twofactor._match_totp_step(reviewer, "JBSWY3DPEHPK3PXP", otp,
                                          dt.datetime(2026, 1, 1)) is None


# -- every route, every parameter, every nasty value: a fixed sweep -------------------------


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "reviewer"])
def test_every_path_parameter_and_query_number_never_answers_5xx(
        app: Flask, world: dict[str, Any], signed_in: bool) -> None:
    values = valid_values(world)
    failures: list[tuple[Any, ...]] = []
    nasty = [v for v in FIXED if encodable(v)] + lookalike_ref(world["case_ref"])
    for endpoint, method, arguments in rules(app):
        if signed_in and SKIP_SIGNED_IN.search(endpoint):
            continue
        fresh_anonymous(app, world)
        for argument in arguments:
            for value in nasty:
                path, status = send(app, world, signed_in, endpoint, method,
                                    {a: values.get(a, "x") for a in arguments} | {argument: value},
                                    {}, {}, False)
                if status >= 500:
                    failures.append((method, path, status))
        if method == "GET":
            for name in ("after", "page", "per_page"):
                for value in NASTY_DIGITS + NUMBERS + (CURSORS if name == "after" else ()):
                    path, status = send(app, world, signed_in, endpoint, method,
                                        {a: values.get(a, "x") for a in arguments},
                                        {name: value}, {}, False)
                    if status >= 500:
                        failures.append((method, path, name, value, status))
    assert not failures, failures[:20]
    if signed_in:
        assert_still_signed_in(world)


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "reviewer"])
def test_every_field_of_every_post_route_never_answers_5xx(
        app: Flask, world: dict[str, Any], signed_in: bool) -> None:
    """Every field name the web layer reads, a third of them at a time, with one nasty
    value; the reporter's token stays valid, so that a check on the token does not hide
    what comes after it (the generated test below sends nasty tokens)."""
    values = valid_values(world)
    failures: list[tuple[Any, ...]] = []
    oversized: list[tuple[str, int]] = []
    sent = 0
    for endpoint, method, arguments in rules(app):
        if method == "GET" or (signed_in and SKIP_SIGNED_IN.search(endpoint)):
            continue
        path_values = {a: values.get(a, "x") for a in arguments}
        fresh_anonymous(app, world)
        for value in FIELD_VALUES:
            # In groups, under the limit on form fields (MAX_FORM_PARTS); the API gets the
            # same fields as JSON (send() chooses by path).
            for group in (FIELDS[i::3] for i in range(3)):
                fields: dict[str, Any] = dict.fromkeys(group, value)
                path, status = send(app, world, signed_in, endpoint, method, path_values, {},
                                    fields | {"token": world["token"]}, False)
                sent += 1
                if status >= 500:
                    failures.append((method, path, value, group, status))
                elif status in (413, 415):
                    oversized.append((path, status))
    assert sent > 500 and not failures, failures[:20]
    if signed_in:
        assert_still_signed_in(world)
    # The fields were read, not refused as a whole (only multipart-only routes say 415).
    assert all(status == 415 and "attachments" in path for path, status in oversized), \
        sorted(set(oversized))[:10]


# -- every route with generated mixes of parameters and fields (Hypothesis) -----------------


def fuzz_case(app: Flask) -> st.SearchStrategy[Any]:
    return st.tuples(
        st.sampled_from(rules(app)),
        st.dictionaries(st.sampled_from(QUERY), TEXT.filter(encodable), max_size=3),
        st.dictionaries(st.sampled_from(FIELDS), JSON_VALUE, min_size=1, max_size=6),
        st.booleans())


FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


def run_fuzz(app: Flask, world: dict[str, Any], signed_in: bool, case: Any,
             data: st.DataObject) -> None:
    (endpoint, method, arguments), query, fields, as_json = case
    if signed_in and SKIP_SIGNED_IN.search(endpoint):
        return
    fresh_anonymous(app, world)
    values = valid_values(world)
    path_values = {a: data.draw(st.one_of(st.just(values.get(a, "x")), TEXT.filter(encodable)),
                                label=a) for a in arguments}
    if not as_json and method != "GET":
        # A form can only carry text, and text that UTF-8 can encode.
        fields = {k: v for k, v in fields.items() if isinstance(v, str) and encodable(v)}
    path, status = send(app, world, signed_in, endpoint, method, path_values, query, fields,
                        as_json)
    assert status < 500, (method, path, query, fields, as_json, status)


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "reviewer"])
def test_generated_parameters_and_fields_never_answer_5xx(
        app: Flask, world: dict[str, Any], signed_in: bool) -> None:
    @FUZZ
    @given(case=fuzz_case(app), data=st.data())
    def check(case: Any, data: st.DataObject) -> None:
        run_fuzz(app, world, signed_in, case, data)

    check()
    if signed_in:
        assert_still_signed_in(world)
