"""Shared by the audience tests: a three-language list and CSV files written as bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.audience.listedits import add_list


@pytest.fixture
def news(services):
    return add_list(services.engine, slug="news", name="News", languages=["en", "fr", "es"],
                    default_language="en")


def write(tmp_path: Path, text: str, name: str = "subs.csv") -> Path:
    """A CSV file in tmp_path holding exactly this text (UTF-8)."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path
