"""Legal holds on a case (issue 23): ``/api/v1/cases/<case_ref>/hold``, a two-person change
(whistle.cases.holds). A case deleted at the end of its retention answers ``410 deleted`` to
the reviewers who had it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify

from whistle import current_settings
from whistle.cases import holds, retention
from whistle.store import db
from whistle.store.models import Change
from whistle.web import common

bp = Blueprint("retention_api", __name__, url_prefix="/api/v1/cases/<case_ref>/hold")


def _answer(case_ref: str, change: Change) -> dict[str, Any]:
    return {"case_ref": case_ref, "change_id": change.id, "state": change.state,
            "action": "lift" if change.type == holds.LIFT else "place",
            "proposed_by": change.proposed_by}


def _gone(case_ref: str) -> Any:
    return retention.gone_if_deleted(db.session(), g.signed, case_ref)


@bp.get("")
def hold(case_ref: str) -> Response:
    with _gone(case_ref):
        return jsonify(holds.describe(db.session(), g.signed, current_settings(), case_ref))


@bp.post("")
def place(case_ref: str) -> tuple[Response, int]:
    reason = common.json_body().get("reason")
    with _gone(case_ref):
        change = holds.propose(db.session(), g.signed, current_settings(), case_ref, reason)
    return jsonify(_answer(case_ref, change)), 202


@bp.delete("")
def lift(case_ref: str) -> tuple[Response, int]:
    reason = common.optional_json_body().get("reason")
    with _gone(case_ref):
        change = holds.propose(db.session(), g.signed, current_settings(), case_ref, reason,
                               lift=True)
    return jsonify(_answer(case_ref, change)), 202


@bp.post("/approve")
def approve(case_ref: str) -> Response:
    common.optional_json_body()
    with _gone(case_ref):
        change = holds.approve(db.session(), g.signed, case_ref)
    return jsonify(_answer(case_ref, change) | {"on_hold": change.type == holds.HOLD})


@bp.post("/reject")
def reject(case_ref: str) -> Response:
    common.optional_json_body()
    with _gone(case_ref):
        change = holds.reject(db.session(), g.signed, case_ref)
    return jsonify(_answer(case_ref, change))
