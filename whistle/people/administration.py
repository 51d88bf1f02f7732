"""What administrators do: accounts, routing settings, the attention list. Never case content.

Administrators hold no case key. The attention list names cases by reference
and dates only, and hides a case from an administrator the reporter excluded
from it: an excluded person finds no trace of the case anywhere.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from whistle.config import Settings
from whistle import errors, validation
from whistle.cases import keys as casekeys
from whistle.cases import clocks, sharing
from whistle.keys import InstanceKeys
from whistle.people import accounts, adminlog, firstrun, operators, roster
from whistle.store import options
from whistle.store.models import Concern, Exclusion, Reviewer
from whistle.errors import InvalidInput

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CATEGORY_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@dataclass(frozen=True)
class NewAccount:
    name: str
    email: str
    password: str | None  # None: generate one, shown once
    units: tuple[str, ...] = ()
    senior: bool = False
    independent: bool = False
    admin: bool = False
    reviews: bool = True
    operator: bool = False  # an intake operator (issue 24): no other role


def _check_account(session: Session, settings: Settings, acc: NewAccount) -> None:
    operators.check_roles(acc.operator, acc.reviews, acc.admin, acc.senior, acc.independent,
                          acc.units)
    validation.line(acc.name, "name", settings.max_field_chars, required=True)
    email = validation.line(acc.email, "email", 254, required=True) or ""
    if not _EMAIL.fullmatch(email):
        raise InvalidInput("enter an email address", "email")
    if session.scalars(select(Reviewer.id).where(Reviewer.email == email.lower())).first():
        raise InvalidInput(f"{email} is already enrolled", "email", "duplicate", 409)
    if acc.password is not None:
        accounts.check_password_strength(acc.password)
    known = set(options.units(session))
    for unit in acc.units:
        if unit not in known:
            raise InvalidInput(f"unknown unit {unit}", "units")


def generated_password() -> str:
    """A first password for someone else to replace: 120 bits, easy to read out."""
    return "-".join(secrets.token_urlsafe(6) for _ in range(4))


def enrol(session: Session, settings: Settings, acc: NewAccount, actor: str, *,
          keys: InstanceKeys) -> tuple[Reviewer, str | None]:
    """Enrol an account for someone else. Returns (reviewer, generated password or None).

    The administrator knows this first password, so the account must replace
    it before doing anything else (``accounts.account_setup_needed``).
    """
    _check_account(session, settings, acc)
    password = acc.password if acc.password is not None else generated_password()
    r = accounts.enrol(session, settings, acc.name, acc.email, password, list(acc.units),
                       acc.senior, acc.independent, acc.admin, acc.reviews, actor=actor,
                       keys=keys, operator=acc.operator)
    accounts.require_password_change(session, r.id)
    session.commit()
    return r, (password if acc.password is None else None)


def update_reviewer(session: Session, settings: Settings, reviewer_id: str,
                    units: list[str], senior: bool, independent: bool, actor: str, *,
                    keys: InstanceKeys) -> Reviewer:
    """Change routing attributes. Existing cases keep their reviewers (no retroactive routing).
    A change (not a save of the same values) goes into the administration log, and the
    account's roster entry is signed again."""
    r = session.get(Reviewer, reviewer_id)
    if r is None:
        raise errors.NotFound()
    known = set(options.units(session))
    for unit in units:
        if unit not in known:
            raise InvalidInput(f"unknown unit {unit}", "units")
    before = {"units": json.loads(r.units), "senior": r.is_senior,
              "independent": r.is_independent}
    after = {"units": sorted(set(units)), "senior": senior, "independent": independent}
    r.units, r.is_senior, r.is_independent = json.dumps(after["units"]), senior, independent
    if before != after:
        adminlog.record(session, "reviewer_changed", actor,
                        {"reviewer": r.id, "before": before, "after": after})
        if r.state == "active":
            roster.sign_entry(r, keys, session=session)
    session.commit()
    return r


def disable(session: Session, settings: Settings, keys: InstanceKeys, admin: Reviewer,
            reviewer_id: str) -> list[tuple[str, int]]:
    """Disable an account; the cases left short that this administrator may know of."""
    if reviewer_id == admin.id:
        raise InvalidInput("you cannot disable your own account", "reviewer")
    report = accounts.disable(session, settings, reviewer_id, actor=admin.id, keys=keys)
    return [(case_ref, left) for case_ref, left in report.understaffed
            if not sharing.is_excluded(session, keys, case_ref, admin.id)]


# The cases the attention list names, at most; the rest are counted.
ATTENTION_SHOWN = 200
# Read by the partial index that holds only these cases (``ix_concerns_attention``): the
# condition is the index's own. Columns only: no ciphertext.
_ATTENTION = select(Concern.id, Concern.created, Concern.acknowledge_by, Concern.feedback_by,
                    Concern.under_routed, Concern.overdue).where(
    or_(Concern.under_routed.is_(True), Concern.overdue.is_(True))
).order_by(Concern.created, Concern.id)
_EXCLUSION_BATCH = 500


@dataclass(frozen=True)
class Attention:
    cases: list[Any]  # the oldest, at most ATTENTION_SHOWN (rows of _ATTENTION's columns)
    total: int  # every case the administrator may know of that needs attention


