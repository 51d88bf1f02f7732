"""The shape of the code is a rule, not a habit: layers, imports, sizes, and deny by default.

The import rules are checked on every ``import`` statement in ``whistle/`` (function-level
imports included), so a shortcut taken in a hurry fails here, in CI.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from whistle.web import access

PACKAGE = Path(__file__).resolve().parent.parent / "whistle"
LEAVES = ("crypto", "tokens", "routing", "validation", "metadata", "pdf_images", "charts",
          "errors")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module named by an import in ``path`` (``from a import b`` gives a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _offenders(package: str, banned: tuple[str, ...]) -> list[str]:
    return [f"{name} imports {imported}" for name, path in MODULES.items()
            if name == package or name.startswith(package + ".")
            for imported in sorted(_imports(path))
            if any(imported == b or imported.startswith(b + ".") for b in banned)]


def test_the_layers_exist_and_are_walked() -> None:
    # A positive control: the walk finds the packages and the imports the rules talk about.
    assert {"whistle.cases.workflow", "whistle.people.accounts", "whistle.store.db",
            "whistle.web.access", "whistle.cli.reviewers"} <= set(MODULES)
    assert "flask" in _imports(MODULES["whistle.web.access"])
    assert _offenders("whistle.web", ("flask",))


@pytest.mark.parametrize("package", ["whistle.cases", "whistle.people", "whistle.store"])
def test_cases_people_and_store_never_import_flask(package: str) -> None:
    assert _offenders(package, ("flask", "flask_babel", "flask_mail", "flask_wtf",
                                "werkzeug")) == []


def test_cases_never_import_people() -> None:
    assert _offenders("whistle.cases", ("whistle.people", "whistle.web", "whistle.cli")) == []


def test_the_inner_layers_never_import_the_doors() -> None:
    for package in ("whistle.people", "whistle.store"):
        assert _offenders(package, ("whistle.web", "whistle.cli")) == []
    assert _offenders("whistle.store", ("whistle.cases", "whistle.people")) == []


def test_only_crypto_imports_cryptography() -> None:
    users = [name for name, path in MODULES.items()
             if any(i == "cryptography" or i.startswith("cryptography.")
                    for i in _imports(path))]
    assert users == ["whistle.crypto"]


@pytest.mark.parametrize("leaf", LEAVES)
def test_the_pure_leaves_import_no_framework_and_no_other_layer(leaf: str) -> None:
    imported = _imports(MODULES[f"whistle.{leaf}"])
    assert not {i for i in imported if i.split(".")[0] in ("flask", "sqlalchemy", "werkzeug")}
    inner = {i for i in imported if i.startswith("whistle.") and i.count(".") == 1}
    assert inner <= {"whistle.crypto", "whistle.errors", "whistle.pdf_images"}, inner


def test_only_store_knows_sqlite_from_postgresql() -> None:
    """Outside ``whistle/store`` nothing asks which database it runs on."""
    found = []
    for name, path in MODULES.items():
        if name.startswith("whistle.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "dialect":
                found.append(f"{name}:{node.lineno} .dialect")
            if isinstance(node, ast.Constant) and node.value in ("sqlite", "postgresql"):
                found.append(f"{name}:{node.lineno} {node.value!r}")
    assert found == []


def test_no_module_over_500_lines_and_no_function_over_60() -> None:
    too_long = []
    for name, path in MODULES.items():
        if ".migrations" in name:
            continue
        source = path.read_text()
        if len(source.splitlines()) > 500:
            too_long.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert too_long == []


# -- deny by default ------------------------------------------------------------


@pytest.fixture
def app_config() -> dict[str, Any]:
    # CSRF would refuse an anonymous POST first; here the sign-in check itself is tested.
    return {"WTF_CSRF_ENABLED": False}


def _url(rule: Any) -> str:
    return rule.rule.replace("<", "").replace(">", "").replace("path:", "").replace(
        "int:", "")


def test_every_reviewer_admin_and_api_route_refuses_an_anonymous_client(app: Flask) -> None:
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if not access.protected(rule.rule, rule.endpoint):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            body = ({"json": {}} if rule.rule.startswith("/api/")
                    else {"data": {"field": "value"}} if method != "GET" else {})
            response = client.open(_url(rule), method=method, **body)
            checked += 1
            if rule.rule.startswith("/api/"):
                assert response.status_code == 401, (method, rule.rule)
                assert response.get_json()["error"] == "unauthorized"
            else:
                assert response.status_code == 302, (method, rule.rule)
                assert response.headers["Location"].endswith("/reviewer/login")
    # Every reviewer and administrator page and the reviewer API were walked.
    assert checked >= 30


def test_the_allow_list_names_only_routes_that_exist(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert access.PUBLIC <= endpoints
    # ... and the public ones really answer without an account.
    client = app.test_client()
    assert client.get("/reviewer/login").status_code == 200
    assert client.get("/api/v1/intake").status_code == 200


def test_a_protected_route_added_later_is_refused_without_a_decorator(app: Flask) -> None:
    @app.get("/reviewer/added-later")
    def added_later() -> str:
        return "content for reviewers"

    @app.get("/api/v1/added-later")
    def added_later_api() -> str:
        return "content for reviewers"

    client = app.test_client()
    assert client.get("/reviewer/added-later").status_code == 302
    assert client.get("/api/v1/added-later").status_code == 401


def test_every_page_title_is_text() -> None:
    """A ``title`` block holds words only: markup in it ends up as text in the browser's tab
    (a careless edit once put a whole section there)."""
    templates = PACKAGE.parent / "templates"
    titles = {path.name: found for path in sorted(templates.rglob("*.html"))
              for found in re.findall(r"{% block title %}(.*?){% endblock %}",
                                      path.read_text(), flags=re.S)}
    assert len(titles) > 20
    assert {name: t for name, t in titles.items() if "<" in t or "\n" in t} == {}
