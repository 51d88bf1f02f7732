"""Logging that never says who asked or what they said.

Whistle's own code logs event types and endpoint names only: never a request
address, a User-Agent, a token, a form field or any other content. This
module makes that hold for everything else that logs in the same process:

* :class:`PrivacyHandler` (on the root logger, so every record in the
  process reaches it) and :class:`PrivacyFilter` (on gunicorn's error log)
  drop request lines (gunicorn's access log, Werkzeug's development-server
  log, SQL statements with their parameters), blank IP addresses and anything
  that looks like a reporter token, and escape line breaks so that no input
  can forge a log line.
* :class:`GunicornLogger` (``logger_class`` in ``gunicorn.conf.py``) turns the
  access log off entirely, whatever the command line says, and filters the
  error log: gunicorn writes "Invalid request from ip=..." for every
  malformed request.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import sys
from typing import Any

from flask import Flask

REDACTED = "[redacted]"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Loggers whose records carry request lines or statement parameters: dropped
# below WARNING (and always for the access log).
_DROP_ALWAYS = ("gunicorn.access",)
_DROP_BELOW_WARNING = ("werkzeug", "sqlalchemy.engine", "sqlalchemy.pool")

_ADDRESS_CANDIDATE = re.compile(r"(?<![\w.:])[0-9A-Fa-f.:]*[.:][0-9A-Fa-f.:]*(?![\w.:])")
_TOKEN_RUN = 4  # this many word-list words in a row look like (part of) a token


def _is_address(text: str) -> bool:
    for candidate in (text, text.rsplit(":", 1)[0]):
        try:
            ipaddress.ip_address(candidate.strip("[]"))
        except ValueError:
            continue
        return True
    return False


@functools.cache
def _wordlist() -> frozenset[str]:
    from mnemonic import Mnemonic

    return frozenset(Mnemonic("english").wordlist)


def _address_or_not(match: re.Match[str]) -> str:
    found = match.group(0)
    core = found.rstrip(".:")
    return REDACTED + found[len(core):] if _is_address(core) else found


def scrub(text: str) -> str:
    """The text with IP addresses, token-like word runs and line breaks made harmless."""
    text = _ADDRESS_CANDIDATE.sub(_address_or_not, text)
    words = _wordlist()
    parts = re.split(r"([\s\-_.,]+)", text)
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        count = sum(1 for p in run if p.lower() in words)
        out.extend([REDACTED] if count >= _TOKEN_RUN else run)
        run.clear()

    for part in parts:
        if part.lower() in words or (run and re.fullmatch(r"[\s\-_.,]+", part)):
            run.append(part)
        else:
            flush()
            out.append(part)
    flush()
    text = "".join(out)
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _kept(record: logging.LogRecord) -> bool:
    name = record.name
    if any(name == d or name.startswith(d + ".") for d in _DROP_ALWAYS):
        return False
    return not (record.levelno < logging.WARNING and any(
        name == d or name.startswith(d + ".") for d in _DROP_BELOW_WARNING))


def _server_own(record: logging.LogRecord) -> bool:
    """gunicorn's "Listening at: <bind> (<pid>)": the server's own address, set by the
    operator, which names no client; kept so the operator sees where Whistle serves."""
    return record.name == "gunicorn.error" and record.msg == "Listening at: %s (%s)"


def _scrub_record(record: logging.LogRecord) -> None:
    if _server_own(record):
        return
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string must not stop logging
        message = str(record.msg)
    record.msg, record.args = scrub(message), None
    if record.exc_info:
        # Tracebacks keep their lines; only addresses and tokens go.
        record.exc_text = "\n".join(
            scrub(line) for line in
            logging.Formatter().formatException(record.exc_info).splitlines())
        record.exc_info = None
    if record.stack_info:
        record.stack_info = "\n".join(scrub(line) for line in record.stack_info.splitlines())


class PrivacyFilter(logging.Filter):
    """Drop request-line records; scrub the rest in place (for handlers Whistle owns)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _kept(record):
            return False
        _scrub_record(record)
        return True


class PrivacyHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes a scrubbed copy of each record to stderr; other handlers still see the original."""

    def emit(self, record: logging.LogRecord) -> None:
        if not _kept(record):
            return
        clean = logging.makeLogRecord(record.__dict__)
        _scrub_record(clean)
        self.stream = sys.stderr  # whatever stderr is now (test runners swap it)
        super().emit(clean)


_MARK = "_whistle_privacy"


def handler() -> logging.Handler:
    h = PrivacyHandler(sys.stderr)
    h.setFormatter(logging.Formatter(FORMAT))
    setattr(h, _MARK, True)
    return h


def configure(app: Flask) -> None:
    """Send every log record in this process through :class:`PrivacyHandler` to stderr."""
    from flask.logging import default_handler

    root = logging.getLogger()
    if not any(getattr(h, _MARK, False) for h in root.handlers):
        owned = not root.handlers  # under a test runner someone else sets the levels
        root.addHandler(handler())
        if owned:
            root.setLevel(app.config.get("LOG_LEVEL", "WARNING"))
    app.logger.removeHandler(default_handler)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


try:
    from gunicorn.glogging import Logger as _GunicornBase
except ImportError:  # pragma: no cover - gunicorn is a runtime dependency
    _GunicornBase = object  # type: ignore[misc,assignment]


class GunicornLogger(_GunicornBase):  # type: ignore[misc,valid-type]
    """gunicorn's logger without an access log, and with the error log filtered."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for h in self.error_log.handlers:
            h.addFilter(PrivacyFilter())
        self.access_log.handlers.clear()
        self.access_log.addHandler(logging.NullHandler())
        self.access_log.propagate = False

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """Never: an access line is an address, a time and a path, for every reporter."""
        return None
