"""XFQ_DATABASE_URL: what a user may write for the ledger, and what it becomes."""

from __future__ import annotations

import pytest

from xfq.config import Settings


@pytest.mark.parametrize(
    ("given", "used"),
    [
        (
            "postgresql://xfq@db.internal:5432/city",
            "postgresql+psycopg://xfq@db.internal:5432/city",
        ),
        ("postgres://xfq:pw@127.0.0.1/city", "postgresql+psycopg://xfq:pw@127.0.0.1/city"),
        ("postgresql+psycopg://xfq@h/city", "postgresql+psycopg://xfq@h/city"),
        ("sqlite:///var/xfq/ledger.db", "sqlite:///var/xfq/ledger.db"),
        ("var/town/ledger.db", "sqlite:///var/town/ledger.db"),
        ("/srv/xfq/ledger.db", "sqlite:////srv/xfq/ledger.db"),
    ],
)
def test_a_ledger_is_a_sqlite_path_or_a_postgresql_url(given: str, used: str) -> None:
    assert Settings(database_url=given).database_url == used


def test_the_environment_names_the_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFQ_DATABASE_URL", "postgresql://xfq@127.0.0.1:5433/city")
    assert Settings().database_url == "postgresql+psycopg://xfq@127.0.0.1:5433/city"
