"""``scripts/run``, the README's first command: it serves on ``WHISTLE_BIND`` and says where,
installs only the runtime packages, and gunicorn's log keeps the server's own address (only
clients' addresses are blanked)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.support import services

ROOT = Path(__file__).resolve().parent.parent


def test_scripts_run_serves_on_whistle_bind_and_prints_it(tmp_path: Path) -> None:
    port = services.free_port()
    env = os.environ | {
        "WHISTLE_BIND": f"127.0.0.1:{port}", "WHISTLE_KEYS_DIR": str(tmp_path / "keys"),
        "WHISTLE_DATABASE_URL": f"sqlite:///{tmp_path / 'whistle.db'}",
    }
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(ROOT / "scripts" / "run")], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        answer = None
        while time.monotonic() < deadline and answer is None:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    answer = r.read()
            except OSError:
                assert proc.poll() is None, log.read_text()
        assert answer is not None, log.read_text()
        assert b'"ok"' in answer
        output = log.read_text()
        assert f"run: serving on http://127.0.0.1:{port}" in output, output
        assert f"Listening at: http://127.0.0.1:{port}" in output, output
        # Runtime only: nothing of the test setup was installed or asked for.
        assert "requirements-dev.txt" not in output
        assert not re.search(r"apt installing .*(chromium|postgresql|nginx)", output), output
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_runtime_pins_hold_no_test_tools() -> None:
    runtime = (ROOT / "requirements.txt").read_text().lower()
    development = (ROOT / "requirements-dev.txt").read_text().lower()
    for tool in ("pytest", "playwright", "hypothesis", "aiosmtpd", "ruff", "mypy", "bandit"):
        assert f"\n{tool}==" not in runtime and f"\n{tool}==" in development, tool
    assert "-r requirements.txt" in development
    setup = (ROOT / "scripts" / "setup").read_text()
    assert "scripts/setup --dev" in (ROOT / "scripts" / "test").read_text()
    assert re.search(r"APT_PACKAGES=\(python3-venv\)\n", setup)
