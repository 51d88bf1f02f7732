"""``GET /api/v1/openapi.json`` describes the JSON API exactly: every route and method the
app serves under ``/api/v1`` and nothing else, as a valid OpenAPI 3.1 document."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from openapi_spec_validator import validate

from whistle.web import openapi


def _served(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            found |= {(m, path) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    return found


def test_every_api_route_is_described_and_nothing_else(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    described = {(method.upper(), path) for path, item in document["paths"].items()
                 for method in item}
    served = _served(app)
    assert served - described == set(), "served but not described in whistle/web/openapi.py"
    assert described - served == set(), "described but not served"
    assert len(served) >= 29


def test_the_description_is_valid_openapi(app: Flask) -> None:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "Set-Cookie" not in response.headers
    document: dict[str, Any] = response.get_json()
    assert document["openapi"].startswith("3.")
    validate(document)  # raises on an invalid document


def test_what_it_says_of_a_route_matches_the_contract(app: Flask) -> None:
    paths = openapi.document()["paths"]
    submit = paths["/api/v1/concerns"]["post"]
    assert "201" in submit["responses"] and submit["security"] == []
    assert submit["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "category", "details"]
    case = paths["/api/v1/cases/{case_ref}"]["get"]
    assert case["security"] == [{"bearer": []}] and "404" in case["responses"]
    assert [p["name"] for p in case["parameters"]] == ["case_ref"]
    assert "204" in paths["/api/v1/auth/logout"]["post"]["responses"]
