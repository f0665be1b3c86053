"""The persister's batch write: vouchers and issue events the ledger lacks, once each, whatever
was already there (a batch redelivered after a crash), on both ledger backends."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from servers.postgres_fixtures import LedgerDb
from xfq.adapters.redis.persister import insert_missing
from xfq.adapters.sql.ledger import SqlLedger
from xfq.domain.voucher import Voucher, new_voucher
from xfq.spec import load_campaign

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
CAMPAIGN = load_campaign(EXAMPLE)
R6 = CAMPAIGN.round("r6")
TYPE = R6.types[0]
TIMEOUT_S = 60.0


def _claims(first: int, count: int) -> list[tuple[Voucher, str]]:
    at = R6.opens_at + timedelta(seconds=1)
    window = R6.validity.window(R6.opens_at, at, CAMPAIGN.tz)
    made = []
    for n in range(first, first + count):
        voucher = new_voucher(
            f"v-{n:06d}", TYPE.id, R6.id, TYPE.category, f"p-{n}", at + timedelta(microseconds=n),
            window,
        )  # fmt: skip
        made.append((voucher, f"key-{n}"))
    return made


def test_a_batch_inserts_only_what_the_ledger_lacks_once_each(ledger_db: LedgerDb) -> None:
    ledger = SqlLedger(ledger_db.url)
    try:
        ledger.install_campaign(CAMPAIGN, EXAMPLE.read_text(), R6.opens_at)
        earlier = _claims(0, 300)  # moved before a crash, then delivered again
        assert ledger.write(insert_missing(earlier)).result(TIMEOUT_S) == 300
        batch = _claims(0, 1_200)  # over two of the 500-row statements
        batch.append(batch[700])  # the same entry twice in one batch
        assert ledger.write(insert_missing(batch)).result(TIMEOUT_S) == 900
        assert ledger.write(insert_missing(batch)).result(TIMEOUT_S) == 0
        kept = {v.id: ledger.reader().voucher(v.id) for v, _key in batch}
        assert kept == {v.id: v for v, _key in batch}
    finally:
        ledger.close()
    assert ledger_db.scalar("SELECT count(*) FROM vouchers") == 1_200
    events = ledger_db.rows("SELECT voucher_id, ref FROM voucher_events WHERE event = 'issue'")
    assert sorted(events) == sorted((v.id, key) for v, key in _claims(0, 1_200))
    claim_keys = ledger_db.rows("SELECT claim_key FROM vouchers WHERE id = 'v-000042'")
    assert claim_keys == [("key-42",)]
