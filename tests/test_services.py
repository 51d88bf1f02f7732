"""The real-component helpers in tests/support/services.py really work.

In CI (CI=true) a missing component fails; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
import redis
import sqlalchemy

from tests.conftest import IN_CI
from tests.support import services


@contextlib.contextmanager
def require(cm: contextlib.AbstractContextManager[Any]) -> Iterator[Any]:
    """Enter a helper; a missing component fails in CI and skips elsewhere."""
    try:
        value = cm.__enter__()
    except services.ComponentMissing as exc:
        if IN_CI:
            pytest.fail(f"component missing in CI: {exc}")
        pytest.skip(f"component missing: {exc}")
    try:
        yield value
    except BaseException as exc:
        if not cm.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        cm.__exit__(None, None, None)


def test_free_port_is_bindable() -> None:
    import socket

    port = services.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_postgres_accepts_connection_and_select() -> None:
    with require(services.postgres_server()) as pg:
        url = pg.create_database("whistle_services_test")
        assert url.startswith(f"postgresql+psycopg://whistle:{pg.password}@127.0.0.1:{pg.port}/")
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(sqlalchemy.text("select 1")).scalar_one() == 1
                user = conn.execute(sqlalchemy.text("select current_user")).scalar_one()
                assert user == "whistle"
                assert conn.execute(sqlalchemy.text("show fsync")).scalar_one() == "on"
        finally:
            engine.dispose()
        pg.drop_database("whistle_services_test")
        # The role may create databases itself too.
        engine = sqlalchemy.create_engine(pg.url_for("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("create database whistle_by_role"))
        finally:
            engine.dispose()
        pg.drop_database("whistle_by_role")
        data_dir = pg.data_dir
    assert not os.path.exists(data_dir)


def _mail(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "whistle@example.org"
    msg["To"] = "handler@example.org"
    msg["Subject"] = subject
    msg.set_content("Grüße, a new report arrived.")
    return msg


def test_smtp_receives_and_survives_outage() -> None:
    with require(services.smtp_server()) as smtp:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
            client.send_message(_mail("first"))
        (got,) = smtp.wait_for(1)
        assert isinstance(got, EmailMessage)
        assert got["Subject"] == "first"
        assert "Grüße" in got.get_content()
        assert smtp.envelopes[0] == ("whistle@example.org", ["handler@example.org"])

        port = smtp.port
        smtp.stop()
        with pytest.raises(OSError), smtplib.SMTP(smtp.host, smtp.port, timeout=2) as client:
            client.send_message(_mail("lost"))

        smtp.start()
        assert smtp.port == port
        with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
            client.send_message(_mail("second"))
        assert [m["Subject"] for m in smtp.wait_for(2)] == ["first", "second"]
        with pytest.raises(TimeoutError):
            smtp.wait_for(3, timeout=0.2)


def test_redis_answers_ping() -> None:
    with require(services.redis_server()) as srv:
        assert srv.url == f"redis://127.0.0.1:{srv.port}/0"
        client = redis.Redis.from_url(srv.url)
        try:
            assert client.ping() is True
            client.set("k", "v")
            assert client.get("k") == b"v"
        finally:
            client.close()


def test_chromium_reads_title_of_data_url() -> None:
    html = (
        "data:text/html,<title>Whistle test</title>"
        "<script>document.title = 'script ran'</script><p>hi</p>"
    )
    with require(services.chromium(java_script_enabled=False)) as browser:
        page = browser.new_page()
        try:
            page.goto(html)
            assert page.title() == "Whistle test"  # JavaScript off: the script did not run
            assert page.inner_text("p") == "hi"
        finally:
            page.close()
        page = browser.new_page(java_script_enabled=True)
        try:
            page.goto(html)
            assert page.title() == "script ran"
        finally:
            page.close()
