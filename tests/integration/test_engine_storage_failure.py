"""When the ledger cannot take a claim, the claim never happened: no stock or limit is used."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pytest

from servers.postgres_fixtures import LedgerDb
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.errors import StorageUnavailable
from xfq.ports import ClaimAnswer, ClaimRequest
from xfq.spec import load_campaign

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
TYPE = "r6-home-2000-300"


def submit(engine: EmbeddedClaimEngine, person: str, key: str) -> Future[ClaimAnswer]:
    campaign = load_campaign(EXAMPLE)
    future: Future[ClaimAnswer] = Future()

    def reply(answer: ClaimAnswer | BaseException) -> None:
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)

    citizen = Citizen(person, Residency.PERMANENT, in_city=True)
    engine.submit(ClaimRequest(citizen, TYPE, key), campaign.round("r6").opens_at, reply)
    return future


def test_a_claim_the_ledger_refuses_uses_no_stock_and_can_be_retried(ledger_db: LedgerDb) -> None:
    campaign = load_campaign(EXAMPLE)
    ledger = SqlLedger(ledger_db.url)
    ledger.install_campaign(campaign, EXAMPLE.read_text(), campaign.round("r6").opens_at)
    engine = EmbeddedClaimEngine(campaign, ledger, RandomIds(), None)
    assert submit(engine, "alice", "k1").result(5).code is ClaimCode.ISSUED
    ledger.close()  # the writer is gone: nothing more can be made durable

    with pytest.raises(StorageUnavailable):
        submit(engine, "bob", "k1").result(5)
    assert engine.remaining(TYPE) == 1_979  # only alice's claim counts
    with pytest.raises(StorageUnavailable):  # a retry gets an answer, not silence
        submit(engine, "bob", "k1").result(5)
    engine.close()
