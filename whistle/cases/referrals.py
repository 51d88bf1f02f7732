"""Referring a case to an outside agency (issue 23): a proposal, a second reviewer, one
package encrypted to the agency's age key.

An assigned reviewer proposes (``whistle.cases.proposals``, type ``referral``, subject the
case) the agency, the parts (``details``, ``messages``, ``notes``, ``attachments`` or
``attachments:<id>``), the purpose and whether the reporter is told. A *different*
assigned reviewer approves: their own session unwraps the case keys, the package is built
(whistle.cases.package), signed with the instance signing key, encrypted to the agency's
key alone with age, and kept for ``PACKAGE_DAYS`` for the assigned reviewers to hand over.
The trail records ``referral_proposed``, then ``referral_approved`` (agency, purpose,
parts, the package's SHA-256) and, for the reporter's timeline, ``referred`` (to whom),
unless the approved proposal names a documented exception (``EXCEPTIONS``).

The reporter's identity goes only when two reviewers already released it (issue 22,
whistle.cases.identity_release) and the proposal names its basis (``IDENTITY_BASES``);
otherwise ``identity`` is refused with 409 ``identity_not_released`` (or 400).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.cases import attachments, audit, notices, package, proposals, receipts
from whistle.cases import identity as ident
from whistle.cases import keys as casekeys
from whistle.cases.reading import Reader, assigned_case, case_keys
from whistle.errors import InvalidInput, NotFound, Refused
from whistle.keys import InstanceKeys
from whistle.store.models import (
    Agency,
    Assignment,
    Attachment,
    AttachmentChunk,
    AuditEvent,
    Change,
    Concern,
    Message,
    ReferralPackage,
    Reviewer,
    utcnow,
)

REFERRAL = "referral"
TYPES = (REFERRAL,)
AGENCY_ACTIVE = "active"
PACKAGE_DAYS = 30  # how long the encrypted package is kept for handing over
PURPOSES = ("consultation", "investigation", "regulatory", "transfer", "other")
# Documented exceptions to telling the reporter (docs/referrals-and-checkins.md).
EXCEPTIONS = ("prejudice_investigation", "risk_to_safety")
SIMPLE_PARTS = ("details", "messages", "notes", "attachments")
# On what ground the identity may go with a referral (docs/referrals-and-checkins.md): the
# reporter's explicit consent, or a necessary and proportionate obligation imposed by law
# (Directive 2019/1937 Art. 16(2)). Both reviewers attest it; it is in the trail.
IDENTITY_BASES = ("reporter_consent", "legal_obligation")
MAX_PARTS = 200
_ENTRY_LABEL = b"whistle:1:agency-entry:"


# -- agencies: the signed entry in force ------------------------------------------------


def agency_entry(agency: Agency) -> bytes:
    """The canonical bytes the instance signing key signs for an agency."""
    return _ENTRY_LABEL + json.dumps(
        {"v": 1, "id": agency.id, "name": agency.name, "age_recipient": agency.age_recipient,
         "state": agency.state}, sort_keys=True, separators=(",", ":"),
        ensure_ascii=True).encode()


def sign_agency(agency: Agency, instance: InstanceKeys) -> None:
    agency.signature = crypto.sign(instance.signing_key, agency_entry(agency))


def usable_agency(session: Session, instance: InstanceKeys, agency_id: Any) -> Agency:
    """An active agency whose entry verifies: 400 unknown, 409 ``agency_not_active`` or
    ``unverified_agency`` (its row does not match what the signing key signed)."""
    agency = session.get(Agency, agency_id) if isinstance(agency_id, str) and \
        len(agency_id) <= 64 else None
    if agency is None:
        raise InvalidInput("no such agency", "agency_id")
    if agency.state != AGENCY_ACTIVE:
        raise Refused("agency_not_active", "this agency is not registered (yet), or retired")
    if not agency.signature or not crypto.verify_signature(
            instance.signing_public, agency_entry(agency), agency.signature):
        raise Refused("unverified_agency", "this agency's key does not match its approved "
                      "entry: nothing is sent to it")
    return agency


# -- proposing ------------------------------------------------------------------------------


def _attachment_ids(session: Session, case_ref: str) -> set[str]:
    return {a.id for a in session.scalars(select(Attachment).where(
        Attachment.concern_id == case_ref, Attachment.chunk_count > 0))}


def parse_parts(session: Session, case_ref: str, value: Any,
                identity_basis: Any = None, legacy_identity: bytes | None = None) -> list[str]:
    """The chosen parts, checked against the case: 400 for anything unknown; ``identity``
    only once released to the reviewers (issue 22) and with a basis (``IDENTITY_BASES``),
    409 ``identity_not_released`` otherwise."""
    if not isinstance(value, list) or not value or len(value) > MAX_PARTS or \
            not all(isinstance(p, str) for p in value):
        raise InvalidInput("parts must be a list such as [\"details\", \"attachments:<id>\"]",
                           "parts")
    files = _attachment_ids(session, case_ref)
    out: list[str] = []
    for part in dict.fromkeys(value):
        if part == "identity":
            _identity_allowed(session, case_ref, identity_basis, legacy_identity)
            out.append(part)
            continue
        kind, _, ident = part.partition(":")
        if part not in SIMPLE_PARTS and not (kind == "attachments" and ident in files):
            raise InvalidInput(f"unknown part {part[:80]}", "parts")
        out.append(part)
    return out


def _identity_allowed(session: Session, case_ref: str, basis: Any,
                      legacy: bytes | None) -> None:
    if ident.state_of(session, case_ref, legacy) != ident.RELEASED:
        raise Refused("identity_not_released", "the reporter's identity has not been "
                      "released to the reviewers: it cannot be referred")
    if basis not in IDENTITY_BASES:
        raise InvalidInput("referring the identity needs its basis: "
                           + ", ".join(IDENTITY_BASES), "identity_basis")


def _options(data: dict[str, Any]) -> dict[str, Any]:
    purpose = data.get("purpose", "consultation")
    if purpose not in PURPOSES:
        raise InvalidInput("purpose must be one of " + ", ".join(PURPOSES), "purpose")
    inform = data.get("inform_reporter", True)
    if not isinstance(inform, bool):
        raise InvalidInput("inform_reporter must be true or false", "inform_reporter")
    exception = data.get("exception")
    if not inform and exception not in EXCEPTIONS:
        raise InvalidInput("not telling the reporter needs a documented exception: "
                           + ", ".join(EXCEPTIONS), "exception")
    return {"purpose": purpose, "inform_reporter": inform,
            "exception": None if inform else exception}


def propose(session: Session, signed: Reader, instance: InstanceKeys, case_ref: Any,
            data: Any, now: dt.datetime | None = None) -> Change:
    """An assigned reviewer proposes a referral (commits). 404 unless assigned."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    if not isinstance(data, dict):
        raise InvalidInput("the referral must be a JSON object")
    agency = usable_agency(session, instance, data.get("agency_id"))
    parts = parse_parts(session, concern.id, data.get("parts"), data.get("identity_basis"),
                        concern.identity_ct)
    payload = {"agency": agency.id, "parts": parts} | _options(data) | (
        {"identity_basis": data["identity_basis"]} if "identity" in parts else {})
    change = proposals.create(session, REFERRAL, concern.id, payload, signed.reviewer_id, now)
    audit.record(session, concern.id, "referral_proposed", signed.reviewer_id, now,
                 {"referral": change.id, "agency": agency.id, "purpose": payload["purpose"],
                  "parts": payload["parts"]})
    notices.tell_reviewers(session, concern, besides=signed.reviewer_id)
    session.commit()
    return change


