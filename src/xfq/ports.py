"""The ports the application services need; adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

from xfq.domain.audit import AuditEntry
from xfq.domain.checkout import Merchant
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen
from xfq.domain.fraud import Flag, FraudInput
from xfq.domain.lottery import Registration
from xfq.domain.redemption import Redemption, Refund
from xfq.domain.rollover import RolloverMove
from xfq.domain.settlement import DaySettlement, Settled, SettledRedemption, StatementLine
from xfq.domain.voucher import Voucher, VoucherEvent, VoucherState

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class IdSource(Protocol):
    def new_id(self, prefix: str) -> str:
        """A fresh identifier, unguessable where it names something a person holds."""
        ...


class ClaimRequest(NamedTuple):  # a tuple: made per request
    citizen: Citizen
    type_id: str
    idempotency_key: str


class ClaimAnswer(NamedTuple):  # a tuple: made per claim, ~4× cheaper than a dataclass
    code: ClaimCode
    reason: str = ""
    voucher: Voucher | None = None
    remaining: int | None = None


Reply = Callable[[ClaimAnswer | BaseException], None]


class ClaimEngine(Protocol):
    """Decides claims against stock and per-person limits; `issued` answers are durable."""

    def submit(self, request: ClaimRequest, now: datetime, reply: Reply) -> None:
        """Decide `request` at `now` and call `reply` once the answer is durable.

        Answers that change nothing are replied at once, on the caller's thread; `issued` is
        replied from the ledger's writer after its commit. A callback rather than a future keeps
        the hot path free of per-claim locks and lets an event loop hand the answer over itself.
        """
        ...

    def remaining(self, type_id: str) -> int: ...

    def answers_from_memory(self, type_id: str, now: datetime) -> bool:
        """True when this process answers a claim of `type_id` at `now` from memory, without a
        store round trip: none is left, or its round has not opened (the claim front neither
        sheds nor rate-limits those)."""
        ...

    def answer_from_memory(self, request: ClaimRequest, now: datetime) -> ClaimAnswer | None:
        """The answer `submit` would give `request` at `now`, when this process knows it without
        its store (as `answers_from_memory`); None when `submit` must decide it."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class FairClaimEngine(ClaimEngine, Protocol):
    """A claim engine that also enforces fair issuance (domain/fair.py lists the rules)."""

    def submit_assisted(self, request: ClaimRequest, now: datetime, reply: Reply) -> None:
        """A claim by desk staff for `request.citizen`, from the type's assisted reserve."""
        ...

    def join_household(self, head_id: str, members: list[str]) -> None: ...

    def household_held(self, head_id: str, round_id: str) -> int: ...

    def note_issued(self, vouchers: list[tuple[Voucher, str]]) -> None:
        """Count vouchers a lottery draw wrote to the ledger, with their claim keys."""
        ...

    def pool_stock(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class TillContext:
    """What a till's redemption needs to know before deciding, read in one go."""

    voucher: Voucher | None
    prior_redemption_id: str | None  # this merchant's redemption with the same idempotency key
    order_taken: bool  # this merchant's order already has a posted redemption


class LedgerReader(Protocol):
    """What the services read from the ledger."""

    def voucher(self, voucher_id: str) -> Voucher | None: ...

    def vouchers_of(self, person_id: str) -> list[Voucher]: ...

    def merchant(self, merchant_id: str) -> Merchant | None: ...

    def redemption(self, redemption_id: str) -> Redemption | None: ...

    def redemption_by_key(self, merchant_id: str, key: str) -> Redemption | None: ...

    def till_context(
        self, merchant_id: str, key: str, voucher_id: str, order_ref: str
    ) -> TillContext: ...

    def refund_by_key(self, merchant_id: str, key: str) -> Refund | None: ...

    def refunded_fen(self, redemption_id: str) -> int: ...


class LedgerTx(LedgerReader, Protocol):
    """Reads and writes inside one ledger transaction."""

    def lock_order(self, merchant_id: str, order_ref: str) -> None:
        """Hold a merchant's order until this transaction ends: another process's writer
        redeeming for the same order waits, then sees this one's redemption."""
        ...

    def redemption_to_change(self, redemption_id: str) -> Redemption | None:
        """The redemption, locked until this transaction ends (other processes' writers
        changing it wait)."""
        ...

    def insert_voucher(self, voucher: Voucher, claim_key: str) -> None: ...

    def insert_new_vouchers(self, claims: Sequence[tuple[Voucher, str]]) -> int:
        """Those of the (voucher, claim key) pairs not held yet, with their issue events;
        how many were new."""
        ...

    def move_voucher(
        self,
        voucher_id: str,
        from_state: VoucherState,
        event: VoucherEvent,
        at: datetime,
        ref: str | None,
    ) -> bool:
        """Apply `event` if the voucher is still in `from_state`; False if it no longer is."""
        ...

    def insert_redemption(self, redemption: Redemption) -> None: ...

    def redeem_voucher(self, redemption: Redemption) -> bool:
        """Move the redemption's voucher from issued to redeemed (its event at the redemption's
        time, its id as the event's ref) and insert the redemption; False, writing nothing, if
        the voucher is no longer issued."""
        ...

    def reverse_redemption(self, redemption_id: str, at: datetime) -> bool: ...

    def insert_refund(self, refund: Refund) -> None: ...

    def expire_due(self, at: datetime) -> int:
        """Expire every issued voucher whose validity ended by `at`; the number expired."""
        ...

    # Operators' writes and the audit trail (see services/audit.py and services/operations.py).

    def insert_merchant(
        self, merchant_id: str, name: str, category: str, status: str, at: datetime
    ) -> None: ...

    def set_merchant_status(self, merchant_id: str, status: str) -> bool: ...

    def merchant_status(self, merchant_id: str) -> str | None:
        """A merchant's status, locked against other writers until the unit commits."""
        ...

    def merchant_key(self, key_id: str) -> tuple[str, datetime | None] | None:
        """(merchant id, revoked at or None) of an API key; None when there is no such key."""
        ...

    def insert_merchant_key(self, key_id: str, merchant_id: str, secret: str, at: datetime) -> None:
        """A new live API key of the merchant."""
        ...

    def revoke_merchant_key(self, key_id: str, at: datetime) -> bool:
        """Mark a live key revoked at `at`; False when it was revoked already."""
        ...

    def insert_round_window(
        self,
        round_id: str,
        opens_at: datetime,
        closes_at: datetime,
        action: str,
        operator: str,
        at: datetime,
    ) -> None: ...

    def last_audit_entry(self) -> AuditEntry | None: ...

    def insert_audit_entry(self, entry: AuditEntry) -> None: ...

    def fraud_flag_status(self, flag_id: str) -> tuple[str, str] | None:
        """(status, merchant id) of a stored fraud flag."""
        ...

    def review_fraud_flag(
        self, flag_id: str, status: str, reviewer: str, at: datetime, reason: str
    ) -> bool:
        """Close an open flag; False if it is not open (any more)."""
        ...


class Ledger(Protocol):
    def write(self, unit: Callable[[LedgerTx], T]) -> Future[T]:
        """Run `unit` in a write transaction; the future resolves once it is durable."""
        ...

    def send(self, unit: Callable[[LedgerTx], T], done: Callable[[bool, Any], None]) -> None:
        """Like `write`, answering `done(ok, result or error)` on the writer's thread instead:
        no future (and its lock) per write when many are in flight."""
        ...

    def reader(self) -> LedgerReader: ...


class SettlementStore(Protocol):
    """What settlement reads from the ledger and what closing a day writes."""

    def redemptions(self) -> list[SettledRedemption]: ...

    def settled(self) -> Settled: ...

    def closed_day(self, day: date) -> DaySettlement | None: ...

    def closed_lines(self) -> list[StatementLine]: ...

    def held_merchants(self) -> frozenset[str]:
        """Merchants whose settlement is held now (suspended)."""
        ...

    def record_closing(self, settlement: DaySettlement, closed_by: str) -> bool:
        """Freeze a day's statement; False if the day was closed already (nothing written)."""
        ...


class RolloverStore(Protocol):
    def moves(self, from_round: str | None = None) -> list[RolloverMove]: ...

    def issued_and_expired(self, round_id: str) -> dict[str, tuple[int, int]]: ...

    def record(self, moves: list[RolloverMove], at: datetime) -> bool:
        """Record a round's moves at once; False if that round had rolled over already."""


class FraudStore(Protocol):
    """What the fraud scan reads (redemptions, merchants, homes) and where its flags go."""

    def fraud_input(self) -> FraudInput: ...

    def store_flags(self, flags: list[Flag], at: datetime) -> int:
        """Insert new flags, refresh open ones; the number of new flags."""
        ...


@dataclass(frozen=True)
class LotteryState:
    """What is recorded of a lottery round: its commitment, freezing and draw."""

    round_id: str
    seed_hex: str  # secret until the draw
    seed_sha256: str
    committed_at: datetime
    frozen_at: datetime | None
    registrations_sha256: str | None
    drawn_at: datetime | None
    draw_json: str | None
    registrations: int


class LotteryStore(Protocol):
    def state(self, round_id: str) -> LotteryState | None: ...

    def commit_seed(
        self, round_id: str, seed_hex: str, seed_sha256: str, by: str, at: datetime
    ) -> bool:
        """Record the round's seed; False if it had one already (nothing written)."""
        ...

    def register(self, round_id: str, person_id: str, type_id: str, at: datetime) -> bool:
        """False if this person had registered for this type already."""
        ...

    def registrations(self, round_id: str, person_id: str | None = None) -> list[Registration]: ...

    def freeze(self, round_id: str, registrations_sha256: str, at: datetime) -> bool: ...

    def record_draw(self, round_id: str, draw_json: str, at: datetime) -> bool: ...

    def draws(self) -> dict[str, str]: ...

    def claim_keys(self, round_id: str) -> set[tuple[str, str]]: ...


class HouseholdStore(Protocol):
    def households(self) -> dict[str, str]: ...

    def members(self, head_id: str) -> list[str]: ...

    def add_members(self, head_id: str, people: list[str], at: datetime) -> list[str]: ...
