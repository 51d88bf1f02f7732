"""The JSON API for a case's whole life (issue 23, items 2, 3 and 5): outside agencies,
referrals and their packages, detriment check-ins, erasure.

Administrators propose agencies (``/admin/agencies``; approved through
``/admin/changes/<id>/approve`` like the roster's changes); assigned reviewers propose
and approve referrals and erasures; the reporter answers check-ins with their token.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify

from whistle import current_settings, instance_keys
from whistle.cases import checkins, erasure, referrals, workflow
from whistle.people import agencies
from whistle.store import db
from whistle.store.models import Attachment, utcnow
from whistle.web import changes_api, common, shared
from whistle.web.common import ApiError
from whistle.web.errors import case_integrity

bp = Blueprint("lifecycle_api", __name__, url_prefix="/api/v1")


def reporter_part(session: Any, case: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the reporter's status adds (whistle.web.shared.status_json): on ``referred``
    events, to whom (in place); after closure, the check-in prompt."""
    referrals.name_agencies(session, case.id, events)
    return {"checkin": checkins.prompt(session, case.id, current_settings(), utcnow().date())
            } if case.status == workflow.CLOSED else {}


def refuse_if_erased(att: Attachment) -> None:
    erasure.refuse_if_erased(db.session(), att)


# -- agencies ---------------------------------------------------------------------------


@bp.post("/admin/agencies")
def propose_agency() -> tuple[Response, int]:
    """An administrator proposes an agency: pending until a second person approves."""
    proposer = changes_api._admin()
    data = common.json_body()
    agency, change = agencies.propose_agency(db.session(), current_settings(), data.get("name"),
                                             data.get("age_recipient"), proposer)
    return jsonify(id=agency.id, state=agency.state, change_id=change.id), 202


@bp.post("/admin/agencies/<agency_id>/key")
def propose_agency_key(agency_id: str) -> tuple[Response, int]:
    """A new key for an agency, in force once a second person approves."""
    proposer = changes_api._admin()
    data = common.json_body()
    agency, change = agencies.propose_key(db.session(), agency_id, data.get("age_recipient"),
                                          proposer)
    return jsonify(id=agency.id, state=agency.state, change_id=change.id), 202


@bp.delete("/admin/agencies/<agency_id>")
def propose_agency_retire(agency_id: str) -> tuple[Response, int]:
    proposer = changes_api._admin()
    agency, change = agencies.propose_retire(db.session(), agency_id, proposer)
    return jsonify(id=agency.id, state=agency.state, change_id=change.id), 202


@bp.get("/agencies")
def agency_list() -> Response:
    return jsonify(agencies=agencies.listing(db.session()))


# -- referrals ---------------------------------------------------------------------------


@bp.post("/cases/<case_ref>/referrals")
def propose_referral(case_ref: str) -> tuple[Response, int]:
    change = referrals.propose(db.session(), g.signed, instance_keys(), case_ref,
                               common.json_body())
    return jsonify(referral_id=change.id, state=change.state, case_ref=case_ref), 202


@bp.get("/cases/<case_ref>/referrals")
def referral_list(case_ref: str) -> Response:
    return jsonify(referrals=referrals.listing(db.session(), g.signed, case_ref))


@bp.post("/cases/<case_ref>/referrals/<referral_id>/approve")
def approve_referral(case_ref: str, referral_id: str) -> Response:
    common.optional_json_body()
    with case_integrity():
        change, digest = referrals.approve(db.session(), g.signed, instance_keys(), case_ref,
                                           referral_id)
    return jsonify(referral_id=change.id, state=change.state, package_sha256=digest)


@bp.post("/cases/<case_ref>/referrals/<referral_id>/reject")
def reject_referral(case_ref: str, referral_id: str) -> Response:
    common.optional_json_body()
    change = referrals.reject(db.session(), g.signed, case_ref, referral_id)
    return jsonify(referral_id=change.id, state=change.state)


@bp.get("/cases/<case_ref>/referrals/<referral_id>/package")
def referral_package(case_ref: str, referral_id: str) -> Response:
    kept, data = referrals.package_bytes(db.session(), g.signed, case_ref, referral_id)
    response = Response(data, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{case_ref}-referral-{kept.id[:8]}.age"')
    response.headers["X-Package-SHA256"] = kept.sha256.hex()
    return response


# -- check-ins ---------------------------------------------------------------------------


@bp.post("/status/checkin")
def checkin() -> tuple[Response, int]:
    """The reporter answers the detriment check-in of a closed case (no account)."""
    data = common.json_body()
    view = shared.find_case(data.get("token"))
    if view is None:
        raise ApiError(404, "not_found", "no case matches this token")
    choice, receipt = checkins.answer(db.session(), instance_keys(), current_settings(),
                                      view.case.id, data, utcnow())
    out: dict[str, Any] = {"answer": choice}
    if receipt is not None:  # the new detriment case: its token, shown this once
        out |= {"case_ref": receipt.case_ref, "token": receipt.token,
                "acknowledge_by": receipt.acknowledge_by.isoformat(),
                "reviewer_count": receipt.reviewer_count}
    return jsonify(out), 201


@bp.get("/stats/checkins")
def checkin_figures() -> Response:
    return jsonify(checkins.figures(db.session()))


# -- erasure -----------------------------------------------------------------------------


@bp.post("/cases/<case_ref>/erasures")
def propose_erasure(case_ref: str) -> tuple[Response, int]:
    change = erasure.propose(db.session(), g.signed, case_ref, common.json_body())
    return jsonify(erasure_id=change.id, state=change.state, case_ref=case_ref), 202


@bp.post("/cases/<case_ref>/erasures/<erasure_id>/approve")
def approve_erasure(case_ref: str, erasure_id: str) -> Response:
    common.optional_json_body()
    with case_integrity():
        change = erasure.approve(db.session(), g.signed, case_ref, erasure_id)
    return jsonify(erasure_id=change.id, state=change.state)


@bp.post("/cases/<case_ref>/erasures/<erasure_id>/reject")
def reject_erasure(case_ref: str, erasure_id: str) -> Response:
    common.optional_json_body()
    change = erasure.reject(db.session(), g.signed, case_ref, erasure_id)
    return jsonify(erasure_id=change.id, state=change.state)