# -- deciding ------------------------------------------------------------------------------


def _referral(session: Session, concern: Concern, referral_id: Any) -> Change:
    change = proposals.open_change(session, referral_id, TYPES)
    if change.subject != concern.id:
        raise NotFound("no such referral")
    # Two approvals at once: the second waits for the first's commit, then finds it decided.
    session.refresh(change, with_for_update=True)
    if change.state != proposals.PENDING:
        raise Refused("already_decided", f"this change was already {change.state}")
    return change


def _assigned_ids(session: Session, case_ref: str) -> set[str]:
    return set(session.scalars(select(Assignment.reviewer_id).join(Reviewer).where(
        Assignment.concern_id == case_ref, Reviewer.active.is_(True))))


def _names(session: Session, *ids: str) -> dict[str, str]:
    return {r.id: r.name for r in session.scalars(select(Reviewer).where(Reviewer.id.in_(ids)))}


def _contents(session: Session, concern: Concern, ck: casekeys.CaseKeys, change: Change,
              agency: Agency, approver: str, now: dt.datetime,
              receipt_text: str | None = None) -> package.Contents:
    ref, plan = concern.id, proposals.payload(change)
    details = crypto.open_sealed(ck.case, concern.details_ct, casekeys.part(ref, "details"))
    names = _names(session, change.proposed_by, approver)
    contents = package.Contents(
        case={"case_ref": ref, "category": concern.category, "status": concern.status,
              "received": concern.created.isoformat()},
        agency={"id": agency.id, "name": agency.name, "age_recipient": agency.age_recipient},
        referral={"id": change.id, "purpose": plan["purpose"], "parts": plan["parts"],
                  "proposed_by": {"id": change.proposed_by,
                                  "name": names.get(change.proposed_by)},
                  "approved_by": {"id": approver, "name": names.get(approver)},
                  "approved_at": now.isoformat() + "Z"},
        receipt={"case_ref": ref, "received": concern.created.isoformat(),
                 "category": concern.category,
                 "details_sha256": hashlib.sha256(details).hexdigest()})
    parts = plan["parts"]
    if receipt_text is not None:  # listed in the signed manifest like every file
        contents.files.append(("receipt.txt", receipt_text.encode()))
    if "details" in parts:
        contents.files.append(("details.txt", details))
    if "identity" in parts:
        found = ident.view(session, ref, ck, concern.identity_ct)["identity"]
        if found is None:
            raise Refused("identity_not_released", "the reporter's identity is not released")
        contents.files.append(("identity.json", json.dumps(
            found | {"basis": plan.get("identity_basis")}, indent=2,
            ensure_ascii=False).encode()))
    for part, kinds in (("messages", ("message", "feedback")), ("notes", ("note",))):
        if part in parts:
            contents.files.append((f"{part}.json", _thread(session, ref, ck, kinds)))
    chosen = [p.partition(":")[2] for p in parts if p.startswith("attachments:")]
    everything = "attachments" in parts
    for index, att in enumerate(session.scalars(select(Attachment).where(
            Attachment.concern_id == ref, Attachment.chunk_count > 0).order_by(
            Attachment.created, Attachment.id))):
        if everything or att.id in chosen:
            name, data = _file(session, att, ck)
            contents.files.append((package.safe_name(index + 1, name), data))
    return contents


