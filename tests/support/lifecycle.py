"""Helpers for the tests of issue 23's referrals, check-ins and erasure: a case with a file,
messages and a note; closing it the two-person way; an agency registered the two-person way."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient


def submit_with_file(client: FlaskClient, details: str, file_bytes: bytes,
                     filename: str = "evidence.txt", **fields: Any) -> dict[str, Any]:
    body = {"category": "conduct", "details": details} | fields
    response = client.post("/api/v1/concerns", content_type="multipart/form-data", data={
        "concern": json.dumps(body),
        "attachment": (io.BytesIO(file_bytes), filename, "text/plain")})
    assert response.status_code == 201, response.get_data(as_text=True)
    data: dict[str, Any] = response.get_json()
    return data


def close_case(client: FlaskClient, ref: str, first: dict[str, str],
               second: dict[str, str]) -> None:
    """``first`` proposes closure, ``second`` (another assigned reviewer) confirms."""
    proposed = client.post(f"/api/v1/cases/{ref}/transitions", headers=first,
                           json={"to": "closed", "outcome": "substantiated"})
    assert proposed.status_code == 200, proposed.get_data(as_text=True)
    confirmed = client.post(f"/api/v1/cases/{ref}/transitions", headers=second,
                            json={"to": "closed"})
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)


def age_identity(tmp_path: Path, name: str = "agency") -> tuple[Path, str]:
    """A key made by Debian's ``age-keygen``: (identity file, public key ``age1...``)."""
    key_file = tmp_path / f"{name}-key.txt"
    subprocess.run(["age-keygen", "-o", str(key_file)], check=True, capture_output=True)
    public = next(line.split(": ", 1)[1] for line in key_file.read_text().splitlines()
                  if line.startswith("# public key: "))
    return key_file, public.strip()


def register_agency(client: FlaskClient, proposer: dict[str, str], approver: dict[str, str],
                    name: str, recipient: str) -> str:
    proposed = client.post("/api/v1/admin/agencies", headers=proposer,
                           json={"name": name, "age_recipient": recipient})
    assert proposed.status_code == 202, proposed.get_data(as_text=True)
    body = proposed.get_json()
    approved = client.post(f"/api/v1/admin/changes/{body['change_id']}/approve",
                           headers=approver)
    assert approved.status_code == 200, approved.get_data(as_text=True)
    return str(body["id"])


def age_decrypt(key_file: Path, data: bytes) -> bytes:
    done = subprocess.run(["age", "-d", "-i", str(key_file)], input=data, check=True,
                          capture_output=True)
    return done.stdout
