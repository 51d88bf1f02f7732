"""The JSON API (``/api/v1``): reporters without accounts, reviewers with bearer sessions."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from whistle import current_settings, instance_keys, validation
from whistle.cases import attachments, checkpoints, escrow, inbox, proposals, reporter
from whistle.people import adminlog, sessions
from whistle.store import db
from whistle.web import common, oral_gate, shared, uploads
from whistle.web.common import ApiError

bp = Blueprint("api", __name__, url_prefix="/api/v1")


# -- reporters -----------------------------------------------------------


@bp.get("/intake")
def intake_options() -> Response:
    return jsonify(shared.intake_options(db.session()))


@bp.get("/roster")
def public_roster() -> Response:
    """Who can receive a concern now, each key's fingerprint, and the signed head (public:
    no account, no cookie; see whistle.people.roster)."""
    return jsonify(shared.roster_json(db.session()))


@bp.post("/concerns")
def submit_concern() -> tuple[Response, int]:
    if request.mimetype == "multipart/form-data":
        fields = common.form_fields(multi=("attachment",))
        if fields.get("attachment"):
            # A part without a usable filename is a text field: refuse rather than drop a file.
            raise ApiError(400, "invalid_input", "each attachment part must be a file with a "
                           "filename", "attachment")
        data = common.parse_json_bytes(_concern_part(fields))
        files = request.files.getlist("attachment")
    else:
        data, files = common.json_body(), []
    receipt = shared.submit(data, files)
    return jsonify(shared.receipt_json(receipt)), 201


def _concern_part(fields: dict[str, Any]) -> bytes:
    """The ``concern`` JSON part, sent as a text field or as a file part (``curl -F concern=@f``)."""
    if "concern" in fields:
        raw: bytes = fields["concern"].encode()
        return raw
    parts = request.files.getlist("concern")
    if len(parts) != 1:
        raise ApiError(400, "invalid_input", "the multipart body needs one concern part",
                       "concern")
    limit = current_settings().max_json_bytes
    raw = parts[0].stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "too_large", "the concern part is too large", "concern")
    return raw


def _reporter_view(data: dict[str, Any], replacing: bool = False) -> reporter.ReporterView:
    view = shared.find_case(data.get("token"), replacing)
    if view is None:
        raise ApiError(404, "not_found", "no case matches this token")
    return view


@bp.post("/status")
def status() -> Response:
    data = common.json_body()
    try:
        view = _reporter_view(data)
    except escrow.Held as held:  # held until a match (issue 25)
        return jsonify(escrow.status_json(held.held, instance_keys()))
    return jsonify(shared.status_json(view, read_only=True))


@bp.post("/status/messages")
def reporter_message() -> tuple[Response, int]:
    data = common.json_body()
    view = _reporter_view(data)
    msg = reporter.add_reporter_message(db.session(), view, data.get("body"), current_settings())
    return jsonify(id=msg.id, at=msg.created.isoformat()), 201


@bp.post("/status/token")
def rotate_token() -> Response:
    data = common.json_body()
    try:
        view = _reporter_view(data, replacing=True)  # an operator's token too
    except escrow.Held as held:  # held until a match (issue 25)
        return jsonify(token=escrow.rotate_token(db.session(), instance_keys(), held.held))
    return jsonify(token=oral_gate.replace_token(view))


@bp.post("/status/attachments")
def reporter_attachments() -> tuple[Response, int]:
    """More files for a case: multipart with a ``token`` part and ``attachment`` parts."""
    attachments.check_later_allowed(current_settings())  # before the token is looked up
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the token and files as "
                       "multipart/form-data")
    fields = common.form_fields()
    view = _reporter_view(fields)
    notes = uploads.add_later(view, request.files.getlist("attachment"),
                              uploads.flag(fields.get("clean_metadata"), default=True))
    return jsonify(case_ref=view.concern.id, attachment_notes=list(notes)), 201


# -- reviewers -----------------------------------------------------------


@bp.post("/auth/login")
def login() -> Response:
    data = common.json_body()
    secret, reviewer = shared.login(data.get("email"), data.get("password"), data.get("otp"))
    return jsonify(access_token=secret,
                   expires_in=current_settings().session_idle_minutes * 60,
                   reviewer={"id": reviewer.id, "name": reviewer.name})


@bp.post("/auth/logout")
def logout() -> tuple[str, int]:
    sessions.logout(db.session(), g.signed)
    return "", 204


@bp.get("/cases")
def cases() -> Response:
    status, page, per_page = shared.list_args(request.args)
    sort = request.args.get("sort") or "newest"
    found, total = inbox.list_cases(db.session(), g.signed.reviewer_id, status, page, per_page,
                                     sort, request.args.get("after") or None)
    # ``next``: a keyset cursor for ``?after=`` (constant time however deep the page).
    more = len(found) == per_page and sort in ("newest", "oldest")
    return jsonify(cases=[inbox.summary(c) for c in found], page=page, per_page=per_page,
                   total=total, next=inbox.page_cursor(found[-1]) if more else None)


@bp.get("/cases/<case_ref>")
def case(case_ref: str) -> Response:
    return jsonify(shared.open_case(g.signed, case_ref))


@bp.get("/cases/<case_ref>/attachments/<attachment_id>")
def attachment(case_ref: str, attachment_id: str) -> Response:
    return shared.download(g.signed, case_ref, attachment_id)


@bp.post("/cases/<case_ref>/transitions")
def transition(case_ref: str) -> Response:
    data = common.json_body()
    new = shared.transition(g.signed, case_ref, data)
    return jsonify(case_ref=case_ref, status=new)


@bp.post("/cases/<case_ref>/messages")
def message(case_ref: str) -> tuple[Response, int]:
    data = common.json_body()
    internal = data.get("internal", False)
    if not isinstance(internal, bool):
        raise ApiError(400, "invalid_input", "internal must be true or false", "internal")
    msg = shared.post_message(g.signed, case_ref, data.get("body"), internal)
    return jsonify(id=msg.id, at=msg.created.isoformat(), kind=msg.kind), 201


@bp.post("/cases/<case_ref>/notes")
def note(case_ref: str) -> tuple[Response, int]:
    msg = shared.post_message(g.signed, case_ref, common.json_body().get("body"), True)
    return jsonify(id=msg.id, at=msg.created.isoformat(), kind=msg.kind), 201


@bp.post("/cases/<case_ref>/reviewers")
def share(case_ref: str) -> tuple[Response, int]:
    """A proposal: the share takes effect when a different assigned reviewer approves."""
    change = shared.share(g.signed, case_ref, common.json_body().get("reviewer_id"))
    return jsonify(case_ref=case_ref, state=change.state, change_id=change.id,
                   reviewer={"id": proposals.payload(change)["reviewer"]}), 202


@bp.post("/cases/<case_ref>/reviewers/<reviewer_id>/approve")
def approve_share(case_ref: str, reviewer_id: str) -> tuple[Response, int]:
    common.optional_json_body()
    change, target = shared.approve_share(g.signed, case_ref, reviewer_id)
    return jsonify(case_ref=case_ref, state=change.state, change_id=change.id,
                   reviewer={"id": target.id, "name": target.name}), 201


@bp.post("/cases/<case_ref>/reviewers/<reviewer_id>/reject")
def reject_share(case_ref: str, reviewer_id: str) -> Response:
    common.optional_json_body()
    change = shared.reject_share(g.signed, case_ref, reviewer_id)
    return jsonify(case_ref=case_ref, state=change.state, change_id=change.id,
                   reviewer={"id": reviewer_id})


@bp.post("/cases/<case_ref>/recuse")
def recuse(case_ref: str) -> Response:
    joined = shared.recuse(g.signed, case_ref, common.json_body().get("reason"))
    return jsonify(case_ref=case_ref, recused=True,
                   replacements=[{"id": r.id, "name": r.name} for r in joined])


@bp.get("/me")
def me() -> Response:
    r = g.signed.reviewer
    return jsonify(id=r.id, name=r.name, admin=r.is_admin, totp=r.totp_secret_ct is not None)


@bp.get("/reviewers")
def reviewers() -> Response:
    return jsonify(reviewers=shared.reviewer_choices(db.session()))



@bp.get("/admin/log")
def admin_log() -> Response:
    """The administration log, oldest first, ``after`` a sequence number (for copying it
    elsewhere as it grows), with the state of the whole chain. Every reviewer may read it:
    they are the check on the administrators it records (see web/adminlog_page.py)."""
    after = validation.whole_number(request.args.get("after", "0"), 9)  # fits any INTEGER column
    limit = 500
    if after is None:
        raise ApiError(400, "invalid_input", "after must be a whole number (an event's seq)")
    session = db.session()
    checked, broken = adminlog.verify(session)
    events = adminlog.since(session, after, limit)
    return jsonify(
        events=[{"seq": e.seq, "at": e.at.isoformat() + "Z", "type": e.type, "actor": e.actor,
                 "data": json.loads(e.data), "hash": e.hash.hex()} for e in events],
        next=events[-1].seq if len(events) == limit else None,
        chain={"events": checked, "intact": broken is None,
               "broken": None if broken is None else {"seq": broken.seq,
                                                      "reason": broken.reason}})


@bp.get("/admin/checkpoints")
def admin_checkpoints() -> Response:
    """The signed checkpoints (whistle.cases.checkpoints), oldest first, ``after`` a
    checkpoint's seq: for keeping a copy where the database administrator cannot write, so
    that a rollback shows (``flask --app app audit verify --against``). Every reviewer may
    read them, as the administration log; they name no case. The signing key's public half
    is published with the roster (``GET /api/v1/roster``)."""
    after = validation.whole_number(request.args.get("after", "0"), 9)  # fits any INTEGER column
    limit = 500
    if after is None:
        raise ApiError(400, "invalid_input", "after must be a whole number (a checkpoint's seq)")
    rows = checkpoints.export(db.session(), after, limit)
    return jsonify(checkpoints=rows, next=rows[-1]["seq"] if len(rows) == limit else None)
