"""Accessibility in a real browser: axe-core on every page, keyboard only, 320 px, right to left.

Chromium (Debian's /usr/bin/chromium through Playwright) loads the app served
on loopback by Werkzeug in a thread. axe-core (bundled by axe-playwright-python)
needs to run its own script, so it runs in a JavaScript-enabled context; the
pages themselves have no script, and the keyboard journey runs with
JavaScript off, as in Tor Browser's Safest mode.

Screenshots of the journey go to test-artifacts/screenshots/, or to
docs/screenshots/ (the README's pictures) with WHISTLE_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import need
from tests.support import services
from tests.support.factories import make_reviewer, submit_concern

ROOT = Path(__file__).resolve().parents[1]
SHOTS = (ROOT / "docs" / "screenshots" if os.environ.get("WHISTLE_UPDATE_SCREENSHOTS") == "1"
         else ROOT / "test-artifacts" / "screenshots")
SERIOUS = ("serious", "critical")


@pytest.fixture
def live(app: Flask) -> Iterator[str]:
    """The app on a free loopback port, one request at a time, for the browser."""
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        with services.chromium() as b:
            yield b
    except services.ComponentMissing as exc:
        need("Chromium", exc)


@pytest.fixture
def people(app: Flask) -> dict[str, dict[str, str]]:
    return {"ann": make_reviewer(app, "Ann Reviewer", admin=True),
            "bob": make_reviewer(app, "Bob Reviewer")}


def serious_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    page.wait_for_load_state("load")  # never a page still arriving after a click
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v.get("impact") in SERIOUS]


def shot(page: Any, name: str, full: bool = True) -> None:
    """A screenshot as a small palette PNG (the README's pictures are committed)."""
    import io

    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    raw = Image.open(io.BytesIO(page.screenshot(full_page=full)))
    raw.convert("RGB").quantize(colors=96).save(SHOTS / f"{name}.png", optimize=True)


def no_sideways_scroll(page: Any) -> bool:
    # Measured once the page and its stylesheet have loaded: on a busy machine the text can be
    # in place before the CSS that wraps it is applied.
    page.wait_for_load_state("load")
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def sign_in(page: Any, base: str, who: dict[str, str]) -> None:
    page.goto(f"{base}/reviewer/login")
    page.fill("#email", who["email"])
    page.fill("#password", who["password"])
    page.click("button[type=submit] >> text=Sign in")


def report_through_the_form(page: Any, base: str, lang: str = "en") -> list[str]:
    """Fill the form, review it, send it; returns the 12 words (the page stays on the token)."""
    page.goto(f"{base}/report?lang={lang}")
    page.fill("#details", "The night rota was changed so that nobody checks room 4.")
    page.select_option("#category", "conduct")  # no category is preselected (issue 21)
    page.click("button[name=step][value=review]")
    page.click("button[type=submit]:not([name])")
    page.locator("span.w").nth(11).wait_for()  # the token page, not the form
    page.wait_for_load_state("load")  # the stylesheet too: callers measure the layout
    words: list[str] = page.locator("span.w").all_inner_texts()
    assert len(words) == 12
    return words


# -- axe-core on every page ------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "ar", "pl"])
def test_reporter_pages_have_no_serious_accessibility_violations(
        live: str, browser: Any, people: dict[str, dict[str, str]], lang: str) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    checked: dict[str, list[str]] = {}

    def check(name: str) -> None:
        checked[name] = serious_violations(page)

    for path in ("/", "/report", "/status", "/no-such-page"):
        page.goto(f"{live}{path}?lang={lang}")
        check(path)
    page.goto(f"{live}/report?lang={lang}")
    page.fill("#details", "Something worrying.")
    page.select_option("#category", "conduct")  # no category is preselected (issue 21)
    page.click("button[name=step][value=review]")
    check("review")
    page.click("button[type=submit]:not([name])")
    page.locator("span.w").nth(11).wait_for()  # the token page, not the form
    check("token")
    words = page.locator("span.w").all_inner_texts()
    positions = [int(p) for p in page.get_attribute("input[name=positions]", "value").split()]
    page.fill("#word-1", "wrong")
    page.fill("#word-2", "words")
    page.click("section.token-check button[type=submit]")
    check("token check refused")
    page.fill("#word-1", words[positions[0] - 1])
    page.fill("#word-2", words[positions[1] - 1])
    page.click("section.token-check button[type=submit]")
    check("token kept")
    page.goto(f"{live}/status?lang={lang}")
    page.fill("#token", "not the right words")
    page.click("main button[type=submit]")
    check("status refused")
    page.fill("#token", " ".join(words))
    page.click("main button[type=submit]")
    check("status")
    assert {name: v for name, v in checked.items() if v} == {}
    assert page.get_attribute("html", "dir") == ("rtl" if lang == "ar" else "ltr")


def test_reviewer_and_administrator_pages_have_no_serious_accessibility_violations(
        app: Flask, live: str, browser: Any, people: dict[str, dict[str, str]]) -> None:
    client = app.test_client()
    refs = [submit_concern(client)["case_ref"] for _ in range(6)]
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{live}/reviewer/login")
    checked = {"login": serious_violations(page)}
    sign_in(page, live, people["ann"])
    for path in ("/reviewer/", "/reviewer/?sort=status", f"/reviewer/cases/{refs[0]}",
                 "/reviewer/stats", "/reviewer/stats?lang=ar", "/reviewer/account",
                 "/reviewer/account/totp", "/admin/", "/admin/settings", "/admin/reviewers/new",
                 f"/admin/reviewers/{people['bob']['id']}", "/reviewer/admin-log", "/reviewer/admin-log?lang=ar",
                 "/reviewer/?lang=ar"):
        page.goto(f"{live}{path}")
        assert page.url.endswith(path), (path, page.url)
        checked[path] = serious_violations(page)
    assert {name: v for name, v in checked.items() if v} == {}


# -- keyboard only, JavaScript off -------------------------------------------------------------

FOCUSED = """() => { const e = document.activeElement; const s = getComputedStyle(e);
  return {tag: e.tagName, id: e.id, name: e.getAttribute('name'), value: e.value || '',
          text: (e.innerText || '').trim(), outline: s.outlineStyle,
          width: parseFloat(s.outlineWidth) || 0}; }"""


def tab_to(page: Any, wanted: Callable[[dict[str, Any]], bool], limit: int = 120
           ) -> dict[str, Any]:
    """Press Tab until ``wanted`` holds for the focused element; every stop shows its focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused: dict[str, Any] = page.evaluate(FOCUSED)
        if focused["tag"] in ("A", "BUTTON", "INPUT", "SELECT", "TEXTAREA"):
            assert focused["outline"] != "none" and focused["width"] >= 2, focused
        if wanted(focused):
            return focused
    raise AssertionError("never reached by Tab")


def test_the_reporter_journey_works_with_the_keyboard_alone_and_javascript_off(
        live: str, people: dict[str, dict[str, str]]) -> None:
    try:
        with services.chromium(java_script_enabled=False) as browser:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            _keyboard_journey(page, live)
    except services.ComponentMissing as exc:
        need("Chromium", exc)


def _keyboard_journey(page: Any, base: str) -> None:
    page.goto(base + "/")
    first = tab_to(page, lambda f: True)
    assert first["text"] == "Skip to content"
    tab_to(page, lambda f: f["tag"] == "A" and f["text"] == "Report a concern")
    page.keyboard.press("Enter")
    page.wait_for_url("**/report")
    tab_to(page, lambda f: f["id"] == "category")
    page.keyboard.press("ArrowDown")  # no category is preselected (issue 21): choose one
    tab_to(page, lambda f: f["id"] == "details")
    page.keyboard.type("The night rota leaves room 4 unchecked.")
    tab_to(page, lambda f: f["name"] == "step" and f["value"] == "review")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Check before sending")
    tab_to(page, lambda f: f["tag"] == "BUTTON" and f["text"] == "Send my concern")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Your concern was received")
    page.locator("span.w").nth(11).wait_for()  # all 12 words, not a page still arriving
    words = page.locator("span.w").all_inner_texts()
    positions = [int(p) for p in page.get_attribute("input[name=positions]", "value").split()]
    tab_to(page, lambda f: f["id"] == "word-1")
    page.keyboard.type(words[positions[0] - 1])
    tab_to(page, lambda f: f["id"] == "word-2")
    page.keyboard.type(words[positions[1] - 1])
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Your copy is right")
    tab_to(page, lambda f: f["tag"] == "A" and f["text"] == "Check a report")
    page.keyboard.press("Enter")
    page.wait_for_url("**/status")
    tab_to(page, lambda f: f["id"] == "token")
    page.keyboard.type(" ".join(words))
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Your report")
    assert "We will acknowledge your report by" in page.inner_text("#deadline")


# -- small screens, right to left, and the pictures for the README ------------------------------


def test_reporter_pages_fit_a_320_pixel_screen_without_sideways_scrolling(
        live: str, browser: Any, people: dict[str, dict[str, str]]) -> None:
    page = browser.new_page(viewport={"width": 320, "height": 640})
    for lang in ("en", "ar"):
        for path in ("/", "/report", "/status"):
            page.goto(f"{live}{path}?lang={lang}")
            assert no_sideways_scroll(page), (lang, path)
        report_through_the_form(page, live, lang)
        assert no_sideways_scroll(page), (lang, "token")
    shot(page, "token-phone-320", full=False)


def test_right_to_left_pages_put_the_start_on_the_right(
        live: str, browser: Any, people: dict[str, dict[str, str]]) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(f"{live}/report?lang=ar")
    main = page.locator("main").bounding_box()
    assert main
    # The label (display: block) is a line of text that starts at the right of the content.
    text_right = page.evaluate("""() => { const r = document.createRange();
        r.selectNodeContents(document.querySelector('label[for=details]'));
        const b = r.getBoundingClientRect(); return [b.left, b.right]; }""")
    assert (main["x"] + main["width"]) - text_right[1] < 40, (main, text_right)
    assert text_right[0] - main["x"] > 100, (main, text_right)
    report_through_the_form(page, live, "ar")
    boxes = [page.locator("ol.token li").nth(i).bounding_box() for i in (0, 1)]
    assert boxes[0] and boxes[1]
    assert boxes[0]["x"] > boxes[1]["x"]  # word 1 is to the right of word 2
    shot(page, "token-arabic")


def test_screenshots_of_the_reporter_journey_and_the_reviewer_inbox(
        app: Flask, live: str, browser: Any, people: dict[str, dict[str, str]]) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    page.goto(live + "/")
    shot(page, "1-landing")
    page.goto(live + "/report")
    page.select_option("#category", "conduct")
    page.fill("#details", "The night rota was changed so that nobody checks room 4 after 22:00. "
              "It started in March.")
    page.select_option("#category", "conduct")  # no category is preselected (issue 21)
    shot(page, "2-report-form")
    page.click("button[name=step][value=review]")
    shot(page, "3-review-before-sending")
    page.click("button[type=submit]:not([name])")
    page.locator("span.w").nth(11).wait_for()  # the token page, not the form
    words = page.locator("span.w").all_inner_texts()
    assert len(words) == 12  # the journey really reached the token page
    shot(page, "4-token")
    page.emulate_media(media="print")
    shot(page, "4b-token-printed")
    page.emulate_media(media="screen")
    page.goto(live + "/status")
    page.fill("#token", " ".join(words))
    page.click("main button[type=submit]")
    assert page.locator("main").inner_text().count(" ") > 5 and "/status" in page.url
    assert page.locator("ol.token").count() == 0  # the status page, not the token again
    shot(page, "5-status")
    client = app.test_client()
    refs = [submit_concern(client, category=category)["case_ref"] for category in (
        "fraud", "fraud", "conduct", "fraud", "fraud", "fraud", "patient-safety")]
    sign_in(page, live, people["ann"])
    page.set_viewport_size({"width": 1280, "height": 760})
    page.goto(live + "/reviewer/")
    inbox = page.content()
    assert all(ref in inbox for ref in refs)  # two reviewers: every case is routed to Ann
    shot(page, "6-reviewer-inbox")
    page.goto(live + "/reviewer/stats")
    assert page.locator("main svg, main table").count() >= 1  # a chart or its table
    shot(page, "7-statistics")
    assert all((SHOTS / f"{n}.png").stat().st_size > 1000 for n in (
        "1-landing", "4-token", "6-reviewer-inbox", "7-statistics"))
