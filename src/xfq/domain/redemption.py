"""A voucher applied to an order (核销), and refunds against it. Immutable once written,
except that a posted redemption can be reversed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RedemptionState(StrEnum):
    POSTED = "posted"
    REVERSED = "reversed"


@dataclass(frozen=True)
class Redemption:
    id: str
    voucher_id: str
    merchant_id: str
    idempotency_key: str
    order_ref: str
    list_price_fen: int
    merchant_promotion_fen: int
    threshold_base_fen: int
    discount_fen: int
    customer_pays_fen: int
    redeemed_at: datetime
    state: RedemptionState
    reversed_at: datetime | None = None


@dataclass(frozen=True)
class Refund:
    id: str
    redemption_id: str
    merchant_id: str
    idempotency_key: str
    refund_fen: int
    outcome: str
    refunded_at: datetime
