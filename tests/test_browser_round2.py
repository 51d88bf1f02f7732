"""Issue 21 in Chromium (Debian's, through Playwright): the changed journeys as people walk
them. Reporter pages with JavaScript off on a phone-sized screen, in Polish and Arabic;
reviewer and administrator pages too. axe-core finds no serious or critical problem on any
new or changed page. Screenshots go to test-artifacts/round2/ (not committed).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import need
from tests.support import services
from tests.support.factories import make_reviewer, submit_concern
from tests.support.webflow import csrf, sign_in as sign_in_client

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "round2"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def live(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
def chromium() -> Iterator[Any]:
    try:
        with services.chromium() as b:
            yield b
    except services.ComponentMissing as exc:
        need("Chromium", exc)


@pytest.fixture
def organisation(app: Flask) -> dict[str, str]:
    """An administrator who set the organisation's name and emergency notice (and two
    reviewers, so concerns route)."""
    admin = make_reviewer(app, "Ada Admin", admin=True)
    make_reviewer(app, "Bob Reviewer")
    browser = sign_in_client(app, admin)
    saved = browser.post("/admin/organisation", data={
        "csrf_token": csrf(browser, "/admin/organisation"),
        "name_en": "Riverside Academy Trust",
        "emergency_en": "If a child is in danger now, call 999.",
        "name_pl": "Fundacja Riverside",
        "emergency_pl": "Jeśli dziecku grozi teraz niebezpieczeństwo, dzwoń pod 112.",
        "name_ar": "مؤسسة ريفرسايد",
        "emergency_ar": "إذا كان طفل في خطر الآن، فاتصل بالرقم 999."})
    assert saved.status_code == 302
    return admin


def serious(page: Any, javascript: bool = True) -> list[str]:
    """axe-core's serious and critical findings. A page seen with JavaScript off is checked
    as the same HTML at the same address in a page that runs axe (axe needs JavaScript)."""
    from axe_playwright_python.sync_playwright import Axe

    page.wait_for_load_state("load")  # never a page still arriving after a click
    if not javascript:
        html, url = page.content(), page.url.split("#")[0]
        checker = page.context.browser.new_page(viewport=page.viewport_size)
        checker.route(url, lambda route: route.fulfill(body=html, content_type="text/html"))
        checker.goto(url)
        try:
            return serious(checker)
        finally:
            checker.close()
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]


def shot(page: Any, name: str) -> None:
    from PIL import Image

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    raw = Image.open(io.BytesIO(page.screenshot(full_page=True)))
    raw.convert("RGB").quantize(colors=96).save(ARTIFACTS / f"{name}.png", optimize=True)


def fits(page: Any, selector: str) -> bool:
    """The element lies within the phone's width (no sideways scrolling for it)."""
    box = page.locator(selector).first.bounding_box()
    return bool(box) and box["x"] >= -1 and box["x"] + box["width"] <= page.viewport_size[
        "width"] + 1


