"""The inbox's keyset cursor (``?after=``): the same pages as ``?page=``, in constant time."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import login, make_reviewer, submit_concern


def _walk(client: FlaskClient, headers: dict[str, str], query: str) -> list[str]:
    refs: list[str] = []
    cursor = None
    while True:
        url = f"/api/v1/cases?per_page=3&{query}" + (f"&after={cursor}" if cursor else "")
        body: dict[str, Any] = client.get(url, headers=headers).get_json()
        refs += [c["case_ref"] for c in body["cases"]]
        cursor = body["next"]
        if cursor is None:
            return refs


def test_following_next_cursors_lists_the_same_cases_as_page_numbers(
        app: Flask, client: FlaskClient) -> None:
    # given a reviewer with seven cases
    reviewer = make_reviewer(app)
    make_reviewer(app)
    submitted = {submit_concern(client, details=f"concern {i}")["case_ref"] for i in range(7)}
    headers = login(client, reviewer)

    for sort in ("newest", "oldest"):
        # when the inbox is walked by page numbers and by cursors
        by_page: list[str] = []
        for page in (1, 2, 3):
            body = client.get(f"/api/v1/cases?per_page=3&sort={sort}&page={page}",
                              headers=headers).get_json()
            by_page += [c["case_ref"] for c in body["cases"]]
            assert body["total"] == 7
        # then both give every case once, in the same order, and the last page has no next
        assert _walk(client, headers, f"sort={sort}") == by_page
        assert set(by_page) == submitted and len(by_page) == 7


def test_a_malformed_cursor_is_a_400_not_a_500(app: Flask, client: FlaskClient) -> None:
    reviewer = make_reviewer(app)
    make_reviewer(app)
    headers = login(client, reviewer)
    for bad in ("bogus", "2024-13-01.x", "." * 100, "2024-01-01."):
        response = client.get(f"/api/v1/cases?after={bad}", headers=headers)
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_input"
    response = client.get("/api/v1/cases?after=2024-01-01.WH-X&sort=status", headers=headers)
    assert response.status_code == 400
