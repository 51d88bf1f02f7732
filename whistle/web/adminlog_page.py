"""The administration log as a page, for every signed-in reviewer and administrator.

Reviewers are the check on administrators (THREATS.md T5: an accused senior
who controls routing or accounts), so the log of who changed accounts and
routing is readable by all of them, not only by the administrators it
records. It names accounts and units, never a case.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, g, render_template
from flask_babel import gettext, ngettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from whistle.people import adminlog
from whistle.store import db
from whistle.store.models import Reviewer

bp = Blueprint("adminlog", __name__)
def _listed(items: list[str]) -> str:
    return ", ".join(items) if items else gettext("none")


def _changes(before: list[str], after: list[str], what: str) -> list[str]:
    added = [x for x in after if x not in before]
    removed = [x for x in before if x not in after]
    out = []
    if added:
        out.append(gettext("%(what)s added: %(items)s", what=what, items=_listed(added)))
    if removed:
        out.append(gettext("%(what)s removed: %(items)s", what=what, items=_listed(removed)))
    return out


def _yes_no(value: bool) -> str:
    return gettext("yes") if value else gettext("no")


_ROSTER_WORDS = {
    "reviewer_invited": _l("Account invited to choose a password"),
    "password_chosen": _l("Password chosen by the account's owner"),
    "key_rotated": _l("Password changed and key pair replaced"),
    "change_proposed": _l("Change proposed (waits for a second person)"),
    "change_approved": _l("Change approved by a second person"),
    "change_rejected": _l("Change rejected"),
    "roster_sealed": _l("Roster sealed: from now on, adding a reader takes two people"),
    "roster_entry_signed": _l("Roster entry signed"),
}


def _roster_event(type_: str, data: dict[str, Any], who: str,
                  names: dict[str, str]) -> tuple[str, str]:
    subject = data.get("subject")
    parts = [who or names.get(subject or "", subject or "")]
    if data.get("type"):
        parts.append(gettext("kind: %(kind)s", kind=data["type"]))
    if data.get("proposed_by"):
        parts.append(gettext("proposed by %(who)s",
                             who=names.get(data["proposed_by"], data["proposed_by"])))
    if data.get("fingerprint"):
        parts.append(gettext("key %(fp)s", fp=data["fingerprint"][:16]))
    return str(_ROSTER_WORDS[type_]), "; ".join(p for p in parts if p)


def describe(event: Any, names: dict[str, str]) -> tuple[str, str]:
    """(what happened, details) of an administration log event, for people."""
    data = json.loads(event.data)
    who = names.get(data.get("reviewer", ""), data.get("reviewer", ""))
    if event.type == "reviewer_enrolled":
        return gettext("Account enrolled"), gettext(
            "%(who)s: roles %(roles)s; units %(units)s", who=who,
            roles=_listed(data["roles"]), units=_listed(data["units"]))
    if event.type == "reviewer_changed":
        b, a = data["before"], data["after"]
        parts = _changes(b["units"], a["units"], gettext("units"))
        for key, label in (("senior", gettext("senior")), ("independent", gettext("independent"))):
            if b[key] != a[key]:
                parts.append(f"{label}: {_yes_no(b[key])} -> {_yes_no(a[key])}")
        return gettext("Routing of a reviewer changed"), f"{who}: " + "; ".join(parts)
    # Counts of cases recorded before they were dropped (a leak to excluded readers) are
    # not shown either.
    if event.type == "reviewer_disabled":
        return gettext("Account disabled"), who
    if event.type == "password_reset":
        return gettext("Password reset"), who
    if event.type == "form_options_changed":
        b, a = data["before"], data["after"]
        label_of = {c["id"]: c["label"] for c in a["categories"]}
        old_labels = {c["id"]: c["label"] for c in b["categories"]}
        parts = _changes(list(old_labels), list(label_of), gettext("categories"))
        relabelled = [f"{cid}: {old_labels[cid]} -> {label}" for cid, label in label_of.items()
                      if cid in old_labels and old_labels[cid] != label]
        if relabelled:
            parts.append(gettext("relabelled: %(items)s", items="; ".join(relabelled)))
        parts += _changes(b["units"], a["units"], gettext("units"))
        return gettext("Report form changed"), "; ".join(parts)
    if event.type in _ROSTER_WORDS:
        return _roster_event(event.type, data, who, names)
    if event.type == "advice_changed":
        return gettext("Advice text changed"), ngettext(
            "now %(num)d character", "now %(num)d characters", data["characters"])
    return event.type, ""


@bp.get("/reviewer/admin-log")
def page() -> str:
    session = db.session()
    names = dict(session.execute(select(Reviewer.id, Reviewer.name)).tuples().all())
    actors = {adminlog.OPERATOR: gettext("the command line on the server"),
              adminlog.SETUP: gettext("first-run setup"), **names}
    events = [(e, *describe(e, names), actors.get(e.actor, e.actor))
              for e in adminlog.recent(session)]
    checked, broken = adminlog.verify(session)
    return render_template("admin_log.html", me=g.signed.reviewer, events=events,
                           checked=checked, broken=broken)
