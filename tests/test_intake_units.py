"""Intake's small parts one by one (whistle.cases.intake): the case reference, the checks a
submission passes before anything is stored, and the SQL literals built from our own names.
Submissions through the API are tested in test_core.py and test_hostile_input.py; these pin
what mutation testing found unchecked (scripts/mutate)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.support.factories import make_reviewer
from whistle import settings_of
from whistle.cases import intake
from whistle.cases.receipts import _CASE
from whistle.errors import InvalidInput
from whistle.store import db

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REF = re.compile(r"^WH-[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){6}$")


def test_a_case_reference_is_140_random_bits_in_seven_groups_of_crockford_base32() -> None:
    refs = [intake.new_case_ref() for _ in range(400)]
    assert len(set(refs)) == len(refs)
    for ref in refs:
        assert REF.match(ref), ref
        assert _CASE.fullmatch(ref), ref  # what a receipt names
        chars = ref[3:].replace("-", "")
        assert len(chars) == 28
        value = sum(CROCKFORD.index(c) << (5 * i) for i, c in enumerate(chars))
        assert value < 2**140
    # Every one of the 28 places takes many values: no place is fixed or left empty.
    for place in range(28):
        seen = {ref[3:].replace("-", "")[place] for ref in refs}
        assert len(seen) > 16, (place, seen)


def test_sql_literals_are_made_only_from_plain_names_in_sorted_order() -> None:
    made = intake.constants({"zeta", "alpha_beta", "bad'; drop", "two words", "x-y"})
    assert [str(c) for c in made] == ["'alpha_beta'", "'zeta'"]


@pytest.fixture
def parse(app: Flask) -> Iterator[Any]:
    settings = settings_of(app)
    with db.new_session(app) as s:
        yield lambda data: intake.parse_submission(data, s, settings)


def refused(parse: Any, data: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse(data)
    return caught.value


def test_a_submission_must_be_an_object_with_known_fields(parse: Any) -> None:
    for data in (None, [], "details", 5):
        assert refused(parse, data).message == "the concern must be a JSON object"
    bad = refused(parse, {"category": "conduct", "details": "x", "zz": 1, "aa": 2})
    assert (bad.message, bad.field) == ("unknown field: aa", "aa")
    # Every documented field is known (each is refused, if at all, for its value only).
    for field in ("category", "details", "unit", "about_senior", "exclude_reviewers",
                  "identity", "idempotency_key", "clean_metadata", "about", "escrow"):
        try:
            parse({"category": "conduct", "details": "x", field: None})
        except InvalidInput as exc:
            assert not exc.message.startswith("unknown field"), (field, exc.message)


def test_category_unit_and_details_are_checked(app: Flask, parse: Any) -> None:
    max_details = settings_of(app).max_details_chars
    cases = [({"details": "x"}, "category", None),
             ({"category": "no-such", "details": "x"}, "category", "unknown category"),
             ({"category": "conduct", "details": "x", "unit": "Nowhere"}, "unit",
              "unknown unit"),
             ({"category": "conduct"}, "details", None),
             ({"category": "conduct", "details": ""}, "details", None),
             ({"category": "conduct", "details": "x" * (max_details + 1)}, "details", None)]
    for data, field, message in cases:
        found = refused(parse, data)
        assert found.field == field, (data, found.message)
        if message is not None:
            assert found.message == message
    sub = parse({"category": "conduct", "details": "x" * max_details, "unit": "Health",
                 "about_senior": True})
    assert (sub.category, sub.details, sub.unit, sub.about_senior, sub.identity) == (
        "conduct", "x" * max_details, "Health", True, None)
    assert parse({"category": "conduct", "details": "x"}).about_senior is False


def test_exclusions_name_known_reviewers_once_each_in_the_order_given(app: Flask,
                                                                     parse: Any) -> None:
    one, two = make_reviewer(app)["id"], make_reviewer(app)["id"]
    sub = parse({"category": "conduct", "details": "x",
                 "exclude_reviewers": [two, one, two]})
    assert sub.exclude_reviewers == (two, one)
    unknown = refused(parse, {"category": "conduct", "details": "x",
                              "exclude_reviewers": [one, "0" * 32]})
    assert (unknown.field, unknown.message) == (
        "exclude_reviewers", "unknown reviewer in exclude_reviewers")


def test_an_identity_is_an_object_with_a_name_and_optional_role_contact_and_release(
        parse: Any) -> None:
    base = {"category": "conduct", "details": "x"}
    for identity in ("Ann", ["Ann"], {"name": "Ann", "address": "x"}):
        bad = refused(parse, base | {"identity": identity})
        assert (bad.field, bad.message) == (
            "identity", "identity must be an object with name, role, contact")
    assert refused(parse, base | {"identity": {"role": "Nurse"}}).field == "identity.name"
    sub = parse(base | {"identity": {"name": "Ann", "role": "Nurse", "contact": "ann@x",
                                     "release": "to_reviewers"}})
    assert sub.identity is not None
    assert (sub.identity.name, sub.identity.role, sub.identity.contact,
            sub.identity.release) == ("Ann", "Nurse", "ann@x", "to_reviewers")
    plain = parse(base | {"identity": {"name": "Ann"}})
    assert plain.identity is not None
    assert (plain.identity.role, plain.identity.contact, plain.identity.release) == (
        None, None, "on_request")


# -- routing as intake feeds it, and the same concern sent twice --------------------------


def assigned(app: Flask, case_ref: str) -> set[str]:
    from sqlalchemy import select

    from whistle.store.models import Assignment

    with db.new_session(app) as s:
        return set(s.scalars(select(Assignment.reviewer_id).where(
            Assignment.concern_id == case_ref)))


def send(app: Flask, **fields: Any) -> Any:
    settings, keys = settings_of(app), app.extensions["whistle_keys"]
    with db.new_session(app) as s:
        sub = intake.parse_submission({"category": "conduct", "details": "x"} | fields, s,
                                      settings)
        return intake.submit(s, keys, settings, sub)


def test_intake_routes_by_unit_category_role_and_load(app: Flask) -> None:
    from whistle.people import roster
    from whistle.store.models import Reviewer

    admin = make_reviewer(app, admin=True)["id"]
    finance_only = make_reviewer(app)["id"]
    plain = [make_reviewer(app)["id"] for _ in range(3)]
    health = make_reviewer(app, units=["Health"])["id"]
    with db.new_session(app) as s:
        row = s.get_one(Reviewer, finance_only)
        row.categories = '["finance"]'
        roster.sign_entry(row, app.extensions["whistle_keys"], session=s)
        s.commit()
    # The unit's reviewer first, whatever the load; never the administrator, nor the one
    # for another category, while others are eligible.
    for _ in range(3):
        chosen = assigned(app, send(app, unit="Health").case_ref)
        assert health in chosen and len(chosen) == 2
        assert not chosen & {admin, finance_only}
    # Without a unit: the load decides among the equal ones (the unit's reviewer carries 3).
    loads = dict.fromkeys(plain, 0)
    for _ in range(9):
        chosen = assigned(app, send(app).case_ref)
        assert not chosen & {admin, finance_only}
        for rid in chosen & set(plain):
            loads[rid] += 1
    # 18 places over four reviewers, the unit's starting at 3: 6 for it, 5 for each other.
    assert sorted(loads.values()) == [5, 5, 5], loads


def test_a_reviewer_whose_key_no_longer_matches_is_left_out_and_the_case_under_routed(
        app: Flask) -> None:
    from whistle.store.models import Reviewer

    people = [make_reviewer(app)["id"] for _ in range(4)]
    with db.new_session(app) as s:
        s.get_one(Reviewer, people[0]).public_key = bytes(1216)  # swapped behind the roster
        s.commit()
    for _ in range(4):
        receipt = send(app)
        assert people[0] not in assigned(app, receipt.case_ref)
        assert receipt.under_routed is True and receipt.reviewer_count == 2


def test_the_same_concern_sent_twice_with_its_key_is_stored_once(app: Flask) -> None:
    make_reviewer(app), make_reviewer(app)
    settings, keys = settings_of(app), app.extensions["whistle_keys"]
    with db.new_session(app) as s:
        sub = intake.parse_submission({"category": "conduct", "details": "x"}, s, settings)
        first = intake.submit(s, keys, settings, sub, idempotency_key=b"k" * 16)
    with db.new_session(app) as s, pytest.raises(intake.AlreadySubmitted) as again:
        intake.submit(s, keys, settings, sub, idempotency_key=b"k" * 16)
    assert (again.value.code, again.value.status, again.value.message) == (
        "already_submitted", 409,
        "this concern was already received; its token was shown then")
    with db.new_session(app) as s:
        found = intake.replay(s, keys, b"k" * 16)
        assert found is not None and found.id == first.case_ref


def test_a_new_reviewer_with_no_cases_is_chosen_before_those_with_one(app: Flask) -> None:
    """Each round a reviewer with no open case joins reviewers who each have one or more:
    the new one is chosen every time (ties among the others are broken at random)."""
    for _ in range(4):
        make_reviewer(app)
    send(app), send(app)  # the four have one open case each
    for _ in range(4):
        fresh = make_reviewer(app)["id"]
        assert fresh in assigned(app, send(app).case_ref)


def test_a_stored_concern_starts_its_trail_with_the_documented_events(app: Flask) -> None:
    import json

    from sqlalchemy import select

    from whistle.store import options
    from whistle.store.models import AuditEvent

    people = [make_reviewer(app)["id"] for _ in range(2)]
    receipt = send(app, category="lado")
    with db.new_session(app) as s:
        events = [(e.type, e.actor, json.loads(e.data)) for e in s.scalars(
            select(AuditEvent).where(AuditEvent.concern_id == receipt.case_ref)
            .order_by(AuditEvent.seq))]
        sealed = options.get(s, options.ROSTER_SEALED, None)
    assert events[0] == ("received", "reporter", {"reviewers": 2, "under_routed": False,
                                                  "attachments": 0})
    assert sorted(events[1:], key=str) == sorted(
        (("assigned", "system", {"reviewer": rid}) for rid in people), key=str)
    import datetime as dt

    assert sealed == {"at": dt.date.today().isoformat(), "by": "first_concern"}
    # An under-routed concern says so in its trail, by the system.
    lonely = send(app, exclude_reviewers=[people[0]])
    with db.new_session(app) as s:
        last = s.scalars(select(AuditEvent).where(AuditEvent.concern_id == lonely.case_ref)
                         .order_by(AuditEvent.seq.desc())).first()
    assert last is not None and (last.type, last.actor) == ("under_routed", "system")


def test_the_category_chooses_its_reviewers_and_its_clock(app: Flask) -> None:
    from whistle.people import roster
    from whistle.store.models import Concern, Reviewer

    ids = [make_reviewer(app)["id"] for _ in range(3)]
    with db.new_session(app) as s:
        for rid, cats in zip(ids, ('["conduct"]', '["fraud"]', '["fraud"]'), strict=True):
            row = s.get_one(Reviewer, rid)
            row.categories = cats
            roster.sign_entry(row, app.extensions["whistle_keys"], session=s)
        s.commit()
    for _ in range(4):  # the one for the category every time, however loaded
        assert ids[0] in assigned(app, send(app, category="conduct").case_ref)
    # The safeguarding-of-children category owes a decision within one working day.
    lado = send(app, category="lado")
    plain = send(app, category="conduct")
    with db.new_session(app) as s:
        lado_row, plain_row = s.get_one(Concern, lado.case_ref), s.get_one(Concern, plain.case_ref)
        assert lado_row.ack_clock != plain_row.ack_clock
        assert lado_row.acknowledge_by < plain_row.acknowledge_by


def test_the_reporters_key_opens_the_thread_and_never_the_case(app: Flask) -> None:
    from sqlalchemy import select

    from whistle.store.models import WrappedKey

    make_reviewer(app), make_reviewer(app)
    receipt = send(app)
    with db.new_session(app) as s:
        kinds = {(w.recipient_kind, w.key_kind) for w in s.scalars(select(WrappedKey).where(
            WrappedKey.concern_id == receipt.case_ref))}
    reporter = {kind for who, kind in kinds if who == "reporter"}
    assert reporter and all("case" not in kind for kind in reporter), kinds
    assert any("case" in kind for who, kind in kinds if who == "reviewer"), kinds


def test_the_under_routed_alert_goes_to_active_administrators_only(app: Flask,
                                                                   smtp: Any) -> None:
    from tests.support.webflow import deliver_mail
    from whistle.store.models import Reviewer

    active = make_reviewer(app, admin=True, reviews=False, email="on@example.org")["id"]
    gone = make_reviewer(app, admin=True, reviews=False, email="off@example.org")["id"]
    make_reviewer(app)
    with db.new_session(app) as s:
        s.get_one(Reviewer, gone).active = False
        s.commit()
    assert send(app).under_routed
    assert active
    deliver_mail(app)
    to = [m["To"] for m in smtp.messages]
    assert any("on@example.org" in t for t in to) and not any("off@example.org" in t for t in to)


def test_each_refusal_names_its_field(parse: Any) -> None:
    base = {"category": "conduct", "details": "x"}
    cases = [({"unit": 5}, "unit"), ({"about_senior": "yes"}, "about_senior"),
             ({"exclude_reviewers": "one"}, "exclude_reviewers"),
             ({"identity": {"name": "Ann", "role": 5}}, "identity.role"),
             ({"identity": {"name": "Ann", "contact": ["x"]}}, "identity.contact")]
    for fields, field in cases:
        assert refused(parse, base | fields).field == field, fields
    missing = refused(parse, {"details": "x"})
    assert (missing.field, missing.message) == ("category", "category is required")
    long = refused(parse, {"category": "c" * 65, "details": "x"})
    assert long.field == "category" and long.message != "unknown category"
    assert refused(parse, {"category": "c" * 64, "details": "x"}).message == "unknown category"


def test_a_concern_filed_for_someone_is_never_held_even_past_the_operator_form(
        app: Flask) -> None:
    """The operator pages refuse "hold" themselves; intake refuses it again."""
    make_reviewer(app), make_reviewer(app)
    settings, keys = settings_of(app), app.extensions["whistle_keys"]
    with db.new_session(app) as s:
        sub = intake.parse_submission({"category": "conduct", "details": "x", "escrow": True,
                                       "about": {"email": "pat@example.org"}}, s, settings)
        with pytest.raises(InvalidInput) as refused:
            intake.submit(s, keys, settings, sub, on_stored=lambda *_args: None)
    assert refused.value.field == "escrow"


def test_a_filing_and_what_its_caller_adds_are_stored_together_or_not_at_all(
        app: Flask) -> None:
    """``on_stored`` (an operator's oral record) runs in the concern's own transaction: when it
    fails, the concern is not stored either."""
    from sqlalchemy import func, select

    from whistle.store.models import Concern

    make_reviewer(app), make_reviewer(app)
    settings, keys = settings_of(app), app.extensions["whistle_keys"]

    def fails(*_args: Any) -> None:
        raise RuntimeError("the oral record could not be written")

    with db.new_session(app) as s:
        sub = intake.parse_submission({"category": "conduct", "details": "x"}, s, settings)
        with pytest.raises(RuntimeError):
            intake.submit(s, keys, settings, sub, on_stored=fails)
        s.rollback()
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(Concern)) == 0
