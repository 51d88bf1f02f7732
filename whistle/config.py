"""Configuration: defaults, then ``WHISTLE_*`` from the environment, then checks, then
one frozen, typed ``Settings`` built at the edges (``create_app``) and passed down.

A pure function of its inputs: it never reads files or touches the app's
state, so a test can build any configuration it wants. Flask keeps its own
``app.config`` (Flask-Mail, Werkzeug's limits and the like read it); Whistle's
own code reads ``Settings``, whose field names are the keys in lower case.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from whistle.crypto import KdfParams


class ConfigError(Exception):
    """A configuration value that Whistle refuses to start with."""


DEFAULT_CATEGORIES = [
    ("safeguarding", "Safeguarding of a child or vulnerable adult"),
    ("lado", "An allegation that an adult who works with children has harmed a child, or may "
             "have"),
    ("conduct", "Conduct of a colleague or manager"),
    ("patient-safety", "Patient or pupil safety"),
    ("fraud", "Fraud, bribery or misuse of money"),
    ("other", "Something else"),
]
DEFAULT_UNITS = ["Children's services", "Education", "Health", "Adult social care"]
# A category's own clocks and retention (issue 23, whistle.cases.clocks): an allegation about
# an adult who works with children is referred to the local authority designated officer
# (LADO) within one working day (Working Together to Safeguard Children), and its record is
# kept for 75 years (IICSA's recommendation for records of allegations of child abuse).
DEFAULT_CATEGORY_CLOCKS: dict[str, dict[str, int]] = {
    "lado": {"ack_working_days": 1, "retention_days": 27394},
}
# How long a closed case is kept, per outcome, in days from its closure (docs/clocks-and-
# retention.md gives the legal basis of each); WHISTLE_RETENTION_DAYS (JSON) overrides some.
DEFAULT_RETENTION_DAYS: dict[str, int] = {
    "substantiated": 2192, "partially_substantiated": 2192, "referred": 2192,
    "not_substantiated": 1096, "withdrawn": 366,
}


# Limits (issue 20, whistle.ratelimit). Failure counters live in the database by default
# (RATELIMIT_STORAGE_URI "database://"), shared by every worker and server; "redis://..."
# for scale-out; "memory://" one process alone.
LIMITS: dict[str, Any] = {
    "RATELIMIT_STORAGE_URI": "database://",
    "STATUS_LIMIT": "20 per minute",
    "LOGIN_LIMIT": "10 per minute",  # failed sign-ins per account
    "LOGIN_LIMIT_ALL": "30 per minute",  # failed sign-ins on the whole site (spraying)
    # Per-account lockout: every LOGIN_LOCKOUT_FAILURES failures in a row lock the
    # account, first for LOGIN_LOCKOUT_SECONDS, then twice as long each time, at most
    # LOGIN_LOCKOUT_MAX_SECONDS; the account's owner gets a mail.
    "LOGIN_LOCKOUT_FAILURES": 5,
    "LOGIN_LOCKOUT_SECONDS": 60,
    "LOGIN_LOCKOUT_MAX_SECONDS": 12 * 3600,
    # Cost limits, counted for the whole site (no one is identified): concerns filed,
    # and files uploaded (with a concern or later). Far above any real organisation's rate.
    "SUBMISSION_LIMIT": "120 per minute",
    "UPLOAD_LIMIT": "600 per minute",
    # Image cleaning's memory ceiling: the decoded copies one cleaning holds at once
    # (width x height x bytes per pixel, times the copies), estimated from the header
    # before anything is decoded. The default admits every image under MAX_IMAGE_PIXELS.
    "MAX_IMAGE_MEMORY_BYTES": 512 * 1024 * 1024,
    # PDF cleaning's memory ceiling: a PDF's cost cannot be read from its header (a 200 KB
    # file can inflate to gigabytes), so it is cleaned in a child process whose memory may
    # grow by at most this much (RLIMIT_AS; whistle.confined), or the PDF is refused.
    "MAX_PDF_MEMORY_BYTES": 512 * 1024 * 1024,
}


# A case's whole life (issue 23, whistle.cases.clocks and retention): working days count
# without the bank holidays of HOLIDAY_CALENDAR (``CC`` or ``CC-SUBDIV`` of the ``holidays``
# package; ``none``: weekends only; England and Wales by default); closed cases are kept
# RETENTION_DAYS per outcome, and their reviewers reminded RETENTION_REMINDER_DAYS before.
LIFECYCLE: dict[str, Any] = {
    "HOLIDAY_CALENDAR": "GB-ENG",
    "RETENTION_DAYS": dict(DEFAULT_RETENTION_DAYS),
    "RETENTION_REMINDER_DAYS": 30,
    # Detriment check-ins (whistle.cases.checkins): months after closure at which the
    # reporter's status page asks whether they were treated badly since raising the concern.
    "CHECKIN_MONTHS": "1,3,6",
}


# Matching escrow (issue 25): how long a held concern waits for a match (three years).
ESCROW_DEFAULTS = {"ESCROW_DAYS": 1095}


def defaults(instance_path: str) -> dict[str, Any]:
    return {
        "DATABASE_URL": "sqlite:///" + os.path.join(instance_path, "whistle.db"),
        "KEYS_DIR": os.path.abspath("keys"),
        "MIN_REVIEWERS": 2,
        "ACK_DEADLINE_DAYS": 7,
        "FEEDBACK_DEADLINE_DAYS": 90,
        "REMINDER_DAYS_BEFORE": 2,
        # Escalation with access (issue 19): independent reviewers who also get withheld copies
        # of a concern's keys at submission, released when a deadline passes untouched; and
        # how many days they have to act before the next tier.
        "ESCALATION_REVIEWERS": 2,
        "ESCALATION_DAYS": 7,
        "MAX_DETAILS_CHARS": 100_000,
        "MAX_FIELD_CHARS": 200,
        "MAX_CONTENT_LENGTH": 110 * 1024 * 1024,
        "MAX_JSON_BYTES": 1024 * 1024,
        "MAX_FORM_MEMORY_SIZE": 1024 * 1024,
        "MAX_FORM_PARTS": 64,
        "MAX_ATTACHMENTS": 10,
        "MAX_ATTACHMENT_BYTES": 25 * 1024 * 1024,
        "MAX_ATTACHMENTS_TOTAL": 100 * 1024 * 1024,
        "ALLOW_LATER_ATTACHMENTS": True,
        "KEPT_UPLOAD_HOURS": 6,  # files kept for a reporter's form (whistle.cases.kept)
        "MAX_IMAGE_PIXELS": 40_000_000,  # decompression-bomb guard for metadata cleaning
        "SESSION_IDLE_MINUTES": 30,
        "SESSION_MAX_HOURS": 12,
        "REQUIRE_TOTP": False,
        "ENROL_CODE_HOURS": 72,  # how long a one-time enrolment or reset link works
        # The address people open Whistle at, for links in mail (``https://whistle.example``);
        # empty: the links carry the path alone.
        "PUBLIC_URL": "",
        "ARGON2_MEMORY_KIB": 65536,
        "ARGON2_ITERATIONS": 3,
        "ARGON2_LANES": 1,
        "DB_BUSY_TIMEOUT_MS": 5000,  # a write waits this long for a lock, then 503 (also on PG)
        "SQLITE_CACHE_MIB": 64,  # SQLite page cache per connection
        # SQLite: WAL checkpoints in a thread of each server process, not in the request
        # that crosses the threshold (on in gunicorn.conf.py; see whistle/store/db.py).
        "SQLITE_CHECKPOINT_THREAD": False,
        "SQLITE_WAL_MAX_PAGES": 16000,  # with the thread: requests checkpoint from here on
        "LOG_LEVEL": "WARNING",  # the root level when Whistle owns logging (gunicorn, CLI)
        "TRUSTED_HOSTS": None,
        "MAIL_SERVER": "localhost",
        "MAIL_PORT": 25,
        "MAIL_USE_TLS": False,
        "MAIL_USE_SSL": False,
        "MAIL_DEFAULT_SENDER": "whistle@localhost",
        "MAIL_CA_FILE": None,
        "MAIL_SUPPRESS_SEND": False,  # Flask-Mail would suppress in TESTING: tests use real SMTP
        "MAIL_TIMEOUT": 10,
        "OUTBOX_MAX_ATTEMPTS": 12,
        # Notification mail goes out in batches at fixed boundaries of this many minutes (from
        # midnight UTC), so that its delivery says nothing about when within the interval a
        # reporter acted (issue 20). 0 sends at once: for tests and development only.
        "NOTIFY_INTERVAL_MINUTES": 60,
        "ENV": "production",
        "DEBUG": False,
        "TESTING": False,
    } | LIMITS | LIFECYCLE | ESCROW_DEFAULTS


_INT_KEYS = {
    "MIN_REVIEWERS", "ACK_DEADLINE_DAYS", "FEEDBACK_DEADLINE_DAYS", "REMINDER_DAYS_BEFORE",
    "ESCALATION_REVIEWERS", "ESCALATION_DAYS", "ESCROW_DAYS",
    "MAX_DETAILS_CHARS", "MAX_FIELD_CHARS", "MAX_CONTENT_LENGTH", "MAX_JSON_BYTES",
    "MAX_FORM_MEMORY_SIZE", "MAX_FORM_PARTS", "MAX_ATTACHMENTS", "MAX_ATTACHMENT_BYTES",
    "MAX_ATTACHMENTS_TOTAL", "SESSION_IDLE_MINUTES", "SESSION_MAX_HOURS", "ENROL_CODE_HOURS", "ARGON2_MEMORY_KIB",
    "ARGON2_ITERATIONS", "ARGON2_LANES", "MAX_IMAGE_PIXELS", "MAIL_PORT", "MAIL_TIMEOUT", "OUTBOX_MAX_ATTEMPTS",
    "NOTIFY_INTERVAL_MINUTES", "KEPT_UPLOAD_HOURS",
    "DB_BUSY_TIMEOUT_MS", "SQLITE_CACHE_MIB", "SQLITE_WAL_MAX_PAGES",
    "LOGIN_LOCKOUT_FAILURES", "LOGIN_LOCKOUT_SECONDS", "LOGIN_LOCKOUT_MAX_SECONDS",
    "MAX_IMAGE_MEMORY_BYTES", "MAX_PDF_MEMORY_BYTES", "RETENTION_REMINDER_DAYS",
}
_BOOL_KEYS = {"REQUIRE_TOTP", "MAIL_USE_TLS", "MAIL_USE_SSL", "DEBUG", "TESTING", "MAIL_SUPPRESS_SEND",
              "ALLOW_LATER_ATTACHMENTS", "SQLITE_CHECKPOINT_THREAD"}


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no",
                                                      "off"):
        return value.lower() in ("1", "true", "yes", "on")
    raise ConfigError(f"{key} must be true or false")


def check(config: dict[str, Any]) -> None:
    """Normalise types in place and refuse unsafe values with a message naming the key."""
    for key in _INT_KEYS:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                config[key] = int(str(value))
            except ValueError as exc:
                raise ConfigError(f"{key} must be a whole number") from exc
    for key in _BOOL_KEYS:
        config[key] = _as_bool(key, config.get(key))
    if config["MIN_REVIEWERS"] < 2:
        raise ConfigError("MIN_REVIEWERS must be at least 2: no concern may rest on one person")
    if config["ESCALATION_REVIEWERS"] < 0:
        raise ConfigError("ESCALATION_REVIEWERS must be 0 or more")
    if config["DEBUG"] and config.get("ENV") == "production" and not config["TESTING"]:
        raise ConfigError("DEBUG is on in production: refusing to start")
    for key in ("ACK_DEADLINE_DAYS", "FEEDBACK_DEADLINE_DAYS", "SQLITE_CACHE_MIB", "ENROL_CODE_HOURS",
                "SQLITE_WAL_MAX_PAGES", "ESCALATION_DAYS", "ESCROW_DAYS", "LOGIN_LOCKOUT_FAILURES",
                "LOGIN_LOCKOUT_SECONDS", "LOGIN_LOCKOUT_MAX_SECONDS", "MAX_IMAGE_MEMORY_BYTES",
                "MAX_PDF_MEMORY_BYTES", "RETENTION_REMINDER_DAYS"):
        if config[key] < 1:
            raise ConfigError(f"{key} must be at least 1")
    if not 0 <= config["NOTIFY_INTERVAL_MINUTES"] <= 1440 or (
            config["NOTIFY_INTERVAL_MINUTES"] and 1440 % config["NOTIFY_INTERVAL_MINUTES"]):
        raise ConfigError("NOTIFY_INTERVAL_MINUTES must divide a day (e.g. 15, 30, 60, 240, "
                          "1440), or be 0 to send at once (tests and development only)")
    config["HOLIDAY_CALENDAR"] = _holiday_calendar(config.get("HOLIDAY_CALENDAR"))
    config["RETENTION_DAYS"] = _retention_days(config.get("RETENTION_DAYS"))
    config["CHECKIN_MONTHS"] = _checkin_months(config.get("CHECKIN_MONTHS"))
    if isinstance(config.get("TRUSTED_HOSTS"), str):
        config["TRUSTED_HOSTS"] = [h.strip() for h in config["TRUSTED_HOSTS"].split(",")
                                   if h.strip()]


def holiday_calendar_parts(value: str) -> tuple[str, str | None] | None:
    """``GB-ENG`` -> (``GB``, ``ENG``), ``FR`` -> (``FR``, None), ``none`` -> None."""
    if value.lower() == "none":
        return None
    country, _, subdiv = value.partition("-")
    return country.upper(), (subdiv.upper() or None)


def _holiday_calendar(value: Any) -> str:
    import holidays

    text = str(value or "").strip()
    parts = holiday_calendar_parts(text) if text else None
    if parts is not None:
        try:
            holidays.country_holidays(parts[0], subdiv=parts[1], years=2026)
        except (NotImplementedError, KeyError, ValueError) as exc:
            raise ConfigError("HOLIDAY_CALENDAR must be a country code of the holidays "
                              "package, with a subdivision if needed (GB-ENG, DE-BY), or "
                              "none") from exc
    return text or "none"


def _retention_days(value: Any) -> tuple[tuple[str, int], ...]:
    """The defaults with WHISTLE_RETENTION_DAYS (a JSON object, outcome -> days) over them."""
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError("RETENTION_DAYS must be a JSON object: outcome -> days") from exc
    if isinstance(value, tuple):
        value = dict(value)
    if not isinstance(value, dict):
        raise ConfigError("RETENTION_DAYS must be a JSON object: outcome -> days")
    merged = DEFAULT_RETENTION_DAYS | value
    for outcome, days in merged.items():
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 100 * 366:
            raise ConfigError(f"RETENTION_DAYS[{outcome!r}] must be a whole number of days "
                              "from 1 to 36600")
    return tuple(sorted(merged.items()))


def _checkin_months(value: Any) -> tuple[int, ...]:
    """``"1,3,6"`` (or a list) -> (1, 3, 6): rising whole months from 1 to 120."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        months = tuple(int(str(m).strip()) for m in items)
    except (TypeError, ValueError) as exc:
        raise ConfigError("CHECKIN_MONTHS must be whole months, e.g. 1,3,6") from exc
    if not months or list(months) != sorted(set(months)) or not 1 <= months[0] <= months[-1] <= 120:
        raise ConfigError("CHECKIN_MONTHS must be rising whole months from 1 to 120, e.g. 1,3,6")
    return months


