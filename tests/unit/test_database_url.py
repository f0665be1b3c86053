"""XFQ_DATABASE_URL: what a user may write for the ledger, and what it becomes; the bounds on
its link."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from xfq.bootstrap import serving_bounds
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


def test_the_environment_bounds_the_ledger_link_and_refuses_a_connect_bound_under_2_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XFQ_LEDGER_ANSWER_TIMEOUT_S", "12.5")
    bounds = serving_bounds(Settings())
    assert (bounds.connect_timeout_s, bounds.tcp_timeout_s, bounds.answer_timeout_s) == (5, 5, 12.5)
    assert bounds.libpq_params()["tcp_user_timeout"] == 5000  # libpq counts milliseconds
    with pytest.raises(ValidationError):
        Settings(ledger_connect_timeout_s=1)  # libpq would wait 2 s anyway
