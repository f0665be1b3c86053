"""The ledger's reads and writes over one driver connection, with precompiled statements."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

from xfq.adapters.sql.errors import translate
from xfq.adapters.sql.statements import Statements
from xfq.adapters.sql.times import from_us, to_us
from xfq.domain.checkout import Merchant
from xfq.domain.redemption import Redemption, RedemptionState, Refund
from xfq.domain.voucher import Voucher, VoucherEvent, VoucherState, next_state

Row = tuple[Any, ...]


def _voucher(row: Row) -> Voucher:
    vid, type_id, round_id, category, person_id, _key, state, issued, v_from, v_until = row
    return Voucher(
        id=vid,
        type_id=type_id,
        round_id=round_id,
        category=category,
        person_id=person_id,
        state=VoucherState(state),
        issued_at=from_us(issued),
        valid_from=from_us(v_from),
        valid_until=from_us(v_until),
    )


# A Voucher from a row of `vouchers`, its columns in their declared order.
voucher_of_row = _voucher


def _redemption(row: Row) -> Redemption:
    return Redemption(
        id=row[0],
        voucher_id=row[1],
        merchant_id=row[2],
        idempotency_key=row[3],
        order_ref=row[4],
        list_price_fen=row[5],
        merchant_promotion_fen=row[6],
        threshold_base_fen=row[7],
        discount_fen=row[8],
        customer_pays_fen=row[9],
        redeemed_at=from_us(row[10]),
        state=RedemptionState(row[11]),
        reversed_at=None if row[12] is None else from_us(row[12]),
    )


def _refund(row: Row) -> Refund:
    rid, redemption_id, merchant_id, key, refund_fen, outcome, refunded_us = row
    return Refund(rid, redemption_id, merchant_id, key, refund_fen, outcome, from_us(refunded_us))


def voucher_row(voucher: Voucher, claim_key: str) -> dict[str, Any]:
    return {
        "id": voucher.id,
        "type_id": voucher.type_id,
        "round_id": voucher.round_id,
        "category": voucher.category,
        "person_id": voucher.person_id,
        "claim_key": claim_key,
        "state": voucher.state.value,
        "issued_at_us": to_us(voucher.issued_at),
        "valid_from_us": to_us(voucher.valid_from),
        "valid_until_us": to_us(voucher.valid_until),
    }


def issue_event_row(voucher: Voucher, claim_key: str) -> dict[str, Any]:
    return {
        "voucher_id": voucher.id,
        "event": "issue",
        "at_us": to_us(voucher.issued_at),
        "ref": claim_key,
    }


def _reraise(error: Exception) -> NoReturn:
    """A database error as the domain's (conflict, unavailable); anything else as it is."""
    mapped = translate(error)
    if mapped is None:
        raise error
    raise mapped from error


