"""The audit trail through the API and the CLI, and the operators' review of fraud flags."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import Api, Till
from typer.testing import CliRunner, Result

from xfq.adapters.sql.fraud import store_flags
from xfq.api.auth.tokens import Role
from xfq.cli import app
from xfq.domain.fraud import Flag, Rule

pytestmark = pytest.mark.anyio


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def ledger_file(api: Api) -> Path:
    return Path(api.container.ledger.url.removeprefix("sqlite:///"))


def intrude(api: Api, statement: str) -> None:
    """Someone with the database file: drops the append-only triggers, then edits the log."""
    with api.container.ledger.engine.begin() as c:
        c.execute(sa.text("DROP TRIGGER audit_log_no_update"))
        c.execute(sa.text("DROP TRIGGER audit_log_no_delete"))
        c.execute(sa.text(statement))


async def operator_day(api: Api) -> Till:
    till = await api.enroll("shop-1", "retail")
    await api.enroll("shop-2", "catering")
    for action in ("suspend", "reinstate"):
        answer = await api.client.post(
            f"/v1/ops/merchants/shop-1/{action}", headers=api.ops(f"{action}-1")
        )
        assert answer.status_code == 200, answer.text
    opened = await api.client.post("/v1/ops/rounds/r6/open", headers=api.ops("open-1"))
    assert opened.status_code == 200, opened.text
    return till


async def test_operator_actions_are_audited_and_auditors_can_read_and_verify(api: Api) -> None:
    till = await operator_day(api)
    auditor = api.token("aud", Role.AUDITOR)
    page = await api.client.get("/v1/audit/entries", headers=auditor)
    assert page.status_code == 200, page.text
    entries = page.json()["entries"]
    assert [(e["seq"], e["action"], e["subject"]) for e in entries] == [
        (1, "merchant.enrolled", "shop-1"),
        (2, "merchant.approved", "shop-1"),
        (3, "merchant.enrolled", "shop-2"),
        (4, "merchant.approved", "shop-2"),
        (5, "merchant.suspended", "shop-1"),
        (6, "merchant.reinstated", "shop-1"),
        (7, "round.opened", "r6"),
    ]
    # an approval names the API key it issued, never the key's secret
    assert entries[1]["details"] == {"from": "pending", "to": "enrolled", "key_id": till.key_id}
    assert till.secret.decode() not in page.text
    assert entries[4]["actor"] == "op1" and entries[4]["details"] == {
        "from": "enrolled",
        "to": "suspended",
    }
    second = await api.client.get("/v1/audit/entries?after_seq=5&limit=1", headers=auditor)
    assert [e["seq"] for e in second.json()["entries"]] == [6]
    assert second.json()["next_after_seq"] == 6
    verified = (await api.client.get("/v1/audit/verify", headers=auditor)).json()
    assert (
        verified["ok"] and verified["entries"] == 7 and verified["head_hash"] == entries[-1]["hash"]
    )
    citizen = await api.client.get("/v1/audit/entries", headers=api.token("alice"))
    assert citizen.status_code == 403


async def test_the_published_digest_is_what_the_cli_prints_and_catches_a_cut_tail(
    api: Api, tmp_path: Path
) -> None:
    await operator_day(api)
    auditor = api.token("aud", Role.AUDITOR)
    digest = (await api.client.get("/v1/audit/digest/2022-03-05", headers=auditor)).json()
    assert digest["count"] == 7 and digest["last_seq"] == 7
    assert digest["actions"]["merchant.enrolled"] == 2
    printed = cli("audit", "digest", str(ledger_file(api)), "2022-03-05")
    assert printed.exit_code == 0, printed.output
    assert printed.stdout.strip() == digest["canonical"]
    published = tmp_path / "digest-2022-03-05.json"
    published.write_text(digest["canonical"], encoding="utf-8")
    ok = cli("audit", "verify", str(ledger_file(api)), "--digest", str(published))
    assert ok.exit_code == 0 and "7 entries, chain intact" in ok.stdout

    intrude(api, "DELETE FROM audit_log WHERE seq >= 6")
    cut = cli("audit", "verify", str(ledger_file(api)), "--digest", str(published))
    assert cut.exit_code == 1
    assert (
        "DIGEST MISMATCH" in cut.stdout and "last_seq: published 7, the log gives 5" in cut.stdout
    )


@pytest.mark.parametrize(
    ("tamper", "seq"),
    [
        ('UPDATE audit_log SET details = \'{"from":"pending"}\' WHERE seq = 4', 4),
        ("DELETE FROM audit_log WHERE seq = 3", 3),
        ("UPDATE audit_log SET seq = seq + 100 WHERE seq = 2", 2),
    ],
)
async def test_audit_verify_names_the_first_broken_entry(api: Api, tamper: str, seq: int) -> None:
    await operator_day(api)
    assert cli("audit", "verify", str(ledger_file(api))).exit_code == 0
    intrude(api, tamper)
    broken = cli("audit", "verify", str(ledger_file(api)))
    assert broken.exit_code == 1
    assert f"BROKEN at entry {seq}:" in broken.stdout
    assert not (await api.client.get("/v1/audit/verify", headers=api.ops("x"))).json()["ok"]


async def test_the_database_itself_refuses_to_change_an_audit_entry(api: Api) -> None:
    await operator_day(api)
    for statement in ("UPDATE audit_log SET actor = 'x' WHERE seq = 1", "DELETE FROM audit_log"):
        with (
            pytest.raises(sa.exc.IntegrityError, match="append-only"),
            api.container.ledger.engine.begin() as c,
        ):
            c.execute(sa.text(statement))
    assert cli("audit", "verify", str(ledger_file(api))).exit_code == 0


def planted_flag(api: Api, merchant_id: str) -> Flag:
    flag = Flag(
        Rule.THRESHOLD_HUGGING,
        merchant_id,
        None,
        ("rd1", "rd2"),
        {"hugging": 9, "orders": 10},
        f"{merchant_id}: 9 of 10 voucher orders were within 2% above the threshold.",
    )
    store_flags(api.container.ledger.engine, [flag], api.clock.now())
    return flag


async def test_confirming_a_flag_can_suspend_its_merchant_and_is_audited(api: Api) -> None:
    await api.enroll("shop-1", "retail")
    flag = planted_flag(api, "shop-1")
    queue = await api.client.get("/v1/ops/fraud/flags?status=open", headers=api.ops("q"))
    assert [f["id"] for f in queue.json()] == [flag.id]
    assert queue.json()[0]["explanation"].startswith("shop-1: 9 of 10")
    body = {"reason": "orders rung up at 180.00 all week", "suspend_merchant": True}
    confirmed = await api.client.post(
        f"/v1/ops/fraud/flags/{flag.id}/confirm", json=body, headers=api.ops("c1")
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {
        "flag_id": flag.id,
        "status": "confirmed",
        "merchant_id": "shop-1",
        "merchant_suspended": True,
    }
    merchants = (await api.client.get("/v1/ops/merchants", headers=api.ops("m"))).json()
    assert {m["id"]: m["status"] for m in merchants}["shop-1"] == "suspended"
    entries = (await api.client.get("/v1/audit/entries?after_seq=2", headers=api.ops("e"))).json()
    assert [(e["action"], e["subject"]) for e in entries["entries"]] == [
        ("flag.confirmed", flag.id),
        ("merchant.suspended", "shop-1"),
    ]
    assert entries["entries"][1]["details"]["reason"] == f"fraud flag {flag.id} confirmed"
    open_now = await api.client.get("/v1/ops/fraud/flags?status=open", headers=api.ops("q2"))
    assert open_now.json() == []


async def test_reviewing_twice_or_an_unknown_flag_is_a_clear_problem(api: Api) -> None:
    await api.enroll("shop-1", "retail")
    flag = planted_flag(api, "shop-1")
    path = f"/v1/ops/fraud/flags/{flag.id}"
    first = await api.client.post(
        f"{path}/dismiss", json={"reason": "a bakery"}, headers=api.ops("d1")
    )
    assert first.status_code == 200 and first.json()["status"] == "dismissed"
    replay = await api.client.post(
        f"{path}/dismiss", json={"reason": "a bakery"}, headers=api.ops("d1")
    )
    assert replay.status_code == 200 and replay.headers["Idempotent-Replay"] == "true"
    again = await api.client.post(f"{path}/confirm", json={"reason": "x"}, headers=api.ops("c2"))
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert (
        again.json()["code"] == "flag_already_reviewed"
        and "dismissed already" in again.json()["detail"]
    )
    unknown = await api.client.post(
        "/v1/ops/fraud/flags/ff_nope/confirm", json={"reason": "x"}, headers=api.ops("c3")
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_object"
    assert "ff_nope" in unknown.json()["detail"]
    empty = await api.client.post(f"{path}/dismiss", json={"reason": ""}, headers=api.ops("d2"))
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "body.reason"
    blank = await api.client.post(f"{path}/dismiss", json={"reason": "   "}, headers=api.ops("d4"))
    assert blank.status_code == 422 and blank.json()["code"] == "invalid_request"
    extra = await api.client.post(
        f"{path}/dismiss", json={"reason": "x", "suspend_merchant": True}, headers=api.ops("d3")
    )
    assert extra.status_code == 422
    auditor = {**api.token("aud", Role.AUDITOR), "Idempotency-Key": "a1"}
    refused = await api.client.post(f"{path}/confirm", json={"reason": "x"}, headers=auditor)
    assert refused.status_code == 403
    assert (await api.client.get(f"{path}", headers=api.token("aud", Role.AUDITOR))).json()[
        "review_reason"
    ] == "a bakery"
    missing = await api.client.get("/v1/ops/fraud/flags/ff_nope", headers=api.ops("g"))
    assert missing.status_code == 404


async def test_a_scan_over_an_honest_ledger_finds_nothing_and_the_cli_agrees(api: Api) -> None:
    scanned = await api.client.post("/v1/ops/fraud/scan", headers=api.ops("s1"))
    assert scanned.status_code == 200 and scanned.json() == {"flags": 0, "new": 0, "merchants": 0}
    printed = cli("fraud", "scan", str(ledger_file(api)))
    assert printed.exit_code == 0 and "0 flags on 0 merchants; 0 new" in printed.stderr


async def test_the_cli_refuses_a_missing_ledger_and_a_bad_date(tmp_path: Path) -> None:
    missing = cli("audit", "verify", str(tmp_path / "nope.db"))
    assert missing.exit_code == 2 and "no ledger file" in missing.stderr
    (tmp_path / "empty.db").write_bytes(b"")
    bad = cli("audit", "digest", str(tmp_path / "empty.db"), "2022-13-40")
    assert bad.exit_code == 2 and "is not a date" in bad.stderr
    older = cli("audit", "verify", str(tmp_path / "empty.db"))
    assert older.exit_code == 2 and "holds no audit trail" in older.stderr
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    assert not sa.inspect(engine).has_table("audit_log")  # verifying migrated nothing