@pytest.mark.parametrize("lang", ["pl", "ar"])
def test_a_reporter_on_a_phone_without_javascript(
        live: str, chromium: Any, organisation: dict[str, str], lang: str) -> None:
    context = chromium.new_context(java_script_enabled=False, viewport=PHONE)
    page = context.new_page()
    found: dict[str, list[str]] = {}

    page.goto(f"{live}/?lang={lang}")
    emergency = page.locator("#emergency")
    assert emergency.is_visible() and ("112" in emergency.inner_text() if lang == "pl"
                                       else "999" in emergency.inner_text())
    assert emergency.bounding_box()["y"] < PHONE["height"]  # seen without scrolling
    assert fits(page, "#emergency") and fits(page, "header .brand")
    assert page.locator("header .org-name").inner_text() in ("Fundacja Riverside",
                                                             "مؤسسة ريفرسايد")
    found["landing"] = serious(page, javascript=False)
    shot(page, f"{lang}-1-landing")

    page.goto(f"{live}/report?lang={lang}")
    assert page.locator("#emergency").is_visible()
    assert page.eval_on_selector("#category", "s => s.value") == ""  # nothing chosen for them
    assert not page.locator("#name").is_visible()  # anonymous: the name fields are away
    page.check("#named")
    assert page.locator("#name").is_visible()
    page.check("#anon")
    found["form"] = serious(page, javascript=False)
    shot(page, f"{lang}-2-form")
    page.select_option("#category", "conduct")
    page.fill("#details", "Nocny grafik pomija pokój 4." if lang == "pl"
              else "جدول الليل لا يشمل الغرفة 4.")
    page.click("button[name=step][value=review]")
    # The review page keeps its language links: pressing the other language posts the form
    # again and shows the same review in that language.
    other = "ar" if lang == "pl" else "pl"
    page.click(f"#other-languages button[lang={other}]")
    assert page.get_attribute("html", "lang") == other
    assert page.locator(".concern").inner_text().strip() != ""
    page.click(f"#other-languages button[lang={lang}]")
    assert page.get_attribute("html", "lang") == lang
    found["review"] = serious(page, javascript=False)
    page.click("button[type=submit]:not([name])")
    page.locator("span.w").nth(11).wait_for()  # the token page, not the form
    words = page.locator("span.w").all_inner_texts()
    assert len(words) == 12
    ref = page.locator("strong.ref")
    assert ref.bounding_box()["height"] < 40  # the reference stays on one line on a phone
    assert fits(page, "strong.ref") and fits(page, "#ref-hint")
    found["token"] = serious(page, javascript=False)
    shot(page, f"{lang}-3-token")

    page.goto(f"{live}/status?lang={lang}")
    page.fill("#token", " ".join(words))
    page.click("main button[type=submit]")
    page.locator("#sent-details").wait_for()
    page.wait_for_load_state("load")  # the stylesheet too: fits() measures the layout
    assert page.locator("#sent-details").is_visible()
    assert "4" in page.locator("#sent-details").inner_text()
    assert fits(page, "#sent-details") and fits(page, "dd.ref") and fits(page, "#sent")
    found["status"] = serious(page, javascript=False)
    shot(page, f"{lang}-4-status-what-you-sent")
    page.click("form.rotate button[type=submit]")
    page.locator("#rotate-confirm").wait_for()
    assert page.locator("#rotate-confirm").is_visible()  # asked first
    found["rotate confirmation"] = serious(page, javascript=False)
    shot(page, f"{lang}-5-replace-token-asks")
    page.click("#rotate-cancel button")
    page.locator("#sent-details").wait_for()
    assert page.locator("#sent-details").is_visible()  # back on the report, words unchanged
    assert {name: v for name, v in found.items() if v} == {}
    context.close()


def test_a_reviewer_sees_new_activity_and_confirms_closure(
        app: Flask, live: str, chromium: Any, organisation: dict[str, str]) -> None:
    client = app.test_client()
    receipt = submit_concern(client)
    ref, token = receipt["case_ref"], receipt["token"]
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{live}/reviewer/login")
    page.fill("#email", organisation["email"])
    page.fill("#password", organisation["password"])
    page.click("main button[type=submit]")
    found: dict[str, list[str]] = {}
    page.goto(f"{live}/reviewer/")
    assert page.locator("[data-new=unopened]").count() == 1
    page.click(f"a[href*='{ref}']")
    page.goto(f"{live}/reviewer/")
    assert page.locator("[data-new]").count() == 0
    assert client.post("/api/v1/status/messages", json={"token": token, "body": "More."}
                       ).status_code == 201
    page.goto(f"{live}/reviewer/")
    assert page.locator("[data-new=activity]").count() == 1
    assert "Message from the reporter" in page.locator(".what-changed").inner_text()
    found["inbox"] = serious(page)
    shot(page, "reviewer-1-inbox-new-activity")
    page.click(f"a[href*='{ref}']")
    page.locator("#outcome").wait_for()
    assert page.eval_on_selector("#outcome", "s => s.value") == ""
    found["case"] = serious(page)
    page.select_option("#outcome", "referred")
    page.locator("form.propose button[type=submit]").click()
    page.locator("#confirm-form").wait_for()
    assert page.locator("#confirm-form").is_visible()
    found["confirm"] = serious(page)
    shot(page, "reviewer-2-confirm-closure")
    page.locator("#confirm-form button[type=submit]").click()
    assert "closure" in page.inner_text("main").lower()
    page.goto(f"{live}/admin/organisation")
    found["organisation settings"] = serious(page)
    shot(page, "admin-1-organisation")
    page.goto(f"{live}/admin/")
    assert page.locator("#first-steps").is_visible()
    found["admin home"] = serious(page)
    shot(page, "admin-2-first-steps")
    assert {name: v for name, v in found.items() if v} == {}
