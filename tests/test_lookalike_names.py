"""Issue 18, item 7: no look-alike names.

Reviewer names, units, categories and the reporter's identity fields refuse zero-width and
bidirectional formatting characters (400 naming the field, nothing stored) and are stored
NFC-normalised; Polish and Arabic names pass. Free text refuses only the two overrides.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, select, text

from tests.support.factories import PASSWORD, make_reviewer, submit_concern
from tests.support.webflow import csrf, post_form, sign_in
from whistle import validation
from whistle.store import db
from whistle.store.models import Concern, Reviewer

# One of each kind the issue names: an invisible one and one that turns the text around.
VARIANTS = {"zero-width": "\u200b", "bidi-override": "\u202e"}
# Every character the issue lists by name; the rule refuses all of category Cf besides.
REFUSED = ["\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
           "\u2066", "\u2067", "\u2068", "\u2069", "\u200b", "\u200c", "\u200d", "\u2060",
           "\ufeff", "\u180e", "\u00ad", "\u3164", "\u115f", "\u1160", "\uffa0", "\u034f"]
REFUSAL = "contains an invisible or text-direction character"
POLISH, ARABIC = "Łucja Żółć", "ليلى"
DECOMPOSED, COMPOSED = "Zo\u0065\u0301 Adams", "Zo\u00e9 Adams"


@pytest.fixture
def admin(app: Flask) -> dict[str, str]:
    return make_reviewer(app, "Ada Admin", admin=True, reviews=False)


def rows(app: Flask) -> dict[str, int]:
    """How many rows each table holds: 'stores nothing' means none of these moves."""
    engine = db.engine_for(app)
    with engine.connect() as conn:
        return {t: conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()  # noqa: S608
                for t in inspect(engine).get_table_names()}


def names(app: Flask) -> set[str]:
    with db.new_session(app) as s:
        return set(s.scalars(select(Reviewer.name)))


def post_with_token(browser: FlaskClient, path: str, data: dict[str, Any],
                    token_from: str) -> tuple[dict[str, int], Any]:
    """Load the page for its CSRF token first, so that the row count before is taken after
    anything loading a page may write; returns (counts before the POST, response)."""
    token = csrf(browser, token_from)
    before = rows(browser.application)
    return before, browser.post(path, data={"csrf_token": token} | data)


# -- reviewer names ------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_the_admin_enrol_form_refuses_a_lookalike_name_and_stores_nothing(
        app: Flask, admin: dict[str, str], variant: str) -> None:
    browser = sign_in(app, admin)
    before, response = post_with_token(browser, "/admin/reviewers", {
        "name": f"Ann Rev{variant}iewer", "email": "ann@example.org",
        "password": "typed by the admin!"}, "/admin/reviewers/new")
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page
    assert f"name {REFUSAL}" in page
    assert rows(app) == before
    assert names(app) == {"Ada Admin"}


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_reviewer_add_on_the_command_line_refuses_a_lookalike_name_and_stores_nothing(
        app: Flask, variant: str) -> None:
    before = rows(app)
    result = app.test_cli_runner().invoke(args=[
        "reviewer", "add", "--name", f"Ann Rev{variant}iewer", "--email", "ann@example.org",
        "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code != 0, result.output
    assert f"name {REFUSAL}" in result.output
    assert rows(app) == before


def test_first_run_setup_refuses_a_lookalike_reviewer_name_without_using_up_the_code(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    result = app.test_cli_runner().invoke(args=[
        "init", "--recovery-out", str(tmp_path / "unused-recovery.txt")])
    found = re.search(r"One-time setup code for /setup .*: ([0-9a-f]{6}(?:-[0-9a-f]{6}){3})",
                      result.output)
    assert found, result.output
    form = {"code": found.group(1), "name": "Ada Admin", "email": "ada@example.org",
            "password": "ada's own passphrase", "r1_name": "Ann Reviewer",
            "r1_email": "ann@example.org"}
    for variant in VARIANTS.values():
        before, response = post_with_token(
            client, "/setup", form | {"r1_name": f"Ann Rev{variant}iewer"}, "/setup")
        assert response.status_code == 400, response.get_data(as_text=True)
        assert f"name {REFUSAL}" in response.get_data(as_text=True)
        assert rows(app) == before
    done = post_form(client, "/setup", form | {"r1_name": POLISH}, "/setup")
    assert done.status_code == 201, done.get_data(as_text=True)
    assert names(app) == {"Ada Admin", POLISH}


def test_reviewer_names_are_stored_composed_and_polish_and_arabic_names_pass(
        app: Flask, admin: dict[str, str]) -> None:
    browser = sign_in(app, admin)
    for n, name in enumerate([DECOMPOSED, POLISH, ARABIC]):
        response = post_form(browser, "/admin/reviewers", {
            "name": name, "email": f"person{n}@example.org",
            "password": "typed by the admin!"}, "/admin/reviewers/new")
        assert response.status_code == 201, response.get_data(as_text=True)
    result = app.test_cli_runner().invoke(args=[
        "reviewer", "add", "--name", "Ren\u0065\u0301e Ortiz", "--email", "renee@example.org",
        "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert names(app) == {"Ada Admin", COMPOSED, POLISH, ARABIC, "Ren\u00e9e Ortiz"}
    assert DECOMPOSED not in names(app)


# -- units and categories -----------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("field", ["units", "categories"])
def test_the_settings_form_refuses_lookalike_units_and_categories_and_stores_nothing(
        app: Flask, client: FlaskClient, admin: dict[str, str], field: str,
        variant: str) -> None:
    browser = sign_in(app, admin)
    offered = client.get("/api/v1/intake").get_json()
    form = {"categories": "fraud | Fraud or theft\nconduct | Conduct",
            "units": "North school\nSouth clinic"}
    form[field] = {"units": f"North school\nSouth{variant} clinic",
                   "categories": f"fraud | Fraud or theft\nconduct | Con{variant}duct"}[field]
    before, response = post_with_token(browser, "/admin/settings", form, "/admin/settings")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert f"{field} {REFUSAL}" in response.get_data(as_text=True)
    assert rows(app) == before
    after = client.get("/api/v1/intake").get_json()
    assert (after["units"], after["categories"]) == (offered["units"], offered["categories"])


def test_units_and_category_labels_are_stored_composed_and_polish_and_arabic_pass(
        app: Flask, client: FlaskClient, admin: dict[str, str]) -> None:
    make_reviewer(app)
    make_reviewer(app)
    browser = sign_in(app, admin)
    saved = post_form(browser, "/admin/settings", {
        "categories": f"fraud | Oszustwo w dziale {POLISH}\nconduct | {DECOMPOSED}",
        "units": f"{DECOMPOSED} clinic\nDział Łódź\nقسم الصحة"}, "/admin/settings")
    assert saved.status_code == 302, saved.get_data(as_text=True)
    offered = client.get("/api/v1/intake").get_json()
    assert offered["units"] == [f"{COMPOSED} clinic", "Dział Łódź", "قسم الصحة"]
    assert [c["label"] for c in offered["categories"]] == [f"Oszustwo w dziale {POLISH}",
                                                            COMPOSED]
    # The reporter's unit is compared composed: sent decomposed, it is the same unit.
    receipt = submit_concern(client, category="conduct", unit=f"{DECOMPOSED} clinic")
    with db.new_session(app) as s:
        concern = s.get(Concern, receipt["case_ref"])
        assert concern is not None and concern.unit == f"{COMPOSED} clinic"


# -- the reporter's identity and unit ------------------------------------------------------

IDENTITY = {"name": "Nia Nurse", "role": "Ward nurse", "contact": "nia@example.org"}


def concern_with(field: str, value: str) -> dict[str, Any]:
    body: dict[str, Any] = {"category": "conduct", "details": "Something worrying happened.",
                            "unit": "Health", "identity": dict(IDENTITY)}
    if field.startswith("identity."):
        body["identity"][field.split(".", 1)[1]] = value
    else:
        body[field] = value
    return body


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("field,clean", [
    ("identity.name", "Nia Nurse"), ("identity.role", "Ward nurse"),
    ("identity.contact", "nia@example.org"), ("unit", "Health"), ("category", "conduct")])
def test_a_concern_with_a_lookalike_identity_unit_or_category_gets_400_and_stores_nothing(
        app: Flask, client: FlaskClient, field: str, clean: str, variant: str) -> None:
    make_reviewer(app)
    make_reviewer(app)
    before = rows(app)
    response = client.post("/api/v1/concerns",
                           json=concern_with(field, clean[:2] + variant + clean[2:]))
    assert response.status_code == 400, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["field"] == field and f"{field} {REFUSAL}" in answer["message"]
    assert rows(app) == before
    assert client.post("/api/v1/concerns", json=concern_with(field, clean)).status_code == 201


def test_a_reporter_may_give_a_polish_or_arabic_name(app: Flask, client: FlaskClient) -> None:
    make_reviewer(app)
    make_reviewer(app)
    for name in (POLISH, ARABIC, DECOMPOSED):
        response = client.post("/api/v1/concerns", json=concern_with("identity.name", name))
        assert response.status_code == 201, response.get_data(as_text=True)


# -- free text ----------------------------------------------------------------------------


def test_free_text_refuses_only_the_overrides_and_keeps_what_people_type_and_paste(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app)
    make_reviewer(app)
    for override in ("\u202e", "\u202d"):
        before = rows(app)
        response = client.post("/api/v1/concerns", json={
            "category": "conduct", "details": f"He wrote: I did {override}ton approve it"})
        assert response.status_code == 400 and response.get_json()["field"] == "details"
        assert rows(app) == before
    pasted = ("[12/03/2024, 09:14] \u202a+44 7700 900123\u202c: \u200e<attached: photo.jpg>\n"
              "\u2068Nia\u2069 said \u05e9\u05dc\u05d5\u05dd \u200f and "
              "\U0001f469\u200d\U0001f4bb; \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645\n"
              f"{ARABIC}, {POLISH}, {DECOMPOSED}\u00ad")
    assert submit_concern(client, details=pasted)["status"] == "received"


# -- the rule itself ----------------------------------------------------------------------

# Text around a refused character: no control characters (refused by another rule), so the
# refusal seen is this one.
AROUND = st.text(alphabet=st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"],
                                        exclude_characters="\ufffd"), max_size=30)
REFUSED_CHARS = st.one_of(st.sampled_from(REFUSED), st.characters(categories=["Cf"]))
# Letters, digits and spaces, but for the four Hangul fillers: letters (Lo) drawn as nothing,
# refused on purpose (whistle/validation.py).
PLAIN = st.text(alphabet=st.characters(categories=["L", "N", "Zs"],
                                       exclude_characters="\u3164\u115f\u1160\uffa0"),
                max_size=60)


@given(before=AROUND, hidden=REFUSED_CHARS, after=AROUND)
@settings(max_examples=300, deadline=None)
def test_any_text_holding_a_refused_character_is_refused(before: str, hidden: str,
                                                         after: str) -> None:
    with pytest.raises(validation.InvalidInput) as refused:
        validation.line(before + hidden + after, "identity.name", 1000)
    assert refused.value.field == "identity.name" and 400 <= refused.value.status < 500
    assert f"identity.name {REFUSAL}" in refused.value.message


@given(value=PLAIN)
@settings(max_examples=300, deadline=None)
def test_letters_digits_and_spaces_pass_and_come_back_nfc(value: str) -> None:
    out = validation.line(value, "name", 1000)
    if not value.strip():
        assert out is None
        return
    assert out == unicodedata.normalize("NFC", value).strip()
    assert out is not None and unicodedata.is_normalized("NFC", out)
