"""Lottery rounds on a real SQLite ledger and the embedded engine, from commitment to verify."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import spec_text
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.lottery import SqlLotteryStore
from xfq.cli import app
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen, Residency
from xfq.domain.lottery import seed_commitment
from xfq.ports import ClaimRequest
from xfq.services.grab import claim
from xfq.services.lottery import (
    LotteryRefused,
    NotEligible,
    commit_seed,
    freeze,
    register,
    run_draw,
)
from xfq.spec import parse_campaign

WEEK_CAP = "max_wins_per_week = 1\nmax_wins_per_campaign = 2"
LIMITS = "per_type = 1\nper_category = 1\nper_round = 2"
SPEC_TEXT = (
    spec_text.campaign("lottery", "Weekly draws")
    + spec_text.round_(
        "r1",
        1,
        opens_at="2022-03-05T10:00:00",
        claim_closes_at="2022-03-05T12:00:00",
        issuance="lottery",
        limits=LIMITS,
        extra=spec_text.lottery(
            "2022-03-01T09:00:00", "2022-03-04T20:00:00", "2022-03-05T10:00:00", WEEK_CAP
        ),
    )
    + spec_text.voucher_type("r1-retail-30-6", 30, 6, 5)
    + spec_text.voucher_type("r1-home-500-80", 500, 80, 2)
    + spec_text.round_(
        "r2",
        2,
        opens_at="2022-03-06T10:00:00",
        claim_closes_at="2022-03-06T12:00:00",
        issuance="lottery",
        limits=LIMITS,
        extra=spec_text.lottery(
            "2022-03-01T09:00:00", "2022-03-05T20:00:00", "2022-03-06T10:00:00", WEEK_CAP
        ),
    )
    + spec_text.voucher_type("r2-retail-30-6", 30, 6, 6)
)
CAMPAIGN = parse_campaign(SPEC_TEXT, "lottery.toml")
R1, R2 = CAMPAIGN.round("r1"), CAMPAIGN.round("r2")
assert R1.lottery is not None and R2.lottery is not None
PEOPLE = [f"p{i:02d}" for i in range(12)]


def citizen(person: str) -> Citizen:
    return Citizen(person, Residency.PERMANENT, True)


class Lottery:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.clock = SimulatedClock(R1.lottery.registration_opens_at)  # type: ignore[union-attr]
        self.ledger = SqlLedger(f"sqlite:///{directory / 'ledger.db'}")
        self.ledger.install_campaign(CAMPAIGN, SPEC_TEXT, self.clock.now())
        self.engine = EmbeddedClaimEngine(CAMPAIGN, self.ledger, RandomIds(), directory / "lock")
        self.store = SqlLotteryStore(self.ledger.engine)

    def draw(self, round_id: str) -> int:
        outcome = run_draw(
            self.store, self.ledger, self.engine, RandomIds(), CAMPAIGN, round_id, self.clock.now()
        )
        return outcome.issued_now

    def vouchers(self) -> list[tuple[str, str, str]]:
        with sqlite3.connect(self.directory / "ledger.db") as db:
            rows = db.execute("SELECT person_id, type_id, round_id FROM vouchers").fetchall()
        return [(str(p), str(t), str(r)) for p, t, r in rows]

    def close(self) -> None:
        self.engine.close()
        self.ledger.close()


@pytest.fixture
def lottery(tmp_path: Path) -> Iterator[Lottery]:
    opened = Lottery(tmp_path)
    yield opened
    opened.close()


def register_everyone(lottery: Lottery, rnd_id: str) -> None:
    for person in PEOPLE:
        for vtype in CAMPAIGN.round(rnd_id).types:
            assert register(
                lottery.store, CAMPAIGN, citizen(person), rnd_id, vtype.id, lottery.clock.now()
            )


def test_registration_checks_eligibility_and_window_and_is_idempotent(lottery: Lottery) -> None:
    now = lottery.clock.now()
    assert register(lottery.store, CAMPAIGN, citizen("p00"), "r1", "r1-retail-30-6", now)
    assert not register(lottery.store, CAMPAIGN, citizen("p00"), "r1", "r1-retail-30-6", now)
    visitor = Citizen("v1", None, True)
    with pytest.raises(NotEligible, match="no residency"):
        register(lottery.store, CAMPAIGN, visitor, "r1", "r1-retail-30-6", now)
    late = R1.lottery.registration_closes_at  # type: ignore[union-attr]
    with pytest.raises(LotteryRefused, match="open from"):
        register(lottery.store, CAMPAIGN, citizen("p01"), "r1", "r1-retail-30-6", late)
    assert [r.person_id for r in lottery.store.registrations("r1")] == ["p00"]


def test_steps_out_of_order_are_refused(lottery: Lottery) -> None:
    with pytest.raises(LotteryRefused, match="no seed commitment"):
        freeze(lottery.store, CAMPAIGN, "r1", R1.lottery.registration_closes_at)  # type: ignore[union-attr]
    commit_seed(lottery.store, CAMPAIGN, "r1", "op", lottery.clock.now())
    with pytest.raises(LotteryRefused, match="open until"):
        freeze(lottery.store, CAMPAIGN, "r1", lottery.clock.now())
    with pytest.raises(LotteryRefused, match="the draw of round r1 is at"):
        lottery.draw("r1")
    with pytest.raises(LotteryRefused, match="would not be a commitment"):
        commit_seed(lottery.store, CAMPAIGN, "r2", "op", R2.lottery.registration_closes_at)  # type: ignore[union-attr]


def test_a_draw_issues_its_winners_once_and_verifies(lottery: Lottery, tmp_path: Path) -> None:
    state = commit_seed(lottery.store, CAMPAIGN, "r1", "op", lottery.clock.now())
    assert state.seed_sha256 == seed_commitment(state.seed_hex)
    register_everyone(lottery, "r1")
    lottery.clock.set(R1.lottery.draw_at)  # type: ignore[union-attr]
    issued = lottery.draw("r1")
    held = lottery.vouchers()
    assert issued == len(held) == 7  # 5 + 2: demand (12 each) exceeds stock
    assert max(Counter(p for p, _t, _r in held).values()) == 1  # one win a week
    assert lottery.engine.remaining("r1-retail-30-6") == 0
    assert lottery.engine.remaining("r1-home-500-80") == 0
    assert lottery.draw("r1") == 0 and len(lottery.vouchers()) == 7  # a repeat adds nothing

    # A grab claim on a lottery type is refused; the winners' vouchers are in their wallets.
    answer = claim(
        lottery.engine, lottery.clock, ClaimRequest(citizen("p00"), "r1-retail-30-6", "k")
    )
    assert answer.code is ClaimCode.NOT_ELIGIBLE and "lottery" in answer.reason

    # The published files, written by `xfq lottery publish`, verify with `xfq lottery verify`.
    frozen = lottery.store.state("r1")
    assert frozen is not None
    out = tmp_path / "published"
    published = CliRunner().invoke(
        app, ["lottery", "publish", str(tmp_path / "ledger.db"), "r1", "--out", str(out)]
    )
    assert published.exit_code == 0, published.output
    assert f"seed SHA-256 {state.seed_sha256}" in published.output
    draw_file, list_file = out / "draw.json", out / "registrations.txt"
    args = ["lottery", "verify", "--draw", str(draw_file), "--registrations", str(list_file)]
    hashes = [
        "--commitment",
        state.seed_sha256,
        "--registrations-sha256",
        str(frozen.registrations_sha256),
    ]
    honest = CliRunner().invoke(app, [*args, *hashes])
    assert honest.exit_code == 0, honest.output
    assert "The winners match" in honest.output

    list_file.write_bytes(list_file.read_bytes().replace(b"p00\t", b"p99\t"))
    tampered = CliRunner().invoke(app, [*args, *hashes])
    assert tampered.exit_code == 1
    assert "FAIL registration list matches its published hash" in tampered.output


def test_the_weekly_cap_counts_wins_of_an_earlier_round(lottery: Lottery) -> None:
    for rnd in ("r1", "r2"):
        commit_seed(lottery.store, CAMPAIGN, rnd, "op", lottery.clock.now())
        register_everyone(lottery, rnd)
    lottery.clock.set(R1.lottery.draw_at)  # type: ignore[union-attr]
    lottery.draw("r1")
    first_winners = {p for p, _t, _r in lottery.vouchers()}
    lottery.clock.set(R2.lottery.draw_at)  # type: ignore[union-attr]
    assert lottery.draw("r2") == 5  # 12 people, 7 won on Saturday: only 5 may win on Sunday
    second = [p for p, _t, r in lottery.vouchers() if r == "r2"]
    assert not first_winners & set(second)
    assert lottery.engine.remaining("r2-retail-30-6") == 1


def test_a_restarted_engine_counts_the_drawn_vouchers(lottery: Lottery) -> None:
    commit_seed(lottery.store, CAMPAIGN, "r1", "op", lottery.clock.now())
    register_everyone(lottery, "r1")
    lottery.clock.set(R1.lottery.draw_at + timedelta(minutes=1))  # type: ignore[union-attr]
    lottery.draw("r1")
    lottery.engine.close()
    lottery.engine = EmbeddedClaimEngine(
        CAMPAIGN, lottery.ledger, RandomIds(), lottery.directory / "lock"
    )
    assert lottery.engine.stock()["r1-retail-30-6"] == 0
    assert lottery.draw("r1") == 0
