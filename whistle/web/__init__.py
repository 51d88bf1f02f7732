"""The web layers, one per audience: reporters, reviewers, administrators, the JSON API."""

from __future__ import annotations

from flask import Flask, jsonify
from flask_wtf.csrf import CSRFProtect

from whistle.web import security

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    from whistle import i18n
    from whistle.web import (
        admin, adminlog_page, api, changes_api, enrol, errors, pages, report, reviewer,
        transactions, uploads,
    )
    from whistle.web import setup as setup_web

    app.request_class = uploads.WhistleRequest
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 3600)
    app.config["WTF_CSRF_SSL_STRICT"] = True
    security.init_app(app)
    i18n.init_app(app)
    csrf.init_app(app)
    transactions.init_app(app)
    csrf.exempt(api.bp)
    csrf.exempt(changes_api.bp)
    # The reporter's two forms check their CSRF token in the view (report.csrf_refusal), so
    # that an expired form or a lost cookie gives the reporter's words back (issue 20).
    csrf.exempt(report.report_submit)
    csrf.exempt(report.status_reply)
    for blueprint in (api.bp, changes_api.bp, pages.bp, report.bp, reviewer.bp, admin.bp,
                      adminlog_page.bp, setup_web.bp, enrol.bp):
        app.register_blueprint(blueprint)
    errors.register(app)

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        return jsonify(status="ok")
