"""Issue 22's doors: opening a reporter's identity by two, the reporter adding it later, and
signed receipts (JSON API, the reviewer's buttons, the reporter's pages). Thin: each view
parses, calls one use case of ``whistle.cases.identity_release``, ``identity`` or
``receipts``, and answers."""

from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint, Response, g, jsonify, redirect, render_template, url_for
from werkzeug.wrappers import Response as Redirect

from whistle import current_settings, instance_keys
from whistle.cases import identity, identity_release, proof, receipts, reporter
from whistle.errors import DomainError
from whistle.store import db
from whistle.web import common, errors, shared
from whistle.web.common import ApiError

bp = Blueprint("identity_api", __name__)  # JSON (no CSRF: bearer sessions, no cookies)
pages = Blueprint("identity_pages", __name__)  # forms (CSRF)

API = "/api/v1"
# Reachable without an account (whistle.web.access.PUBLIC).
PUBLIC = frozenset({"identity_api.reporter_identity", "identity_api.verify_receipt",
                    "identity_api.receipt_keys"})


# -- reviewers: request, approve, reject --------------------------------------------------


@bp.post(API + "/cases/<case_ref>/identity/requests")
def request_identity(case_ref: str) -> tuple[Response, int]:
    change = _request(case_ref, common.json_body().get("reason"))
    return jsonify(request_id=change.id, case_ref=case_ref, state=change.state,
                   identity_state=identity.REQUESTED), 202


@bp.post(API + "/cases/<case_ref>/identity/requests/<request_id>/approve")
def approve_identity(case_ref: str, request_id: str) -> Response:
    common.optional_json_body()
    state = _approve(case_ref, request_id)
    return jsonify(request_id=request_id, case_ref=case_ref, state="approved",
                   identity_state=state)


@bp.post(API + "/cases/<case_ref>/identity/requests/<request_id>/reject")
def reject_identity(case_ref: str, request_id: str) -> Response:
    common.optional_json_body()
    change = identity_release.reject(db.session(), g.signed, case_ref, request_id)
    return jsonify(request_id=change.id, case_ref=case_ref, state=change.state,
                   identity_state=identity.SEALED)


def _request(case_ref: str, reason: Any) -> Any:
    with errors.case_integrity():
        return identity_release.request(db.session(), g.signed, instance_keys(),
                                        current_settings(), case_ref, reason)


def _approve(case_ref: str, request_id: str) -> str:
    with errors.case_integrity():
        return identity_release.approve(db.session(), g.signed, instance_keys(), case_ref,
                                        request_id)


# -- the reporter: identity later, the receipt with the status ------------------------------


def _reporter_view(token: Any) -> reporter.ReporterView:
    view = shared.find_case(token)
    if view is None:
        raise ApiError(404, "not_found", "no case matches this token")
    return view


@bp.post(API + "/status/identity")
def reporter_identity() -> tuple[Response, int]:
    data = common.json_body()
    view = _reporter_view(data.get("token"))
    state = identity.add_later(db.session(), instance_keys(), current_settings(),
                               view.concern, view.thread_key, data.get("identity"))
    return jsonify(case_ref=view.case.id, identity_state=state), 201


def status_part(session: Any, view: reporter.ReporterView, events: list[dict[str, Any]],
                read_only: bool = False) -> dict[str, Any]:
    """What ``POST /api/v1/status`` adds: ``identity_state``, ``identity_release``,
    ``receipt``; the reason beside ``identity_released``. ``read_only``: nothing changed
    in this request, so the token lookup's columns stand."""
    return proof.reporter_part(session, instance_keys(), view.case.id,
                               lambda: view.thread_key, events,
                               view.case if read_only else None)


# -- anyone: verify a receipt, the published keys ----------------------------------------


def _published() -> list[bytes]:
    keys = instance_keys()
    return receipts.published_keys(current_settings().keys_dir, keys.signing_public)


@bp.post(API + "/receipts/verify")
def verify_receipt() -> Response:
    data = common.json_body()
    checked = receipts.verify(data.get("receipt"), _published(), data.get("details"))
    return jsonify(valid=checked.valid, case_ref=checked.case_ref, received=checked.received,
                   content_matches=checked.content_matches)


