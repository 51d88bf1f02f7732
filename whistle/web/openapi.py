"""``GET /api/v1/openapi.json``: an OpenAPI 3.1 description of the JSON API, for integrators.

Written by hand, one entry per route and method, from CONTRACT.md; ``tests/test_openapi.py``
checks it against ``app.url_map`` both ways (every API route described, nothing described
that is not served) and validates it with ``openapi-spec-validator``. A new API route fails
that test until it is described here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

bp = Blueprint("openapi", __name__)

# Field types in request bodies: a short name, or a JSON Schema of its own.
_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"}, "bool": {"type": "boolean"}, "int": {"type": "integer"},
    "obj": {"type": "object"}, "strs": {"type": "array", "items": {"type": "string"}},
    "objs": {"type": "array", "items": {"type": "object"}},
}
_ERRORS = {
    "400": "Malformed or invalid input: `{\"error\", \"message\"}`",
    "401": "No valid session (`Authorization: Bearer <access_token>`)",
    "403": "Signed in, but not allowed",
    "404": "Not found, or not assigned to the caller (the same answer)",
    "409": "Refused in the case's or account's present state (the `error` code says why)",
    "413": "The body is larger than the limit",
    "429": "Too many requests",
}


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    tag: str
    summary: str
    auth: bool = True  # a reviewer's bearer token
    body: dict[str, str] = field(default_factory=dict)  # field -> type; "?" suffix: optional
    ok: str = "200"
    errors: tuple[str, ...] = ("400", "401")
    multipart: bool = False
    query: tuple[str, ...] = ()


_R, _V, _A, _P = "reporters", "reviewers", "administrators", "public"
_CASE = "/api/v1/cases/{case_ref}"

OPERATIONS: tuple[Op, ...] = (
    # Reporters: no account, no cookie.
    Op("GET", "/api/v1/intake", _R, "Categories, units, reviewers a reporter may exclude, limits",
       auth=False, errors=()),
    Op("POST", "/api/v1/concerns", _R, "Submit a concern (JSON, or multipart with a `concern` "
       "part and `attachment` files); answers the token once", auth=False,
       body={"category": "str", "details": "str", "unit": "str?", "about_senior": "bool?",
             "exclude_reviewers": "strs?", "identity": "obj?", "about": "obj?",
             "escrow": "bool?"},
       ok="201", errors=("400", "403", "413", "429"), multipart=True),
    Op("POST", "/api/v1/status", _R, "The case's status, timeline and conversation, by token",
       auth=False, body={"token": "str"}, errors=("400", "404", "429")),
    Op("POST", "/api/v1/status/messages", _R, "A message from the reporter to the reviewers",
       auth=False, body={"token": "str", "body": "str"}, ok="201",
       errors=("400", "403", "404", "409", "429")),
    Op("POST", "/api/v1/status/attachments", _R, "Files from the reporter (multipart: `token` "
       "and `attachment` parts)", auth=False, body={"token": "str"}, ok="201",
       errors=("400", "403", "404", "409", "413", "429"), multipart=True),
    Op("POST", "/api/v1/status/token", _R, "Replace the token; the old one stops at once",
       auth=False, body={"token": "str"}, errors=("400", "404", "429")),
    # Matching escrow (issue 25): a concern held until someone else names the same person.
    Op("POST", "/api/v1/status/release", _R, "Send a held concern to the reviewers now",
       auth=False, body={"token": "str"}, errors=("400", "404", "409", "429")),
    Op("POST", "/api/v1/status/withdraw", _R, "Withdraw a held concern: deleted at once, the "
       "token then answers 404", auth=False, body={"token": "str"},
       errors=("400", "404", "409", "429")),
    Op("GET", "/api/v1/admin/escrow", _A, "How many concerns are held (null under the "
       "statistics threshold)", errors=("401", "403")),
    # Oral reporting (issue 24): the reporter checks the record an operator wrote down.
    Op("POST", "/api/v1/status/transcript", _R, "Agree the record of an oral concern, or "
       "correct it", auth=False, body={"token": "str", "agree": "bool", "corrections": "str?"},
       ok="201", errors=("400", "403", "404", "409", "429")),
    Op("POST", "/api/v1/operator/concerns", _V, "An intake operator files a concern taken by "
       "phone, voicemail, meeting or letter; answers the token once",
       body={"category": "str", "details": "str", "channel": "str",
             "recording_consent": "bool?", "unit": "str?", "about_senior": "bool?",
             "exclude_reviewers": "strs?", "identity": "obj?"},
       ok="201", errors=("400", "401", "403", "413", "429"), multipart=True),
    # Identity opened only by two, and signed receipts (issue 22).
    Op("POST", "/api/v1/status/identity", _R, "The reporter gives their identity later "
       "(release: on_request or to_reviewers)", auth=False,
       body={"token": "str", "identity": "obj"}, ok="201",
       errors=("400", "403", "404", "409", "429")),
    Op("POST", "/api/v1/receipts/verify", _P, "Check a signed receipt (and, optionally, the "
       "text sent); reads no database", auth=False, body={"receipt": "str", "details": "str?"},
       errors=("400",)),
    Op("GET", "/api/v1/receipts/keys", _P, "The signing public keys receipts verify with, "
       "current and past", auth=False, errors=()),
    Op("POST", _CASE + "/identity/requests", _V, "Ask to open the reporter's identity, with a "
       "reason (a different assigned reviewer approves)", body={"reason": "str"}, ok="202",
       errors=("400", "401", "404", "409")),
    Op("POST", _CASE + "/identity/requests/{request_id}/approve", _V, "Approve opening the "
       "identity (never the requester)", errors=("401", "404", "409")),
    Op("POST", _CASE + "/identity/requests/{request_id}/reject", _V, "Reject (or withdraw) a "
       "request to open the identity", errors=("401", "404", "409")),
    # Public: anyone may check who can read concerns.
    Op("GET", "/api/v1/roster", _P, "The signed roster of people who can receive concerns",
       auth=False, errors=()),
    Op("GET", "/api/v1/openapi.json", _P, "This description", auth=False, errors=()),
    # Reviewers.
    Op("POST", "/api/v1/auth/login", _V, "Sign in; answers a bearer access token",
       auth=False, body={"email": "str", "password": "str", "otp": "str?"},
       errors=("400", "401", "429")),
    Op("POST", "/api/v1/auth/logout", _V, "Sign out; the session's key material is destroyed",
       ok="204", errors=("401",)),
    Op("POST", "/api/v1/auth/enrol", _V, "Enrol with a one-time code from the enrolment mail",
       auth=False, body={"code": "str", "password": "str"}, errors=("400", "429")),
    Op("GET", "/api/v1/me", _V, "The signed-in account", errors=("401",)),
    Op("POST", "/api/v1/me/password", _V, "Change the password (rotates the key pair)",
       body={"password": "str", "new_password": "str"}),
    Op("GET", "/api/v1/reviewers", _V, "Reviewers a case may be shared with", errors=("401",)),
    Op("GET", "/api/v1/cases", _V, "The caller's cases, a page at a time",
       query=("status", "sort", "page", "per_page", "after"), errors=("400", "401")),
    Op("GET", _CASE, _V, "One decrypted case", errors=("401", "404", "409")),
    Op("GET", _CASE + "/attachments/{attachment_id}", _V, "A decrypted attachment",
       errors=("401", "404", "409")),
    Op("POST", _CASE + "/transitions", _V, "Move the case (closing needs a second reviewer)",
       body={"to": "str", "note": "str?", "outcome": "str?", "feedback": "str?"},
       errors=("400", "401", "404", "409")),
    Op("POST", _CASE + "/messages", _V, "A message to the reporter", body={"body": "str"},
       ok="201", errors=("400", "401", "404", "409")),
    Op("POST", _CASE + "/notes", _V, "An internal note (never shown to the reporter)",
       body={"body": "str"}, ok="201", errors=("400", "401", "404", "409")),
    Op("POST", _CASE + "/reviewers", _V, "Propose sharing the case with another reviewer",
       body={"reviewer_id": "str"}, ok="202", errors=("400", "401", "404", "409")),
    Op("POST", _CASE + "/reviewers/{reviewer_id}/approve", _V,
       "Approve a proposed share (a different assigned reviewer)", ok="201",
       errors=("401", "404", "409")),
    Op("POST", _CASE + "/reviewers/{reviewer_id}/reject", _V, "Reject a proposed share",
       errors=("401", "404", "409")),
    Op("POST", _CASE + "/recuse", _V, "Step back from a case; a replacement is routed",
       body={"reason": "str"}, errors=("400", "401", "404", "409")),
    # Legal holds (issue 23): placed and lifted by two assigned reviewers.
    Op("GET", _CASE + "/hold", _V, "The case's legal hold and the end of its retention",
       errors=("401", "404")),
    Op("POST", _CASE + "/hold", _V, "Propose a legal hold (another assigned reviewer approves)",
       body={"reason": "str"}, ok="202", errors=("400", "401", "404", "409")),
    Op("DELETE", _CASE + "/hold", _V, "Propose lifting the legal hold", body={"reason": "str?"},
       ok="202", errors=("400", "401", "404", "409")),
    Op("POST", _CASE + "/hold/approve", _V, "Approve the pending hold proposal (a different "
       "assigned reviewer)", errors=("401", "404", "409")),
    Op("POST", _CASE + "/hold/reject", _V, "Reject the pending hold proposal",
       errors=("401", "404", "409")),
    # Referral to an outside agency, erasure, check-ins (issue 23, whistle.web.lifecycle_api).
    Op("POST", "/api/v1/admin/agencies", _A, "Propose an agency and its age key (approved "
       "through /admin/changes by a second person)", body={"name": "str",
                                                           "age_recipient": "str"},
       ok="202", errors=("400", "401", "403")),
    Op("POST", "/api/v1/admin/agencies/{agency_id}/key", _A, "Propose a new age key for an "
       "agency", body={"age_recipient": "str"}, ok="202",
       errors=("400", "401", "403", "404", "409")),
    Op("DELETE", "/api/v1/admin/agencies/{agency_id}", _A, "Propose retiring an agency",
       ok="202", errors=("401", "403", "404", "409")),
    Op("GET", "/api/v1/agencies", _V, "Agencies cases may be referred to", errors=("401",)),
    Op("POST", _CASE + "/referrals", _V, "Propose a referral (another assigned reviewer "
       "approves)", body={"agency_id": "str", "parts": "strs", "purpose": "str?",
                          "inform_reporter": "bool?", "exception": "str?",
                          "identity_basis": "str?"},
       ok="202", errors=("400", "401", "404", "409")),
    Op("GET", _CASE + "/referrals", _V, "The case's referrals", errors=("401", "404")),
    Op("POST", _CASE + "/referrals/{referral_id}/approve", _V, "Approve a referral: the "
       "package is built and encrypted to the agency", errors=("401", "404", "409")),
    Op("POST", _CASE + "/referrals/{referral_id}/reject", _V, "Reject a referral",
       errors=("401", "404", "409")),
    Op("GET", _CASE + "/referrals/{referral_id}/package", _V, "The age-encrypted package",
       errors=("401", "404")),
    Op("POST", _CASE + "/erasures", _V, "Propose erasing an attachment, message or note",
       body={"item": "str", "id": "str"}, ok="202", errors=("400", "401", "404", "409")),
    Op("POST", _CASE + "/erasures/{erasure_id}/approve", _V, "Approve an erasure (a "
       "different assigned reviewer)", errors=("401", "404", "409")),
    Op("POST", _CASE + "/erasures/{erasure_id}/reject", _V, "Reject an erasure",
       errors=("401", "404", "409")),
    Op("POST", "/api/v1/status/checkin", _R, "Answer the detriment check-in of a closed case",
       auth=False, body={"token": "str", "answer": "str", "details": "str?"}, ok="201",
       errors=("400", "403", "404", "409", "429")),
    Op("GET", "/api/v1/stats/checkins", _V, "Check-in answers, small counts suppressed",
       errors=("401",)),
    # Administrators (and reviewers, for approving changes).
    Op("GET", "/api/v1/admin/changes", _A, "Pending two-person changes", errors=("401", "403")),
    Op("POST", "/api/v1/admin/changes/{change_id}/approve", _A,
       "Approve a change (never the proposer or the account concerned)",
       errors=("401", "403", "404", "409")),
    Op("POST", "/api/v1/admin/changes/{change_id}/reject", _A, "Reject a change",
       errors=("401", "403", "404", "409")),
    Op("POST", "/api/v1/admin/reviewers", _A, "Enrol a reviewer (a proposal once sealed)",
       body={"name": "str", "email": "str", "units": "strs?", "independent": "bool?",
             "senior": "bool?", "admin": "bool?"}, ok="202",
       errors=("400", "401", "403", "409")),
    Op("GET", "/api/v1/admin/log", _A, "The administration log", query=("after",),
       errors=("400", "401", "403")),
    Op("GET", "/api/v1/admin/checkpoints", _A, "Signed audit checkpoints", query=("after",),
       errors=("400", "401", "403")),
)


def _parameters(op: Op) -> list[dict[str, Any]]:
    names = [p.strip("{}") for p in op.path.split("/") if p.startswith("{")]
    found = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
             for n in names]
    return found + [{"name": q, "in": "query", "required": False,
                     "schema": {"type": "string"}} for q in op.query]


def _request_body(op: Op) -> dict[str, Any]:
    schema = {"type": "object", "additionalProperties": True,
              "properties": {k: _TYPES[t.rstrip("?")] for k, t in op.body.items()},
              "required": [k for k, t in op.body.items() if not t.endswith("?")]}
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if op.multipart:
        content["multipart/form-data"] = {"schema": {"type": "object"}}
    return {"required": True, "content": content}


def _operation(op: Op) -> dict[str, Any]:
    answer: dict[str, Any] = ({"description": "No content"} if op.ok == "204" else
              {"description": "Success", "content": {"application/json": {
                  "schema": {"type": "object"}}}})
    found: dict[str, Any] = {
        "tags": [op.tag], "summary": op.summary,
        "operationId": f"{op.method.lower()}_{op.path.removeprefix('/api/v1/')}",
        "responses": {op.ok: answer} | {code: {"description": _ERRORS[code], "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for code in op.errors}}
    if parameters := _parameters(op):
        found["parameters"] = parameters
    if op.body:
        found["requestBody"] = _request_body(op)
    found["security"] = [{"bearer": []}] if op.auth else []
    return found


@functools.lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The whole description (built once)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Whistle API", "version": "1",
                 "description": "Concerns in, encrypted to their reviewers; see CONTRACT.md."},
        "servers": [{"url": "/"}],
        "tags": [{"name": t} for t in (_R, _V, _A, _P)],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string"}, "message": {"type": "string"}}}}},
    }


@bp.get("/api/v1/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(document())