@dataclasses.dataclass(frozen=True)
class Settings:
    """What Whistle's own code may know of the configuration: typed, checked, immutable."""

    database_url: str
    keys_dir: str
    min_reviewers: int
    ack_deadline_days: int
    feedback_deadline_days: int
    reminder_days_before: int
    holiday_calendar: str
    retention_days: tuple[tuple[str, int], ...]
    retention_reminder_days: int
    escalation_reviewers: int
    escalation_days: int
    escrow_days: int
    max_details_chars: int
    max_field_chars: int
    max_content_length: int
    max_json_bytes: int
    max_form_memory_size: int
    max_form_parts: int
    max_attachments: int
    max_attachment_bytes: int
    max_attachments_total: int
    allow_later_attachments: bool
    checkin_months: tuple[int, ...]
    kept_upload_hours: int
    max_image_pixels: int
    session_idle_minutes: int
    session_max_hours: int
    require_totp: bool
    enrol_code_hours: int
    public_url: str
    argon2_memory_kib: int
    argon2_iterations: int
    argon2_lanes: int
    db_busy_timeout_ms: int
    sqlite_cache_mib: int
    sqlite_checkpoint_thread: bool
    sqlite_wal_max_pages: int
    log_level: str
    ratelimit_storage_uri: str
    status_limit: str
    login_limit: str
    login_limit_all: str
    login_lockout_failures: int
    login_lockout_seconds: int
    login_lockout_max_seconds: int
    submission_limit: str
    upload_limit: str
    max_image_memory_bytes: int
    max_pdf_memory_bytes: int
    trusted_hosts: tuple[str, ...] | None
    mail_default_sender: str
    mail_ca_file: str | None
    mail_timeout: int
    outbox_max_attempts: int
    notify_interval_minutes: int
    debug: bool
    testing: bool

    @property
    def kdf(self) -> KdfParams:
        """The Argon2id cost for reviewers' passwords."""
        return KdfParams(self.argon2_memory_kib, self.argon2_iterations, self.argon2_lanes)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """From a configuration that ``check`` has normalised (``app.config``)."""
        values = {f.name: config[f.name.upper()] for f in dataclasses.fields(cls)}
        hosts = values["trusted_hosts"]
        values["trusted_hosts"] = tuple(hosts) if hosts is not None else None
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def build(overrides: Mapping[str, Any] | None = None, instance_path: str = "instance"
          ) -> Settings:
    """Settings from the defaults and ``overrides`` (upper-case keys), checked: for tools
    and tests that run Whistle's code without an app."""
    config = defaults(instance_path) | dict(overrides or {})
    check(config)
    return Settings.from_config(config)
