"""Whistle refuses to start on unsafe configuration or key material, and says why.

Checked three ways for each problem: ``create_app`` raises with a message that
names the problem (and the file), the real ``flask --app app`` command exits
non-zero, and the real ``gunicorn app:app`` exits non-zero without serving.
The message never contains the secret itself.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import server
from whistle import create_app, errors, keys
from whistle.config import ConfigError

Breakage = Callable[[Path], str]  # breaks the keys dir; returns text that must not be shown


def missing(name: str) -> Breakage:
    def apply(keys_dir: Path) -> str:
        secret = (keys_dir / name).read_text().strip()
        (keys_dir / name).unlink()
        return secret
    return apply


def corrupt(name: str, content: str) -> Breakage:
    def apply(keys_dir: Path) -> str:
        (keys_dir / name).write_text(content)
        return content.strip()
    return apply


def readable(name: str, mode: int) -> Breakage:
    def apply(keys_dir: Path) -> str:
        os.chmod(keys_dir / name, mode)
        return (keys_dir / name).read_text().strip()
    return apply


KEY_PROBLEMS: list[tuple[str, Breakage, str]] = [
    ("missing secret_key", missing("secret_key"), "key file missing"),
    ("missing token_pepper", missing("token_pepper"), "key file missing"),
    ("missing recovery.pub", missing("recovery.pub"), "key file missing"),
    ("corrupt token_pepper", corrupt("token_pepper", "CANARY-not-hex-at-all\n"), "corrupt"),
    ("short reporter_pepper", corrupt("reporter_pepper", "ab" * 16 + "\n"), "corrupt"),
    ("corrupt recovery.pub", corrupt("recovery.pub", "00" * 40 + "\n"), "corrupt"),
    ("world-readable index_pepper", readable("index_pepper", 0o644), "readable by"),
    ("group-readable secret_key", readable("secret_key", 0o640), "readable by"),
    ("missing signing_key", missing("signing_key"), "key file missing"),
    ("short signing_key", corrupt("signing_key", "ab" * 32 + "\n"), "corrupt"),
    ("group-readable signing_key", readable("signing_key", 0o640), "readable by"),
]


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    keys.create_missing(str(path), str(tmp_path / "recovery-private.txt"))
    return path


def config_for(tmp_path: Path, keys_dir: Path, **extra: Any) -> dict[str, Any]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "KEYS_DIR": str(keys_dir)} | extra


@pytest.mark.parametrize(("name", "breakage", "says"), KEY_PROBLEMS,
                         ids=[p[0] for p in KEY_PROBLEMS])
def test_create_app_refuses_bad_key_material_and_names_the_file_not_the_secret(
        tmp_path: Path, keys_dir: Path, name: str, breakage: Breakage, says: str) -> None:
    create_app(config_for(tmp_path, keys_dir))  # fine before
    secret = breakage(keys_dir)
    with pytest.raises(errors.KeyMaterialError) as caught:
        create_app(config_for(tmp_path, keys_dir))
    message = str(caught.value)
    assert says in message and str(keys_dir) in message
    assert name.split()[-1] in message  # the file's name
    assert secret not in message and secret[:16] not in message


@pytest.mark.parametrize(("setting", "says"), [
    ({"MIN_REVIEWERS": 1}, "MIN_REVIEWERS"), ({"MIN_REVIEWERS": 0}, "MIN_REVIEWERS"),
    ({"MIN_REVIEWERS": -3}, "MIN_REVIEWERS"), ({"MIN_REVIEWERS": "one"}, "MIN_REVIEWERS"),
    ({"DEBUG": True}, "DEBUG"), ({"DEBUG": "yes"}, "DEBUG"),
    ({"ACK_DEADLINE_DAYS": 0}, "ACK_DEADLINE_DAYS"), ({"MAIL_USE_TLS": "maybe"}, "MAIL_USE_TLS"),
])
def test_create_app_refuses_unsafe_configuration(tmp_path: Path, keys_dir: Path,
                                                 setting: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        create_app(config_for(tmp_path, keys_dir, **setting))


def test_flask_debug_in_the_environment_is_refused_too(tmp_path: Path, keys_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_DEBUG", "1")
    with pytest.raises(ConfigError, match="DEBUG"):
        create_app(config_for(tmp_path, keys_dir))
    # A developer's machine may debug: ENV=development, never production.
    assert create_app(config_for(tmp_path, keys_dir, ENV="development")).debug


def test_a_sound_configuration_starts(tmp_path: Path, keys_dir: Path) -> None:
    app = create_app(config_for(tmp_path, keys_dir, MIN_REVIEWERS=3))
    assert app.config["MIN_REVIEWERS"] == 3 and not app.debug


# -- the real commands -----------------------------------------------------------------------


@pytest.fixture
def instance(tmp_path: Path) -> server.Instance:
    return server.new_instance(tmp_path / "instance", f"sqlite:///{tmp_path}/instance/w.db")


def assert_refused(done: subprocess.CompletedProcess[str] | tuple[int, str], says: str,
                   secret: str | None) -> None:
    code, output = ((done.returncode, done.stdout + done.stderr)
                    if isinstance(done, subprocess.CompletedProcess) else done)
    assert code != 0, output[-2000:]
    assert says in output, output[-2000:]
    if secret:
        assert secret not in output and secret[:16] not in output


CLI_PROBLEMS = [
    ("missing secret_key", missing("secret_key"), "key file missing"),
    ("corrupt token_pepper", corrupt("token_pepper", "CANARY-not-hex-at-all\n"), "corrupt"),
    ("world-readable index_pepper", readable("index_pepper", 0o644), "readable by group"),
]


@pytest.mark.parametrize(("name", "breakage", "says"), CLI_PROBLEMS,
                         ids=[p[0] for p in CLI_PROBLEMS])
def test_the_flask_command_refuses_bad_key_material(instance: server.Instance, name: str,
                                                   breakage: Breakage, says: str) -> None:
    assert instance.flask("reviewer", "list").returncode == 0
    secret = breakage(instance.keys_dir)
    assert_refused(instance.flask("reviewer", "list"), says, secret)
    assert_refused(instance.flask("outbox"), says, secret)


@pytest.mark.parametrize(("env", "says"), [
    ({"WHISTLE_MIN_REVIEWERS": "1"}, "MIN_REVIEWERS must be at least 2"),
    ({"WHISTLE_DEBUG": "true"}, "DEBUG is on in production"),
    ({"FLASK_DEBUG": "1"}, "DEBUG is on in production"),
])
def test_the_flask_command_refuses_unsafe_configuration(instance: server.Instance,
                                                        env: dict[str, str], says: str) -> None:
    assert_refused(instance.flask("reviewer", "list", env=env), says, None)


def run_gunicorn(instance: server.Instance, env: dict[str, str] | None = None
                 ) -> tuple[int, str]:
    """Start gunicorn for the instance; it must exit by itself (no server should stay up)."""
    port = server.free_port()
    proc = subprocess.run(
        [str(server.BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "app:app"], cwd=server.ROOT, env=instance.environment(env), capture_output=True,
        text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize(("breakage", "env", "says"), [
    (readable("token_pepper", 0o644), None, "readable by group or others"),
    (missing("recovery.pub"), None, "key file missing"),
    (None, {"WHISTLE_MIN_REVIEWERS": "1"}, "MIN_REVIEWERS must be at least 2"),
    (None, {"WHISTLE_DEBUG": "1"}, "DEBUG is on in production"),
], ids=["world-readable", "missing", "min-reviewers", "debug"])
def test_gunicorn_refuses_to_serve_and_exits_non_zero(
        instance: server.Instance, breakage: Breakage | None, env: dict[str, str] | None,
        says: str) -> None:
    secret = breakage(instance.keys_dir) if breakage else None
    code, output = run_gunicorn(instance, env)
    assert_refused((code, output), says, secret)
    assert "Listening at" in output  # it did try, and then stopped: not a crash at import


def test_init_is_allowed_without_keys_and_creates_them(tmp_path: Path) -> None:
    instance = server.Instance(tmp_path / "fresh", f"sqlite:///{tmp_path}/fresh.db")
    instance.directory.mkdir()
    assert instance.flask("reviewer", "list").returncode != 0  # no keys yet: refused
    instance.init()
    for name in keys.SECRET_FILES:
        assert (instance.keys_dir / name).stat().st_mode & 0o077 == 0
    assert instance.flask("reviewer", "list").returncode == 0