def _file(session: Session, att: Attachment, ck: casekeys.CaseKeys) -> tuple[str, bytes]:
    """An attachment's name and bytes, every chunk checked (through this session: the
    download path reads on connections of its own, after the request)."""
    kind, key, meta = attachments._open_meta(att, ck)
    ctx = attachments.chunk_context(att.concern_id, att.id, kind)
    fkey, count = crypto.file_key(key, ctx), att.chunk_count
    rows = session.execute(select(AttachmentChunk.index, AttachmentChunk.blob).where(
        AttachmentChunk.attachment_id == att.id).order_by(AttachmentChunk.index)).all()
    if [int(i) for i, _b in rows] != list(range(count)):
        raise crypto.CryptoError("attachment chunks are missing, extra or out of order")
    data = b"".join(crypto.open_chunk(fkey, int(i), int(i) == count - 1, bytes(b), ctx)
                    for i, b in rows)
    return str(meta.get("filename") or "file"), data


def _thread(session: Session, ref: str, ck: casekeys.CaseKeys, kinds: tuple[str, ...]
            ) -> bytes:
    rows = session.execute(select(Message.id, Message.sender, Message.created, Message.kind,
                                  Message.body_ct).where(
        Message.concern_id == ref, Message.kind.in_(kinds)).order_by(Message.seq)).all()
    return json.dumps([
        {"id": mid, "from": sender, "at": created.isoformat(), "kind": kind,
         "body": crypto.open_sealed(ck.case if kind == "note" else ck.thread, body_ct,
                                    casekeys.part(ref, f"{kind}:{mid}")).decode()}
        for mid, sender, created, kind, body_ct in rows], indent=2, ensure_ascii=False).encode()


def approve(session: Session, signed: Reader, instance: InstanceKeys, case_ref: Any,
            referral_id: Any, now: dt.datetime | None = None) -> tuple[Change, str]:
    """A different assigned reviewer approves: the package is built, encrypted to the
    agency, stored, and the trail records its SHA-256 (commits). Returns the change and
    the SHA-256 (hex)."""
    now = (now or utcnow()).replace(microsecond=0)
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    change = _referral(session, concern, referral_id)
    proposals.guard(change, signed.reviewer_id, [], _assigned_ids(session, concern.id))
    plan = proposals.payload(change)
    agency = usable_agency(session, instance, plan["agency"])
    concern, ck = case_keys(session, signed, concern.id)  # the approver's own session
    receipt_text = receipts.for_case(session, concern.id,
                                     receipts.storage_key(instance.reporter_pepper))
    archive = package.build(_contents(session, concern, ck, change, agency,
                                      signed.reviewer_id, now, receipt_text),
                            instance.signing_key, instance.signing_public, now)
    sealed = crypto.age_encrypt(archive, agency.age_recipient)
    digest = hashlib.sha256(sealed).digest()
    session.add(ReferralPackage(id=change.id, concern_id=concern.id, agency_id=agency.id,
                                sha256=digest, created=now, package=sealed,
                                expires=now.date() + dt.timedelta(days=PACKAGE_DAYS)))
    proposals.decide(change, proposals.APPROVED, signed.reviewer_id, now)
    audit.record(session, concern.id, "referral_approved", signed.reviewer_id, now,
                 {"referral": change.id, "agency": agency.id, "agency_name": agency.name,
                  "purpose": plan["purpose"], "parts": plan["parts"],
                  "package_sha256": digest.hex(), "proposed_by": change.proposed_by,
                  "reporter_told": plan["inform_reporter"], "exception": plan["exception"],
                  "identity_basis": plan.get("identity_basis")})
    if plan["inform_reporter"]:
        # Reporter-side time is a day (issue 20): the reporter's timeline shows this.
        audit.record(session, concern.id, "referred", "system",
                     dt.datetime.combine(now.date(), dt.time()),
                     {"referral": change.id, "agency": agency.id, "agency_name": agency.name,
                      "identity_included": "identity" in plan["parts"]})
    notices.tell_reviewers(session, concern, besides=signed.reviewer_id)
    purge_expired(session, now.date())  # any case's packages past their keeping time
    session.commit()
    return change, digest.hex()


