"""Whistle: encrypted concern reporting with two-reviewer routing."""

from __future__ import annotations

import os
import sys
from typing import Any

from flask import Flask, current_app
from flask.helpers import get_debug_flag

from whistle import config as config_mod
from whistle import keys as keys_mod
from whistle import errors, logs

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _is_setup_command() -> bool:
    """True when the flask CLI runs a command that must work before keys exist (``init``)."""
    prog = os.path.basename(sys.argv[0]) if sys.argv else ""
    if prog not in ("flask", "__main__.py") and not prog.startswith("flask"):
        return False
    return any(arg in ("init", "--help") for arg in sys.argv[1:])


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, database, keys, mail, web layers and commands.

    Refuses to start (raises ConfigError or errors.KeyMaterialError) on unsafe
    configuration or missing, corrupt or widely readable key material.
    """
    from whistle.web.transactions import WhistleFlask

    app = WhistleFlask(__name__, template_folder=os.path.join(_ROOT, "templates"),
                static_folder=os.path.join(_ROOT, "static"), instance_relative_config=True)
    app.config.update(config_mod.defaults(app.instance_path))
    app.config.from_prefixed_env("WHISTLE")
    if get_debug_flag():
        # `flask --debug` or FLASK_DEBUG=1 would turn the interactive debugger on: refuse
        # it in production like WHISTLE_DEBUG.
        app.config["DEBUG"] = True
    if test_config:
        app.config.update(test_config)
    config_mod.check(app.config)
    app.extensions["whistle_settings"] = config_mod.Settings.from_config(app.config)
    os.makedirs(app.instance_path, mode=0o700, exist_ok=True)  # owner-only (issue 20)
    app.jinja_env.globals.pop("config", None)
    logs.configure(app)

    try:
        app.extensions["whistle_keys"] = keys_mod.load(app.config["KEYS_DIR"])
    except errors.KeyMaterialError:
        if not _is_setup_command() and not app.config.get("DEFER_KEYS"):
            raise
        app.extensions["whistle_keys"] = None
    if app.extensions["whistle_keys"] is not None:
        app.secret_key = app.extensions["whistle_keys"].secret_key

    from whistle import cli, notify, ratelimit
    from whistle.store import db
    from whistle.web import init_app as init_web

    settings = settings_of(app)
    app.extensions["whistle_database"] = db.open_database(settings)
    app.extensions["whistle_checkpoint_path"] = db.checkpoint_path(settings)
    notify.init_app(app)
    ratelimit.init_app(app)
    init_web(app)
    cli.init_app(app)
    return app


def settings_of(app: Flask) -> config_mod.Settings:
    """The app's settings, built once in ``create_app``."""
    found: config_mod.Settings = app.extensions["whistle_settings"]
    return found


def current_settings() -> config_mod.Settings:
    """The running app's settings (the web and CLI doors pass them to the domain)."""
    return settings_of(current_app)


def instance_keys() -> keys_mod.InstanceKeys:
    """The running app's key material (the web layers fail closed without it)."""
    found: keys_mod.InstanceKeys | None = current_app.extensions.get("whistle_keys")
    if found is None:
        raise errors.KeyMaterialError("key material is not loaded")
    return found
