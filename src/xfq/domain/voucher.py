"""One voucher in one wallet and its lifecycle: issued → redeemed (→ issued) or expired."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from xfq.domain.errors import IllegalTransition


class VoucherState(StrEnum):
    ISSUED = "issued"
    REDEEMED = "redeemed"
    EXPIRED = "expired"


class VoucherEvent(StrEnum):
    REDEEM = "redeem"
    RESTORE = "restore"  # a reversal inside validity gives the voucher back
    LAPSE = "lapse"  # a reversal after validity: the voucher does not come back
    EXPIRE = "expire"


_NEXT: dict[tuple[VoucherState, VoucherEvent], VoucherState] = {
    (VoucherState.ISSUED, VoucherEvent.REDEEM): VoucherState.REDEEMED,
    (VoucherState.REDEEMED, VoucherEvent.RESTORE): VoucherState.ISSUED,
    (VoucherState.REDEEMED, VoucherEvent.LAPSE): VoucherState.EXPIRED,
    (VoucherState.ISSUED, VoucherEvent.EXPIRE): VoucherState.EXPIRED,
}


def next_state(state: VoucherState, event: VoucherEvent) -> VoucherState:
    try:
        return _NEXT[(state, event)]
    except KeyError:
        raise IllegalTransition(f"a voucher that is {state} cannot {event}") from None


@dataclass(frozen=True)
class Voucher:
    id: str
    type_id: str
    round_id: str
    category: str
    person_id: str
    state: VoucherState
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime  # exclusive: the first instant it can no longer be used

    def usable_at(self, now: datetime) -> bool:
        return self.valid_from <= now < self.valid_until

    def apply(self, event: VoucherEvent) -> Voucher:
        return replace(self, state=next_state(self.state, event))


def new_voucher(
    voucher_id: str,
    type_id: str,
    round_id: str,
    category: str,
    person_id: str,
    now: datetime,
    window: tuple[datetime, datetime],
) -> Voucher:
    """A voucher issued `now` to `person_id`, usable inside `window` (from, until)."""
    return Voucher(
        id=voucher_id,
        type_id=type_id,
        round_id=round_id,
        category=category,
        person_id=person_id,
        state=VoucherState.ISSUED,
        issued_at=now,
        valid_from=window[0],
        valid_until=window[1],
    )
