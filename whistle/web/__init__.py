"""The web layers, one per audience: reporters, reviewers, administrators, the JSON API."""

from __future__ import annotations

from flask import Flask, jsonify
from flask_wtf.csrf import CSRFProtect

from whistle.web import security

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    from whistle import i18n
    from whistle.web import (
        admin, adminlog_page, api, changes_api, enrol, errors, openapi, pages, report,
        reviewer, transactions, uploads, escrow_api,
    )
    from whistle.web import checkin_page, lifecycle_api, lifecycle_pages
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
    csrf.exempt(lifecycle_api.bp)
    # The reporter's two forms check their CSRF token in the view (report.csrf_refusal), so
    # that an expired form or a lost cookie gives the reporter's words back (issue 20).
    csrf.exempt(report.report_submit)
    csrf.exempt(report.status_reply)
    csrf.exempt(report.status_show)  # the older action=reply form too (it checks in the view)
    for blueprint in (api.bp, changes_api.bp, pages.bp, report.bp, reviewer.bp, admin.bp,
                      adminlog_page.bp, setup_web.bp, enrol.bp, openapi.bp):
        app.register_blueprint(blueprint)
    errors.register(app)
    app.register_blueprint(lifecycle_api.bp)  # issue 23: agencies, referrals, check-ins
    app.register_blueprint(checkin_page.bp)  # issue 23: the status page's check-in
    app.register_blueprint(lifecycle_pages.bp)  # issue 23: referral, erasure, agency pages
    from whistle.web import retention_api  # issue 23: legal holds placed and lifted by two

    csrf.exempt(retention_api.bp)
    app.register_blueprint(retention_api.bp)
    escrow_api.init_app(app, csrf)  # issue 25: send a held concern now, or withdraw it
    from whistle.web import operator  # issue 24: oral reports filed by intake operators

    csrf.exempt(operator.api_bp)
    for blueprint in (operator.api_bp, operator.bp, operator.pages_bp):
        app.register_blueprint(blueprint)
    from whistle.web import identity_api  # issue 22: identity opened by two; receipts

    csrf.exempt(identity_api.bp)
    app.register_blueprint(identity_api.bp)
    app.register_blueprint(identity_api.pages)
    from whistle.web import organisation  # issue 21: whose channel this is

    organisation.init_app(app)
    app.register_blueprint(organisation.bp)
    from whistle.web import admin_people

    app.register_blueprint(admin_people.bp)

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        return jsonify(status="ok")