def reject(session: Session, signed: Reader, case_ref: Any, referral_id: Any,
           now: dt.datetime | None = None) -> Change:
    """Any assigned reviewer (the proposer withdrawing it included) ends a proposed
    referral (commits)."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    change = _referral(session, concern, referral_id)
    proposals.decide(change, proposals.REJECTED, signed.reviewer_id, now)
    audit.record(session, concern.id, "referral_rejected", signed.reviewer_id, now,
                 {"referral": change.id, "proposed_by": change.proposed_by})
    session.commit()
    return change


# -- the package and the lists -----------------------------------------------------------


def package_bytes(session: Session, signed: Reader, case_ref: Any, referral_id: Any,
                  now: dt.datetime | None = None) -> tuple[ReferralPackage, bytes]:
    """The encrypted package, for an assigned reviewer to hand over (commits the
    ``referral_package_downloaded`` event first). 404 unknown; 410 ``expired`` once its
    keeping time is over (its bytes are deleted then)."""
    now = now or utcnow()
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    kept = session.get(ReferralPackage, referral_id) if isinstance(referral_id, str) and \
        len(referral_id) <= 64 else None
    if kept is None or kept.concern_id != concern.id:
        raise NotFound("no such referral package")
    if kept.package is None or kept.expires < now.date():
        kept.package = None
        session.commit()
        raise Refused("expired", "this package was kept for its time and deleted; its "
                      "SHA-256 stays in the case's trail", 410)
    data = bytes(kept.package)
    audit.record(session, concern.id, "referral_package_downloaded", signed.reviewer_id, now,
                 {"referral": kept.id})
    session.commit()
    return kept, data


def purge_expired(session: Session, today: dt.date) -> int:
    """Delete the bytes of packages past their keeping time (caller commits)."""
    count = 0
    for kept in session.scalars(select(ReferralPackage).where(
            ReferralPackage.expires < today, ReferralPackage.package.is_not(None))):
        kept.package, count = None, count + 1
    return count


def listing(session: Session, signed: Reader, case_ref: Any) -> list[dict[str, Any]]:
    """The case's referrals, proposed and decided (assigned reviewers only)."""
    concern = assigned_case(session, signed.reviewer_id, case_ref)
    out = []
    for change in session.scalars(select(Change).where(
            Change.type == REFERRAL, Change.subject == concern.id).order_by(
            Change.proposed_at, Change.id)):
        kept = session.get(ReferralPackage, change.id)
        out.append(proposals.describe(change) | {
            "referral_id": change.id,
            "package_sha256": kept.sha256.hex() if kept is not None else None,
            "package_kept_until": kept.expires.isoformat() if kept is not None and
            kept.package is not None else None})
    return out


def name_agencies(session: Session, case_ref: str, events: list[dict[str, Any]]) -> None:
    """Say to whom, and whether with the reporter's name, on the reporter's ``referred``
    events (in place, in order)."""
    if not any(e.get("type") == "referred" for e in events):
        return
    found = iter([json.loads(d) for d in session.scalars(
        select(AuditEvent.data).where(AuditEvent.concern_id == case_ref,
                                      AuditEvent.type == "referred").order_by(AuditEvent.seq))])
    for event in events:
        if event.get("type") == "referred":
            data: dict[str, Any] = next(found, {})
            event["agency"] = data.get("agency_name")
            # Whether the reporter's name went with it (Art. 16(3): they are told).
            event["identity_included"] = bool(data.get("identity_included"))
