"""The report form states its file limits in words that fit any configured number."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support.webflow import reader_text


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"MAX_ATTACHMENTS": 1}


@pytest.mark.parametrize("lang, expected", [
    ("en", "one file, up to 26 MB"),
    ("pl", "jeden plik, do 26 MB"),
    ("ar", "ملف واحد، حجمه حتى 26 ميغابايت"),
])
def test_a_limit_of_one_file_reads_as_one_file(client: FlaskClient, lang: str,
                                               expected: str) -> None:
    page = reader_text(client.get(f"/report?lang={lang}").get_data(as_text=True))
    assert expected in page
    assert "1 files" not in page
    assert "MiB" not in page  # issue 21: decimal megabytes, rounded down (25 MiB = 26.2 MB)