class SqlTx:
    """Implements `xfq.ports.LedgerTx`; the caller owns the transaction around it."""

    def __init__(self, connection: Any, statements: Statements, cache: bool = False) -> None:
        self._cursor = connection.cursor()
        self._s = statements
        # Inside one write transaction no one else can change a merchant (SQLite has one
        # writer; PostgreSQL's transaction sees its snapshot), so its row can be kept.
        self._merchants: dict[str, Merchant | None] | None = {} if cache else None

    def _one(self, sql: str, params: dict[str, Any]) -> Row | None:
        try:
            self._cursor.execute(sql, params)
            row: Row | None = self._cursor.fetchone()
        except Exception as error:
            _reraise(error)
        return row

    def _all(self, sql: str, params: dict[str, Any]) -> list[Row]:
        try:
            self._cursor.execute(sql, params)
            rows: list[Row] = self._cursor.fetchall()
        except Exception as error:
            _reraise(error)
        return rows

    def _run(self, sql: str, params: dict[str, Any]) -> int:
        try:
            self._cursor.execute(sql, params)
        except Exception as error:
            _reraise(error)
        count: int = self._cursor.rowcount
        return count

    def voucher(self, voucher_id: str) -> Voucher | None:
        row = self._one(self._s.voucher, {"id": voucher_id})
        return None if row is None else _voucher(row)

    def vouchers_of(self, person_id: str) -> list[Voucher]:
        return [_voucher(row) for row in self._all(self._s.vouchers_of, {"person_id": person_id})]

    def merchant(self, merchant_id: str) -> Merchant | None:
        if self._merchants is not None and merchant_id in self._merchants:
            return self._merchants[merchant_id]
        row = self._one(self._s.merchant, {"id": merchant_id})
        found = (
            None
            if row is None
            else Merchant(row[0], category=row[2], enrolled=row[3] == "enrolled")
        )
        if self._merchants is not None:
            self._merchants[merchant_id] = found
        return found

    def redemption(self, redemption_id: str) -> Redemption | None:
        row = self._one(self._s.redemption, {"id": redemption_id})
        return None if row is None else _redemption(row)

    def redemption_by_key(self, merchant_id: str, key: str) -> Redemption | None:
        row = self._one(self._s.redemption_by_key, {"merchant_id": merchant_id, "key": key})
        return None if row is None else _redemption(row)

    def order_has_posted_redemption(self, merchant_id: str, order_ref: str) -> bool:
        params = {"merchant_id": merchant_id, "order_ref": order_ref}
        return self._one(self._s.posted_redemption_for_order, params) is not None

    def refund_by_key(self, merchant_id: str, key: str) -> Refund | None:
        row = self._one(self._s.refund_by_key, {"merchant_id": merchant_id, "key": key})
        return None if row is None else _refund(row)

    def refunded_fen(self, redemption_id: str) -> int:
        row = self._one(self._s.refunded_fen, {"redemption_id": redemption_id})
        assert row is not None
        return int(row[0])

    def insert_voucher(self, voucher: Voucher, claim_key: str) -> None:
        self._run(self._s.insert_voucher, voucher_row(voucher, claim_key))
        self._run(self._s.insert_event, issue_event_row(voucher, claim_key))

    def move_voucher(
        self,
        voucher_id: str,
        from_state: VoucherState,
        event: VoucherEvent,
        at: datetime,
        ref: str | None,
    ) -> bool:
        to_state = next_state(from_state, event)
        params = {"id": voucher_id, "from_state": from_state.value, "to_state": to_state.value}
        if self._run(self._s.set_voucher_state, params) != 1:
            return False
        self._event(voucher_id, event.value, at, ref)
        return True

    def _event(self, voucher_id: str, event: str, at: datetime, ref: str | None) -> None:
        params = {"voucher_id": voucher_id, "event": event, "at_us": to_us(at), "ref": ref}
        self._run(self._s.insert_event, params)

    def insert_redemption(self, redemption: Redemption) -> None:
        r = redemption
        self._run(
            self._s.insert_redemption,
            {
                "id": r.id,
                "voucher_id": r.voucher_id,
                "merchant_id": r.merchant_id,
                "idempotency_key": r.idempotency_key,
                "order_ref": r.order_ref,
                "list_price_fen": r.list_price_fen,
                "merchant_promotion_fen": r.merchant_promotion_fen,
                "threshold_base_fen": r.threshold_base_fen,
                "discount_fen": r.discount_fen,
                "customer_pays_fen": r.customer_pays_fen,
                "redeemed_at_us": to_us(r.redeemed_at),
                "state": r.state.value,
                "reversed_at_us": None if r.reversed_at is None else to_us(r.reversed_at),
            },
        )

    def reverse_redemption(self, redemption_id: str, at: datetime) -> bool:
        params = {"id": redemption_id, "at_us": to_us(at)}
        return self._run(self._s.set_redemption_reversed, params) == 1

    def insert_refund(self, refund: Refund) -> None:
        f = refund
        self._run(
            self._s.insert_refund,
            {
                "id": f.id,
                "redemption_id": f.redemption_id,
                "merchant_id": f.merchant_id,
                "idempotency_key": f.idempotency_key,
                "refund_fen": f.refund_fen,
                "outcome": f.outcome,
                "refunded_at_us": to_us(f.refunded_at),
            },
        )

    def expire_due(self, at: datetime) -> int:
        params = {"at_us": to_us(at)}
        self._run(self._s.expire_events, params)
        return self._run(self._s.expire_vouchers, params)
