"""The JSON API for two-person roster changes, enrolment links and password changes.

``/api/v1/admin/reviewers`` (administrators propose an account), ``/api/v1/admin/changes``
(pending proposals; approve, reject), ``/api/v1/auth/enrol`` (a one-time code and the
person's own password; no account needed), ``/api/v1/me/password`` (a new password and
key pair).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify

from whistle import crypto, current_settings, instance_keys
from whistle.errors import DomainError
from whistle.people import approvals, credentials
from whistle.store import db
from whistle.store.models import utcnow
from whistle.web import common

bp = Blueprint("changes_api", __name__, url_prefix="/api/v1")


class AdministratorsOnly(DomainError):
    code, status, message = "forbidden", 403, "administrators only"


def _admin() -> str:
    if not g.signed.is_admin:
        raise AdministratorsOnly()
    return g.signed.reviewer_id


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise common.ApiError(400, "invalid_input", f"{name} must be true or false", name)
    return value


def _units(data: dict[str, Any]) -> list[str]:
    units = data.get("units", [])
    if not isinstance(units, list) or not all(isinstance(u, str) for u in units) \
            or len(units) > 100:
        raise common.ApiError(400, "invalid_input", "units must be a list of unit names",
                              "units")
    return units


@bp.post("/admin/reviewers")
def propose_reviewer() -> tuple[Response, int]:
    """An administrator proposes an account: pending until a second person approves (202);
    before the roster is sealed, the person is invited at once (201)."""
    proposer = _admin()
    data = common.json_body()
    session = db.session()
    admin_only = _flag(data, "admin_only")
    operator = _flag(data, "operator")  # an intake operator (issue 24): no other role
    account, change = approvals.add_account(
        session, _context(), data.get("name"), data.get("email"), _units(data),
        _flag(data, "senior"), _flag(data, "independent"), _flag(data, "admin") or admin_only,
        not (admin_only or operator), proposer, operator=operator)
    if change is not None:
        return jsonify(id=account.id, state=account.state, change_id=change.id), 202
    return jsonify(id=account.id, state=account.state, change_id=None), 201


def _context() -> approvals.Context:
    return approvals.Context(current_settings(), instance_keys(), utcnow())


@bp.get("/admin/changes")
def changes() -> Response:
    return jsonify(changes=[approvals.describe(c) for c in approvals.pending(db.session())])


@bp.post("/admin/changes/<change_id>/approve")
def approve(change_id: str) -> Response:
    common.optional_json_body()  # nothing is needed; whatever is sent must be well formed
    change = approvals.approve(db.session(), _context(), change_id, g.signed.reviewer_id)
    return jsonify(approvals.describe(change))


@bp.post("/admin/changes/<change_id>/reject")
def reject(change_id: str) -> Response:
    common.optional_json_body()
    change = approvals.reject(db.session(), change_id, g.signed.reviewer_id, utcnow())
    return jsonify(approvals.describe(change))


@bp.post("/auth/enrol")
def enrol() -> Response:
    data = common.json_body()
    account = credentials.redeem(db.session(), current_settings(), instance_keys(),
                                 data.get("code"), data.get("password"))
    return jsonify(reviewer={"id": account.id, "name": account.name})


@bp.post("/me/password")
def change_password() -> Response:
    data = common.json_body()
    session = db.session()
    rewrapped = credentials.change_password(session, current_settings(), instance_keys(),
                                            g.signed.reviewer, data.get("password"),
                                            data.get("new_password"))
    me = g.signed.reviewer
    from whistle.people import strength

    rating = strength.rate(data["new_password"], (me.name, me.email))  # checked above
    return jsonify(reviewer={"id": me.id, "name": me.name}, rewrapped=rewrapped,
                   fingerprint=crypto.digest(me.public_key).hex(),
                   strength={"score": rating.score, "label": rating.label})
