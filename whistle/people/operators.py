"""Intake operators (issue 24): the people who answer the phone or hold the meeting and file a
concern on a reporter's behalf (whistle.cases.oral).

An operator is an account with ``is_operator`` and no other role: it reviews nothing
(``is_reviewer`` false, which its signed roster entry covers, so it is never routed a concern,
never on the roster's receiving list and never wraps a case key), administers nothing and
approves nothing. It is made like every account: ``reviewer add --operator`` while setting up,
and afterwards an enrolment proposal that a second person approves
(whistle.people.approvals); a grant cannot turn a reviewer into an operator or an operator
into a reviewer.
"""

from __future__ import annotations

from typing import Any

from whistle.errors import DomainError, InvalidInput

ROLE = "operator"


class OperatorsOnly(DomainError):
    code, status, message = "forbidden", 403, "intake operators only"


def check_roles(operator: bool, reviews: bool, admin: bool, senior: bool = False,
                independent: bool = False, units: Any = ()) -> None:
    """An operator has no other role (400 naming ``operator`` otherwise)."""
    if operator and (reviews or admin or senior or independent or units):
        raise InvalidInput("an intake operator has no other role: no reviewing, "
                           "administration, seniority, independence or units", "operator")


def check_grant(account: Any, grant: dict[str, Any]) -> None:
    """A grant keeps the roles apart (409): never an operator who reviews or administers."""
    operator = bool(grant.get("operator", account.is_operator))
    reviews = bool(grant.get("reviews", account.is_reviewer))
    admin = bool(grant.get("admin", account.is_admin))
    if operator and (reviews or admin):
        raise InvalidInput("an intake operator has no other role", "operator",
                           "operator_roles", 409)


def is_operator(account: Any) -> bool:
    """An active operator account, with no other role."""
    return bool(account.is_operator and not account.is_reviewer and not account.is_admin
                and account.active and account.state == "active")


def require(account: Any) -> None:
    """403 unless ``account`` is an active intake operator."""
    if not is_operator(account):
        raise OperatorsOnly()
