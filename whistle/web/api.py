"""The JSON API (``/api/v1``): reporters without accounts, reviewers with bearer sessions."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from whistle import adminlog, db, instance_keys, intake, review
from whistle.keys import KeyError_
from whistle.validation import InvalidInput
from whistle.web import common, flows, uploads
from whistle.web.common import ApiError

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[Response, int, dict[str, str]]:
    if isinstance(exc, ApiError):
        body: dict[str, Any] = {"error": exc.error, "message": exc.message}
        if exc.field:
            body["field"] = exc.field
        return jsonify(body), exc.code or 400, exc.extra_headers
    code = exc.code or 500
    name = (exc.name or "error").lower().replace(" ", "_")
    return jsonify(error=name, message=exc.description or name), code, {}


@bp.errorhandler(InvalidInput)
def _invalid(exc: InvalidInput) -> tuple[Response, int]:
    body = {"error": exc.code, "message": exc.message}
    if exc.field:
        body["field"] = exc.field
    return jsonify(body), exc.status


@bp.errorhandler(KeyError_)
def _no_keys(_exc: KeyError_) -> tuple[Response, int]:
    return jsonify(error="unavailable", message="Whistle is not ready: key material is missing"), 503


# -- reporters -----------------------------------------------------------


@bp.get("/intake")
def intake_options() -> Response:
    return jsonify(flows.intake_options(db.session()))


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
    receipt = flows.submit(data, files)
    return jsonify(flows.receipt_json(receipt)), 201


def _concern_part(fields: dict[str, Any]) -> bytes:
    """The ``concern`` JSON part, sent as a text field or as a file part (``curl -F concern=@f``)."""
    if "concern" in fields:
        raw: bytes = fields["concern"].encode()
        return raw
    parts = request.files.getlist("concern")
    if len(parts) != 1:
        raise ApiError(400, "invalid_input", "the multipart body needs one concern part",
                       "concern")
    limit = current_app.config["MAX_JSON_BYTES"]
    raw = parts[0].stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "too_large", "the concern part is too large", "concern")
    return raw


def _reporter_view(data: dict[str, Any], then_read_only: bool = False
                   ) -> intake.ReporterView:
    view = flows.find_case(data.get("token"), then_read_only)
    if view is None:
        raise ApiError(404, "not_found", "no case matches this token")
    return view


@bp.post("/status")
def status() -> Response:
    view = _reporter_view(common.json_body(), then_read_only=True)
    return jsonify(flows.status_json(view, read_only=True))


@bp.post("/status/messages")
def reporter_message() -> tuple[Response, int]:
    data = common.json_body()
    view = _reporter_view(data)
    msg = intake.add_reporter_message(db.session(), view, data.get("body"), current_app.config)
    return jsonify(id=msg.id, at=msg.created.isoformat()), 201


@bp.post("/status/token")
def rotate_token() -> Response:
    view = _reporter_view(common.json_body())
    return jsonify(token=intake.rotate_token(db.session(), instance_keys(), view))


@bp.post("/status/attachments")
def reporter_attachments() -> tuple[Response, int]:
    """More files for a case: multipart with a ``token`` part and ``attachment`` parts."""
    if not current_app.config["ALLOW_LATER_ATTACHMENTS"]:
        raise ApiError(403, "not_allowed", "adding files after sending a concern is turned off")
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
    secret, reviewer = flows.login(data.get("email"), data.get("password"), data.get("otp"))
    return jsonify(access_token=secret,
                   expires_in=current_app.config["SESSION_IDLE_MINUTES"] * 60,
                   reviewer={"id": reviewer.id, "name": reviewer.name})


# Reviewers' hot reads: each of their writes is one statement (a session's last-seen time,
# the "opened" event), so on PostgreSQL they run in autocommit (see db.reads_alone).
_READ_VIEWS = frozenset({"api.cases", "api.case"})


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.endpoint in _READ_VIEWS:
            db.reads_alone()
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        signed = (review.authenticate(db.session(), current_app.config, token.strip())
                  if scheme.lower() == "bearer" else None)
        if signed is None:
            raise ApiError(401, "unauthorized", "sign in first",
                           headers={"WWW-Authenticate": "Bearer"})
        g.signed = signed
        if request.endpoint != "api.logout" and signed.setup_needed(current_app.config):
            raise ApiError(403, "account_setup_required", "finish setting up your account "
                           "(your own password, or two-factor sign-in) on the reviewer pages")
        return view(*args, **kwargs)

    return wrapper


@bp.post("/auth/logout")
@signed_in
def logout() -> tuple[str, int]:
    review.logout(db.session(), g.signed)
    return "", 204


@bp.get("/cases")
@signed_in
def cases() -> Response:
    status, page, per_page = flows.list_args(request.args)
    sort = request.args.get("sort") or "newest"
    found, total = review.list_cases(db.session(), g.signed.reviewer_id, status, page, per_page,
                                     sort, request.args.get("after") or None)
    # ``next``: a keyset cursor for ``?after=`` (constant time however deep the page).
    more = len(found) == per_page and sort in ("newest", "oldest")
    return jsonify(cases=[review.summary(c) for c in found], page=page, per_page=per_page,
                   total=total, next=review.page_cursor(found[-1]) if more else None)


@bp.get("/cases/<case_ref>")
@signed_in
def case(case_ref: str) -> Response:
    return jsonify(flows.open_case(g.signed, case_ref))


@bp.get("/cases/<case_ref>/attachments/<attachment_id>")
@signed_in
def attachment(case_ref: str, attachment_id: str) -> Response:
    return flows.download(g.signed, case_ref, attachment_id)


@bp.post("/cases/<case_ref>/transitions")
@signed_in
def transition(case_ref: str) -> Response:
    data = common.json_body()
    new = flows.transition(g.signed, case_ref, data)
    return jsonify(case_ref=case_ref, status=new)


@bp.post("/cases/<case_ref>/messages")
@signed_in
def message(case_ref: str) -> tuple[Response, int]:
    data = common.json_body()
    internal = data.get("internal", False)
    if not isinstance(internal, bool):
        raise ApiError(400, "invalid_input", "internal must be true or false", "internal")
    msg = flows.post_message(g.signed, case_ref, data.get("body"), internal)
    return jsonify(id=msg.id, at=msg.created.isoformat(), kind=msg.kind), 201


@bp.post("/cases/<case_ref>/notes")
@signed_in
def note(case_ref: str) -> tuple[Response, int]:
    msg = flows.post_message(g.signed, case_ref, common.json_body().get("body"), True)
    return jsonify(id=msg.id, at=msg.created.isoformat(), kind=msg.kind), 201


@bp.post("/cases/<case_ref>/reviewers")
@signed_in
def share(case_ref: str) -> tuple[Response, int]:
    target = flows.share(g.signed, case_ref, common.json_body().get("reviewer_id"))
    return jsonify(case_ref=case_ref, reviewer={"id": target.id, "name": target.name}), 201


@bp.get("/me")
@signed_in
def me() -> Response:
    r = g.signed.reviewer
    return jsonify(id=r.id, name=r.name, admin=r.is_admin, totp=r.totp_secret_ct is not None)


@bp.get("/reviewers")
@signed_in
def reviewers() -> Response:
    return jsonify(reviewers=flows.reviewer_choices(db.session()))



@bp.get("/admin/log")
@signed_in
def admin_log() -> Response:
    """The administration log, oldest first, ``after`` a sequence number (for copying it
    elsewhere as it grows), with the state of the whole chain. Every reviewer may read it:
    they are the check on the administrators it records (see web/adminlog_page.py)."""
    raw_after = request.args.get("after", "0")
    limit = 500
    if not raw_after.isdigit() or len(raw_after) > 12:
        raise ApiError(400, "invalid_input", "after must be a whole number (an event's seq)")
    session = db.session()
    checked, broken = adminlog.verify(session)
    events = adminlog.since(session, int(raw_after), limit)
    return jsonify(
        events=[{"seq": e.seq, "at": e.at.isoformat() + "Z", "type": e.type, "actor": e.actor,
                 "data": json.loads(e.data), "hash": e.hash.hex()} for e in events],
        next=events[-1].seq if len(events) == limit else None,
        chain={"events": checked, "intact": broken is None,
               "broken": None if broken is None else {"seq": broken.seq,
                                                      "reason": broken.reason}})