def _ed25519_pem(public: bytes) -> str:
    """The Ed25519 half of a hybrid signing key as a PEM public key (for ``openssl``)."""
    der = bytes.fromhex("302a300506032b6570032100") + public[1:33]
    body = base64.b64encode(der).decode()
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def keys_json() -> dict[str, Any]:
    published = _published()
    return {"keys": [{"id": receipts.key_id(k), "current": i == 0,
                      "public_key": base64.b64encode(k).decode(),
                      "ed25519_public_key_pem": _ed25519_pem(k),
                      "mldsa65_public_key": base64.b64encode(k[33:]).decode()}
                     for i, k in enumerate(published)],
            "format": receipts.FORMAT,
            "algorithm": "Ed25519 + ML-DSA-65 over b'whistle:1:sign:' + the lines Format..Key"}


@bp.get(API + "/receipts/keys")
def receipt_keys() -> Response:
    return jsonify(keys_json())


# -- the reviewer's buttons on the case page ------------------------------------------------


_act = common.act


@pages.post("/reviewer/cases/<case_ref>/identity/request")
def request_page(case_ref: str) -> Redirect:
    form = common.form_fields()
    _act(lambda: _request(case_ref, form.get("reason")),
         "Opening the identity was requested: another reviewer of this case must approve it.")
    return redirect(url_for("reviewer.case", case_ref=case_ref))


@pages.post("/reviewer/cases/<case_ref>/identity/requests/<request_id>/approve")
def approve_page(case_ref: str, request_id: str) -> Redirect:
    common.form_fields()
    _act(lambda: _approve(case_ref, request_id), "Request approved.")
    return redirect(url_for("reviewer.case", case_ref=case_ref))


@pages.post("/reviewer/cases/<case_ref>/identity/requests/<request_id>/reject")
def reject_page(case_ref: str, request_id: str) -> Redirect:
    common.form_fields()
    _act(lambda: identity_release.reject(db.session(), g.signed, case_ref, request_id),
         "Request rejected.")
    return redirect(url_for("reviewer.case", case_ref=case_ref))


# -- the reporter's pages: add a name later, verify a receipt, save one ---------------------

NAME_ADDED = "Your name was added."


@pages.post("/status/identity")
def status_identity() -> Any:
    """The status page's "give my name" form (the token in the body, as every status form)."""
    from whistle.web import report

    return report._on_case(common.form_fields(), _add_identity)


def _add_identity(view: reporter.ReporterView, form: dict[str, Any], token: str) -> Any:
    from whistle.web import report

    raw = {"name": form.get("name") or None, "role": form.get("role") or None,
           "contact": form.get("contact") or None, "release": form.get("release") or None}
    try:
        identity.add_later(db.session(), instance_keys(), current_settings(), view.concern,
                           view.thread_key, raw)
    except DomainError as exc:  # nothing stored: say why, and the words come back
        db.session().rollback()
        return (report._status_page(view, token=token, error=exc.message, identity_draft=raw),
                exc.status, exc.headers)
    return report._status_page(view, token=token, notice=NAME_ADDED, own_action=True), 200



@pages.get("/verify")
def verify_page() -> str:
    return render_template("report/verify.html", checked=None, form={})


@pages.post("/verify")
def verify_page_post() -> tuple[str, int]:
    form = common.form_fields()
    details = form.get("details") or None
    try:
        checked = receipts.verify(form.get("receipt"), _published(), details)
    except DomainError as exc:
        return render_template("report/verify.html", checked=None, form=form,
                               error=exc.message), 400
    return render_template("report/verify.html", checked=checked, form=form), 200


@pages.post("/status/receipt")
def receipt_file() -> Any:
    """The case's receipt as a file to save, fetched again with the token (posted, never in
    the address; a miss or a refusal answers as the status page's other forms do)."""
    from whistle.web import report

    return report._on_case(common.form_fields(), _receipt_file)


def _receipt_file(view: reporter.ReporterView, _form: dict[str, Any], _token: str) -> Any:
    text = proof.reporter_part(db.session(), instance_keys(), view.case.id,
                               lambda: view.thread_key, []).get("receipt")
    if not text:
        raise ApiError(404, "not_found", "this report has no receipt")
    return Response(text, mimetype="text/plain", headers={
        "Content-Disposition": f'attachment; filename="whistle-receipt-{view.case.id}.txt"'})