def attention(session: Session, keys: InstanceKeys, admin_id: str,
              shown: int | None = None) -> Attention:
    """Under-routed or overdue cases, oldest first, minus those the admin is excluded from.

    The exclusions are looked up in batches (one query per 500 cases); the total counts
    only cases this administrator is not excluded from, so it says nothing of the others.
    """
    shown = ATTENTION_SHOWN if shown is None else shown
    cases: list[Any] = []
    total = 0
    rows = session.execute(_ATTENTION).all()
    for start in range(0, len(rows), _EXCLUSION_BATCH):
        batch = rows[start:start + _EXCLUSION_BATCH]
        tags = [casekeys.exclusion_tag(keys.index_pepper, r.id, admin_id) for r in batch]
        excluded = set(session.scalars(select(Exclusion.tag).where(Exclusion.tag.in_(tags))))
        for row, tag in zip(batch, tags, strict=True):
            if tag in excluded:
                continue
            total += 1
            if len(cases) < shown:
                cases.append(row)
    return Attention(cases, total)


def parse_categories(text: Any) -> list[dict[str, Any]]:
    """One category per line, ``id | label``; ids are lower-case words joined by dashes.
    After the label, optionally its own clock and retention (issue 23, whistle.cases.clocks):
    ``| ack_working_days=1 | retention_days=27394``."""
    if not isinstance(text, str):
        raise InvalidInput("categories must be text", "categories")
    out: list[dict[str, Any]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        cid, sep, label = raw.partition("|")
        label, *own = label.split("|")  # the category's own clock and retention, if any
        cid, label = cid.strip(), label.strip()
        if not sep or not _CATEGORY_ID.fullmatch(cid) or not label:
            raise InvalidInput(f"line {n}: write it as id | label, e.g. fraud | Fraud or theft",
                               "categories")
        label = validation.line(label, "categories", 200, required=True) or ""
        if cid in {c["id"] for c in out}:
            raise InvalidInput(f"line {n}: the id {cid} appears twice", "categories")
        out.append({"id": cid, "label": label} | clocks.parse_category_fields(own, n))
    if not out or len(out) > 50:
        raise InvalidInput("offer between 1 and 50 categories", "categories")
    return out


def parse_units(text: Any, max_chars: int) -> list[str]:
    """One unit per line; blank lines ignored; no duplicates."""
    if not isinstance(text, str):
        raise InvalidInput("units must be text", "units")
    out: list[str] = []
    for raw in text.splitlines():
        unit = validation.line(raw, "units", max_chars)
        if unit and unit not in out:
            out.append(unit)
    if len(out) > 200:
        raise InvalidInput("offer at most 200 units", "units")
    return out


def save_form_options(session: Session, categories: list[dict[str, str]], units: list[str],
                      actor: str, advice: str | None = None) -> None:
    """Set what the report form offers (and the landing page's advice text, unless None).
    Existing cases keep the values they were filed with. Changes go into the administration
    log: category ids and labels and units before and after; of the advice, its length."""
    before = {"categories": options.categories(session), "units": options.units(session)}
    after = {"categories": categories, "units": units}
    options.put(session, "categories", categories)
    options.put(session, "units", units)
    if before != after:
        adminlog.record(session, "form_options_changed", actor,
                        {"before": before, "after": after})
    if advice is not None and advice != options.advice(session):
        options.put(session, "advice", advice)
        adminlog.record(session, "advice_changed", actor, {"characters": len(advice)})
    session.commit()


# -- first-run setup -----------------------------------------------------


def setup_open(session: Session, keys_dir: str) -> bool:
    """/setup exists only while a code is pending and no administrator has ever been enrolled."""
    admins = session.scalar(select(func.count()).select_from(Reviewer).where(
        Reviewer.is_admin.is_(True))) or 0
    return admins == 0 and firstrun.pending(keys_dir)


class SetupRefused(errors.DomainError):
    """Wrong or used setup code."""

    code, status, message = "setup_refused", 403, "this setup code is wrong or already used"


def first_run(session: Session, settings: Settings, keys_dir: str, code: Any,
              admin: NewAccount, reviewers: list[NewAccount], *, keys: InstanceKeys
              ) -> list[tuple[Reviewer, str | None]]:
    """Enrol the first administrator (and reviewers) with the one-time code from ``init``,
    then seal the roster: from now on two people add a reader.

    Everything is checked before the code is used up, so a typo in a form
    field does not burn it. Reviewers enrolled here get a first password to
    replace, like any account an administrator creates.
    """
    people = [admin, *reviewers]
    emails = [a.email.strip().lower() for a in people]
    if len(set(emails)) != len(emails):
        raise InvalidInput("each person needs a different email address", "email")
    if admin.password is None:
        raise InvalidInput("choose your password", "password")
    for acc in people:
        _check_account(session, settings, acc)
    try:
        accepted = firstrun.check_and_consume(keys_dir, code)
    except OSError:  # a concurrent request used it first
        accepted = False
    if not accepted:
        raise SetupRefused()
    first = accounts.enrol(session, settings, admin.name, admin.email, admin.password,
                           list(admin.units), admin.senior, admin.independent, True,
                           admin.reviews, actor=adminlog.SETUP, keys=keys)
    done: list[tuple[Reviewer, str | None]] = [(first, None)]
    for acc in reviewers:
        done.append(enrol(session, settings, acc, adminlog.SETUP, keys=keys))
    roster.seal(session, adminlog.SETUP)
    session.commit()
    return done
