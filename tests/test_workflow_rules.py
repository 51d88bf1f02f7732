"""The workflow's policy on its own, without a database, Flask or keys.

``workflow.decide`` answers, for the case's status and the requested one, which step
the move takes (the status it leads to and the audit event that records it) or which
refusal (code, HTTP status, message) answers it. The expectations were read off the
if/elif ladder ``workflow.transition`` used before the policy became a table, and agree
with the HTTP tests in test_workflow.py; the step functions that only change the case's
own columns are checked on a transient ``Concern`` (never added to a session).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pytest

from whistle import config as config_mod
from whistle.cases import workflow
from whistle.cases.workflow import Ask, WorkflowError, decide
from whistle.errors import Refused
from whistle.store.models import Concern

REC, ACK, INV, PROP, CLO = workflow.STATUSES

# An ask that satisfies every guard: Bob acts on Ann's proposal, with a reason and an outcome.
EVERYTHING = Ask("bob", proposed_by="ann", note="a reason", outcome="substantiated")

ALLOWED = "allowed"
REFUSED = "refused"


def unknown(to: str) -> tuple[str, str, int, str]:
    return REFUSED, "invalid_transition", 400, f"unknown status {to!r}"


def cannot_acknowledge(current: str) -> tuple[str, str, int, str]:
    return REFUSED, "invalid_transition", 409, f"cannot acknowledge a case that is {current}"


def already(current: str) -> tuple[str, str, int, str]:
    return REFUSED, "invalid_transition", 409, f"the case is already {current}"


# (current, requested) -> (ALLOWED, new status, audit event) or (REFUSED, code, status, message)
GRID: dict[tuple[str, str], tuple[Any, ...]] = {
    # requested: received (never asked for: a case starts there)
    (REC, REC): unknown(REC), (ACK, REC): unknown(REC), (INV, REC): unknown(REC),
    (PROP, REC): unknown(REC), (CLO, REC): unknown(REC),
    # requested: acknowledged
    (REC, ACK): (ALLOWED, ACK, "acknowledged"),
    (ACK, ACK): cannot_acknowledge(ACK), (INV, ACK): cannot_acknowledge(INV),
    (PROP, ACK): cannot_acknowledge(PROP), (CLO, ACK): cannot_acknowledge(CLO),
    # requested: investigating (start, reject a proposal, or reopen)
    (REC, INV): (ALLOWED, INV, "investigating"),
    (ACK, INV): (ALLOWED, INV, "investigating"),
    (INV, INV): already(INV),
    (PROP, INV): (ALLOWED, INV, "closure_rejected"),
    (CLO, INV): (ALLOWED, INV, "reopened"),
    # requested: closure_proposed (never asked for: asking for closed proposes)
    (REC, PROP): unknown(PROP), (ACK, PROP): unknown(PROP), (INV, PROP): unknown(PROP),
    (PROP, PROP): unknown(PROP), (CLO, PROP): unknown(PROP),
    # requested: closed (propose, or confirm someone else's proposal)
    (REC, CLO): (ALLOWED, PROP, "closure_proposed"),
    (ACK, CLO): (ALLOWED, PROP, "closure_proposed"),
    (INV, CLO): (ALLOWED, PROP, "closure_proposed"),
    (PROP, CLO): (ALLOWED, CLO, "closed"),
    (CLO, CLO): already(CLO),
}


def refusal(current: str, to: Any, ask: Ask) -> tuple[str, int, str]:
    with pytest.raises(WorkflowError) as caught:
        decide(current, to, ask)
    return caught.value.code, caught.value.status, caught.value.message


# -- every pair of statuses --------------------------------------------------------


def test_the_grid_names_every_pair_of_statuses() -> None:
    assert set(GRID) == {(a, b) for a in workflow.STATUSES for b in workflow.STATUSES}


@pytest.mark.parametrize(("current", "to"), [k for k, v in GRID.items() if v[0] == ALLOWED])
def test_each_allowed_move_leads_to_its_status_and_records_its_event(current: str,
                                                                     to: str) -> None:
    _, status, event = GRID[(current, to)]
    step = decide(current, to, EVERYTHING)
    assert (step.status, step.event) == (status, event)


@pytest.mark.parametrize(("current", "to"), [k for k, v in GRID.items() if v[0] == REFUSED])
def test_each_move_the_policy_does_not_allow_is_refused_with_its_code_and_status(
        current: str, to: str) -> None:
    assert refusal(current, to, EVERYTHING) == GRID[(current, to)][1:]


def test_only_a_proposal_leads_to_closed() -> None:
    closing = [pair for pair, v in GRID.items() if v[0] == ALLOWED and v[1] == CLO]
    assert closing == [(PROP, CLO)]


# -- two-person closure ---------------------------------------------------------------


def test_a_first_reviewers_close_only_proposes_closure() -> None:
    for current in (REC, ACK, INV):
        step = decide(current, CLO, Ask("ann", outcome="withdrawn"))
        assert (step.status, step.event) == (PROP, "closure_proposed")


def test_the_proposer_cannot_confirm_their_own_closure() -> None:
    assert refusal(PROP, CLO, Ask("ann", proposed_by="ann")) == (
        "second_reviewer_required", 409, "a different assigned reviewer must confirm the closure")


def test_a_different_reviewer_can_confirm_the_closure() -> None:
    step = decide(PROP, CLO, Ask("bob", proposed_by="ann"))
    assert (step.status, step.event) == (CLO, "closed")


def test_confirming_needs_no_outcome_of_its_own_and_ignores_a_bad_one() -> None:
    assert decide(PROP, CLO, Ask("bob", proposed_by="ann", outcome=None)).status == CLO
    assert decide(PROP, CLO, Ask("bob", proposed_by="ann", outcome="buried")).status == CLO


def test_the_proposer_cannot_reject_their_own_proposal() -> None:
    assert refusal(PROP, INV, Ask("ann", proposed_by="ann")) == (
        "second_reviewer_required", 409,
        "another assigned reviewer must reject or confirm the proposal")


def test_a_different_reviewer_rejecting_the_proposal_sends_the_case_back_to_investigating(
        ) -> None:
    step = decide(PROP, INV, Ask("bob", proposed_by="ann"))
    assert (step.status, step.event) == (INV, "closure_rejected")


def test_a_single_reviewer_can_never_reach_closed_by_any_sequence() -> None:
    """Exhaustive over the policy's state (status, proposer), one person acting throughout,
    every kind of ask tried from every state reached."""
    asks = [Ask("ann", note=note, outcome=outcome)
            for note in (None, "why") for outcome in (None, "substantiated", "buried")]
    seen = {(REC, None)}
    frontier: list[tuple[str, str | None]] = [(REC, None)]
    while frontier:
        status, proposer = frontier.pop()
        for to in (ACK, INV, CLO):
            for ask in asks:
                try:
                    step = decide(status, to, Ask(ask.actor_id, proposer, ask.note, ask.outcome))
                except WorkflowError:
                    continue
                assert step.status != CLO, (status, to, ask)
                after = (step.status, "ann" if step.status == PROP else None)
                if after not in seen:
                    seen.add(after)
                    frontier.append(after)
    assert {status for status, _ in seen} == {REC, ACK, INV, PROP}


# -- the confirmer is someone the proposer did not bring (issue 19, item 4) ----------------

BEFORE = frozenset({"ann", "bob"})  # assigned when Ann proposed the closure


def test_a_reviewer_added_after_the_proposal_cannot_confirm_it() -> None:
    assert refusal(PROP, CLO, Ask("carol", proposed_by="ann", assigned_before=BEFORE)) == (
        "second_reviewer_required", 409,
        "only a reviewer assigned before the closure was proposed may confirm it")


def test_a_reviewer_assigned_before_the_proposal_confirms_it() -> None:
    step = decide(PROP, CLO, Ask("bob", proposed_by="ann", assigned_before=BEFORE))
    assert (step.status, step.event) == (CLO, "closed")


def test_the_proposer_is_refused_as_the_proposer_even_though_assigned_before() -> None:
    assert refusal(PROP, CLO, Ask("ann", proposed_by="ann", assigned_before=BEFORE)) == (
        "second_reviewer_required", 409, "a different assigned reviewer must confirm the closure")


def test_with_no_one_assigned_before_no_one_can_confirm() -> None:
    for actor in ("ann", "bob", "carol"):
        assert refusal(PROP, CLO, Ask(actor, proposed_by="ann",
                                      assigned_before=frozenset()))[0] == \
            "second_reviewer_required"


def test_rejecting_a_proposal_is_open_to_any_other_reviewer_even_one_added_later() -> None:
    # Turning a closure down keeps the case open: nothing to arrange, so no such limit.
    step = decide(PROP, INV, Ask("carol", proposed_by="ann", assigned_before=BEFORE))
    assert (step.status, step.event) == (INV, "closure_rejected")


def test_the_proposer_and_whoever_they_bring_never_reach_closed() -> None:
    """Exhaustive: Ann proposes, then only Ann and Carol (shared in after the proposal) act."""
    for actor in ("ann", "carol"):
        for note in (None, "why"):
            for outcome in (None, "substantiated"):
                with pytest.raises(WorkflowError):
                    decide(PROP, CLO, Ask(actor, "ann", note, outcome, BEFORE))


def trail(*events: tuple[str, str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return list(events)


INTAKE = (("received", "reporter", {}), ("assigned", "system", {"reviewer": "ann"}),
          ("assigned", "system", {"reviewer": "bob"}))


def test_assigned_at_proposal_reads_who_was_assigned_when_closure_was_proposed() -> None:
    events = trail(*INTAKE, ("share_proposed", "ann", {"reviewer": "carol"}),
                   ("closure_proposed", "ann", {"outcome": "withdrawn"}),
                   ("share_approved", "bob", {"reviewer": "carol", "proposed_by": "ann"}))
    assert workflow.assigned_at_proposal(events) == BEFORE


def test_a_share_approved_before_the_proposal_counts_and_a_mere_proposal_does_not() -> None:
    events = trail(*INTAKE, ("share_proposed", "ann", {"reviewer": "dave"}),
                   ("share_approved", "bob", {"reviewer": "carol"}),
                   ("shared", "recovery", {"reviewer": "erin"}),
                   ("closure_proposed", "ann", {}))
    assert workflow.assigned_at_proposal(events) == {"ann", "bob", "carol", "erin"}


def test_the_latest_proposal_is_the_one_that_counts() -> None:
    events = trail(*INTAKE, ("closure_proposed", "ann", {}), ("closure_rejected", "bob", {}),
                   ("share_approved", "bob", {"reviewer": "carol"}),
                   ("closure_proposed", "ann", {}))
    assert workflow.assigned_at_proposal(events) == {"ann", "bob", "carol"}


def test_a_recusal_takes_the_reviewer_out_and_brings_the_replacement_in() -> None:
    events = trail(*INTAKE, ("assigned", "bob", {"reviewer": "carol", "replacing": "bob"}),
                   ("recused", "bob", {"note": "m1", "replacements": ["carol"]}),
                   ("closure_proposed", "ann", {}),
                   ("escalated", "system", {"tier": 1, "reviewers": ["dave"]}))
    assert workflow.assigned_at_proposal(events) == {"ann", "carol"}


def test_escalation_that_names_its_reviewers_before_the_proposal_counts() -> None:
    events = trail(*INTAKE, ("escalated", "system", {"tier": 1, "reviewers": ["dave", 5]}),
                   ("escalated", "system", {"tier": 2, "reviewers": [],
                                            "awaiting_keys": ["erin"]}),
                   ("escalation_keys", "bob", {"reviewers": ["erin"], "withheld": ["fay"]}),
                   ("closure_proposed", "ann", {}))
    assert workflow.assigned_at_proposal(events) == {"ann", "bob", "dave", "erin"}


def test_without_a_proposal_in_the_trail_no_one_was_assigned_before_it() -> None:
    assert workflow.assigned_at_proposal(trail(*INTAKE)) == frozenset()


# -- the other guards -------------------------------------------------------------------


@pytest.mark.parametrize("outcome", [None, "", "buried", "Substantiated", 5, ["substantiated"],
                                     {"outcome": "referred"}])
@pytest.mark.parametrize("current", [REC, ACK, INV])
def test_proposing_closure_needs_one_of_the_known_outcomes(current: str, outcome: Any) -> None:
    assert refusal(current, CLO, Ask("ann", outcome=outcome)) == (
        "outcome_required", 400,
        "proposing closure needs an outcome: substantiated, partially_substantiated, "
        "not_substantiated, referred, withdrawn")


@pytest.mark.parametrize("outcome", workflow.OUTCOMES)
def test_every_known_outcome_can_be_proposed(outcome: str) -> None:
    assert decide(INV, CLO, Ask("ann", outcome=outcome)).status == PROP


@pytest.mark.parametrize("note", [None, ""])
def test_reopening_a_closed_case_needs_a_written_reason(note: str | None) -> None:
    assert refusal(CLO, INV, Ask("ann", note=note)) == (
        "reason_required", 400, "reopening a case needs a written reason")


def test_reopening_with_a_reason_goes_back_to_investigating_whoever_asks() -> None:
    # Neither the proposer nor the closer is special once the case is closed.
    step = decide(CLO, INV, Ask("ann", proposed_by="ann", note="new evidence"))
    assert (step.status, step.event) == (INV, "reopened")


def test_only_the_moves_that_need_them_ask_for_a_reason_or_an_outcome() -> None:
    bare = Ask("ann")
    assert decide(REC, ACK, bare).status == ACK
    assert decide(REC, INV, bare).status == INV
    assert decide(ACK, INV, bare).status == INV
    assert decide(PROP, INV, Ask("bob", proposed_by="ann")).status == INV


def test_a_move_the_table_lacks_is_refused_before_any_guard_is_asked() -> None:
    # The proposer, without an outcome or a reason: the pair itself is what is refused.
    own = Ask("ann", proposed_by="ann")
    assert refusal(CLO, CLO, own) == already(CLO)[1:]
    assert refusal(INV, INV, own) == already(INV)[1:]
    assert refusal(PROP, ACK, own) == cannot_acknowledge(PROP)[1:]
    assert refusal(CLO, REC, own) == unknown(REC)[1:]


# -- wrong input ----------------------------------------------------------------------------


@pytest.mark.parametrize("to", [None, 5, 1.5, True, b"closed", ["closed"], {"to": "closed"},
                                ("closed",), "", "CLOSED", " closed", "overdue", "open"])
@pytest.mark.parametrize("current", workflow.STATUSES)
def test_a_requested_status_that_is_not_a_target_is_refused_as_unknown(current: str,
                                                                        to: Any) -> None:
    assert refusal(current, to, EVERYTHING) == (
        "invalid_transition", 400, f"unknown status {to!r}")


@pytest.mark.parametrize(("to", "message"), [
    (ACK, "cannot acknowledge a case that is archived"),
    (INV, "the case is already archived"),
    (CLO, "the case is already archived"),
])
def test_a_case_in_a_status_the_workflow_does_not_know_cannot_move(to: str,
                                                                   message: str) -> None:
    assert refusal("archived", to, EVERYTHING) == ("invalid_transition", 409, message)


def test_a_refusal_is_a_workflow_error_the_web_layer_answers_as_a_conflict() -> None:
    with pytest.raises(WorkflowError) as caught:
        decide(INV, INV, EVERYTHING)
    assert isinstance(caught.value, Refused)
    assert caught.value.status == 409 and str(caught.value) == "the case is already investigating"


# -- what the steps change on the case itself ----------------------------------------------

TODAY = dt.date(2024, 3, 1)
SETTINGS = config_mod.build({"FEEDBACK_DEADLINE_DAYS": 90})


def concern(status: str, **columns: Any) -> Concern:
    return Concern(id="WH-RULES", status=status, **columns)


def apply(case: Concern, to: str, ask: Ask) -> dict[str, Any]:
    """Runs the step on a transient case (no session: these steps never need one)."""
    step = decide(case.status, to, ask)
    data: dict[str, Any] = {"from": case.status}
    step.effect(workflow.Move(cast(Any, None), case, ask.actor_id, cast(Any, None), SETTINGS,
                              TODAY, cast(Any, ask.outcome), data))
    return data


def test_acknowledging_starts_the_feedback_clock() -> None:
    case = concern(REC)
    assert apply(case, ACK, Ask("ann")) == {"from": REC}
    assert case.acknowledged_on == TODAY
    assert case.feedback_by == TODAY + dt.timedelta(days=90)


def test_investigating_straight_from_received_also_starts_the_feedback_clock() -> None:
    case = concern(REC)
    apply(case, INV, Ask("ann"))
    assert (case.acknowledged_on, case.feedback_by) == (TODAY, dt.date(2024, 5, 30))


def test_investigating_after_acknowledgement_keeps_the_first_clock() -> None:
    first, due = dt.date(2024, 1, 2), dt.date(2024, 4, 1)
    case = concern(ACK, acknowledged_on=first, feedback_by=due)
    apply(case, INV, Ask("ann"))
    assert (case.acknowledged_on, case.feedback_by) == (first, due)


def test_proposing_closure_records_the_proposer_and_the_outcome() -> None:
    case = concern(INV)
    assert apply(case, CLO, Ask("ann", outcome="referred")) == {
        "from": INV, "outcome": "referred"}
    assert (case.proposed_by, case.proposed_outcome) == ("ann", "referred")
    assert case.outcome is None and case.closed_on is None


def test_rejecting_a_proposal_forgets_it_and_the_trail_names_the_proposer() -> None:
    case = concern(PROP, proposed_by="ann", proposed_outcome="withdrawn")
    assert apply(case, INV, Ask("bob", proposed_by="ann")) == {
        "from": PROP, "proposed_by": "ann"}
    assert case.proposed_by is None and case.proposed_outcome is None


def test_reopening_forgets_the_outcome_the_closing_date_and_the_proposal() -> None:
    case = concern(CLO, outcome="substantiated", closed_on=TODAY, proposed_by="ann",
                   proposed_outcome="substantiated", acknowledged_on=TODAY)
    assert apply(case, INV, Ask("bob", note="new evidence")) == {"from": CLO}
    assert (case.outcome, case.closed_on, case.proposed_by, case.proposed_outcome) == (
        None, None, None, None)
    assert case.acknowledged_on == TODAY  # the feedback clock is not restarted
