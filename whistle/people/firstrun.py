"""First-run setup: a one-time code printed by ``init`` that ``/setup`` accepts once."""

from __future__ import annotations

import secrets
from pathlib import Path

from whistle import crypto, keys

_FILE = "setup_code"


def issue_code(keys_dir: str) -> str:
    """A fresh one-time code; only its hash is kept (in KEYS_DIR, mode 600)."""
    code = "-".join(secrets.token_hex(3) for _ in range(4))
    path = Path(keys_dir) / _FILE
    if path.exists():
        path.unlink()
    keys.write_private(path, crypto.digest(code.encode()).hex())
    return code


def check_and_consume(keys_dir: str, code: str) -> bool:
    path = Path(keys_dir) / _FILE
    if not path.exists() or not isinstance(code, str) or len(code) > 64:
        return False
    expected = bytes.fromhex(path.read_text().strip())
    if not secrets.compare_digest(expected, crypto.digest(code.strip().lower().encode())):
        return False
    path.unlink()
    return True


def pending(keys_dir: str) -> bool:
    return (Path(keys_dir) / _FILE).exists()
