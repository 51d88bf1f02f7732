"""One family of errors for everything Whistle refuses: ``DomainError(code, message, status)``.

Every layer raises these; ``whistle.web.errors`` alone turns them into a JSON or HTML
answer. ``code`` is the machine-readable error code of the JSON API (``not_found``,
``excluded``, ...), ``status`` the HTTP status it answers with, ``message`` text a
person can read. A leaf module (no imports from Whistle), so that the pure leaves
(``validation``, ``keys``) can raise them as well as ``cases/`` and ``people/``.
"""

from __future__ import annotations

from typing import Any


class Text(str):
    """A message with values in it, that a page can say in the reader's language.

    ``str(text)`` is the English sentence, exactly as an f-string would have made it: what
    the JSON API's ``message`` and the logs carry. ``pattern`` is the same sentence with
    ``%(name)s`` placeholders and ``params`` the values; ``whistle.i18n.translate`` (the
    pages' ``tr`` filter) looks the pattern up in ``whistle.wording`` and the catalogue.
    A message that can reach a person is a ``Text`` or a fixed string, never an f-string
    (``tests/test_i18n_reporter.py`` checks the reporter's path).
    """

    pattern: str
    params: dict[str, Any]

    def __new__(cls, pattern: str, **params: Any) -> Text:
        text = super().__new__(cls, pattern % params if params else pattern)
        text.pattern, text.params = pattern, params
        return text


class DomainError(Exception):
    """Something Whistle refuses, with the answer it gives."""

    code = "invalid_input"
    status = 400
    message = "the request was refused"

    def __init__(self, message: str | None = None, code: str | None = None,
                 status: int | None = None, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.message = message if message is not None else type(self).message
        super().__init__(self.message)
        self.code = code if code is not None else type(self).code
        self.status = status if status is not None else type(self).status
        self.field = field
        self.headers = headers or {}


class InvalidInput(DomainError):
    """Input that Whistle refuses (a 4xx naming the field)."""

    def __init__(self, message: str, field: str | None = None, code: str = "invalid_input",
                 status: int = 400) -> None:
        super().__init__(message, code, status, field)


class NotFound(DomainError):
    """The case does not exist or is not the caller's (indistinguishable)."""

    code, status, message = "not_found", 404, "no such case"


class KeysPending(DomainError):
    """The reviewer is assigned the case but holds no key for it (after a password reset)."""

    code, status = "keys_pending", 409
    message = ("your password was reset, so your copy of this case's key is gone: a "
               "co-reviewer must share the case with you again (or the recovery key holder "
               "runs `recovery rewrap`)")


class AuthError(DomainError):
    """Wrong credentials (the same answer for a wrong email and a wrong password)."""

    code, status, message = "invalid_credentials", 401, "wrong email or password"

    def __init__(self, code: str = "invalid_credentials",
                 message: str = "wrong email or password") -> None:
        super().__init__(message, code)


class Refused(DomainError):
    """A well-formed request that the case's state or the rules refuse (409 by default)."""

    status = 409

    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message, code, status)


class KeyMaterialError(DomainError):
    """Instance key material is missing, unreadable or unsafe: fail closed (503)."""

    code, status = "unavailable", 503
    message = "key material is not usable"

    def __init__(self, message: str = "key material is not usable") -> None:
        super().__init__(message)
