"""The ledger's reads and writes over one driver connection, with precompiled statements."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

import sqlalchemy as sa

from xfq.adapters.sql.audit import CHAIN_LOCK_SQL
from xfq.adapters.sql.errors import translate
from xfq.adapters.sql.statements import (
    MAX_ROWS_PER_INSERT,
    Statements,
    bulk_insert,
    held_ids,
    positional,
)
from xfq.adapters.sql.times import from_us, to_us
from xfq.domain.audit import AuditEntry
from xfq.domain.checkout import Merchant
from xfq.domain.redemption import Redemption, RedemptionState, Refund
from xfq.domain.voucher import Voucher, VoucherEvent, VoucherState, next_state
from xfq.ports import TillContext

Row = tuple[Any, ...]
_LOCK_ORDER = "SELECT pg_advisory_xact_lock(%(key)s)"
# A redemption's three writes in one statement (PostgreSQL): one round trip, not three. Nothing
# is written unless the voucher was still issued; the row count says whether it was.
_REDEEM = """WITH moved AS (
  UPDATE vouchers SET state = %(to_state)s WHERE id = %(voucher_id)s AND state = %(from_state)s
  RETURNING id AS voucher_id
), event AS (
  INSERT INTO voucher_events (voucher_id, event, at_us, ref)
  SELECT voucher_id, %(event)s, %(redeemed_at_us)s, %(id)s FROM moved
)
INSERT INTO redemptions (id, voucher_id, merchant_id, idempotency_key, order_ref,
  list_price_fen, merchant_promotion_fen, threshold_base_fen, discount_fen, customer_pays_fen,
  redeemed_at_us, state, reversed_at_us)
SELECT %(id)s, voucher_id, %(merchant_id)s, %(idempotency_key)s, %(order_ref)s,
  %(list_price_fen)s, %(merchant_promotion_fen)s, %(threshold_base_fen)s, %(discount_fen)s,
  %(customer_pays_fen)s, %(redeemed_at_us)s, %(state)s, CAST(%(reversed_at_us)s AS BIGINT)
FROM moved"""


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


# Claims of one instant share their datetime objects (the clock's `now`, the engine's validity
# window), so their conversions are kept by identity; the entry holds the object, so its id
# cannot be reused while cached.
_RECENT_US: dict[int, tuple[datetime, int]] = {}


def _shared_us(moment: datetime) -> int:
    hit = _RECENT_US.get(id(moment))
    if hit is not None and hit[0] is moment:
        return hit[1]
    us = to_us(moment)
    if len(_RECENT_US) >= 64:
        _RECENT_US.clear()
    _RECENT_US[id(moment)] = (moment, us)
    return us


def voucher_row(voucher: Voucher, claim_key: str) -> dict[str, Any]:
    issued_us = _shared_us(voucher.issued_at)
    from_us_ = (
        issued_us if voucher.valid_from is voucher.issued_at else _shared_us(voucher.valid_from)
    )
    return {
        "id": voucher.id,
        "type_id": voucher.type_id,
        "round_id": voucher.round_id,
        "category": voucher.category,
        "person_id": voucher.person_id,
        "claim_key": claim_key,
        "state": voucher.state.value,
        "issued_at_us": issued_us,
        "valid_from_us": from_us_,
        "valid_until_us": _shared_us(voucher.valid_until),
    }


def issue_event_row(voucher: Voucher, claim_key: str, at_us: int | None = None) -> dict[str, Any]:
    return {
        "voucher_id": voucher.id,
        "event": "issue",
        "at_us": to_us(voucher.issued_at) if at_us is None else at_us,
        "ref": claim_key,
    }


def _redemption_params(r: Redemption) -> dict[str, Any]:
    return {
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
    }


def _reraise(error: Exception) -> NoReturn:
    """A database error as the domain's (conflict, unavailable); anything else as it is."""
    mapped = translate(error)
    if mapped is None:
        raise error
    raise mapped from error


class SqlTx:
    """Implements `xfq.ports.LedgerTx`; the caller owns the transaction around it."""

    def __init__(
        self,
        connection: Any,
        statements: Statements,
        dialect: sa.Dialect,
        cache: bool = False,
    ) -> None:
        self._connection = connection
        self._cursor = connection.cursor()
        self._s = statements
        self._dialect = dialect
        # A merchant's row is kept for the write transaction (one batch). SQLite has one
        # writer; on PostgreSQL a status changed by another process during the batch may go
        # unseen by the batch's later redemptions, which then count as made before it.
        self._merchants: dict[str, Merchant | None] | None = {} if cache else None
        self._postgres = dialect.name == "postgresql"
        # `lock_order`'s key on PostgreSQL, not sent yet: it goes ahead of the next statement,
        # pipelined with the till's read when that is the next one (see `till_context`).
        self._lock_key: int | None = None
        self._till_cursor = connection.cursor() if self._postgres else None
        self._merchant_cursor = connection.cursor() if self._postgres else None

    def _one(self, sql: str, params: dict[str, Any]) -> Row | None:
        self._send_lock()
        try:
            self._cursor.execute(sql, params)
            row: Row | None = self._cursor.fetchone()
        except Exception as error:
            _reraise(error)
        return row

    def _all(self, sql: str, params: dict[str, Any]) -> list[Row]:
        self._send_lock()
        try:
            self._cursor.execute(sql, params)
            rows: list[Row] = self._cursor.fetchall()
        except Exception as error:
            _reraise(error)
        return rows

    def _run(self, sql: str, params: dict[str, Any]) -> int:
        self._send_lock()
        try:
            self._cursor.execute(sql, params)
        except Exception as error:
            _reraise(error)
        count: int = self._cursor.rowcount
        return count

    def _send_lock(self) -> None:
        if self._lock_key is not None:
            key, self._lock_key = self._lock_key, None
            self._run(_LOCK_ORDER, {"key": key})

    def voucher(self, voucher_id: str) -> Voucher | None:
        row = self._one(self._s.voucher, {"id": voucher_id})
        return None if row is None else _voucher(row)

    def vouchers_of(self, person_id: str) -> list[Voucher]:
        return [_voucher(row) for row in self._all(self._s.vouchers_of, {"person_id": person_id})]

    def merchant(self, merchant_id: str) -> Merchant | None:
        if self._merchants is not None and merchant_id in self._merchants:
            return self._merchants[merchant_id]
        return self._keep_merchant(merchant_id, self._one(self._s.merchant, {"id": merchant_id}))

    def _keep_merchant(self, merchant_id: str, row: Row | None) -> Merchant | None:
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

    def lock_order(self, merchant_id: str, order_ref: str) -> None:
        """PostgreSQL: an advisory lock on the order, in a statement of its own so that the
        till's read after it sees a redemption committed meanwhile (a statement's snapshot is
        taken when it starts, before it would wait for the lock). It is sent with the next
        statement. SQLite: its writer holds the whole database already."""
        if self._postgres:
            self._send_lock()
            digest = hashlib.sha256(f"order\0{merchant_id}\0{order_ref}".encode()).digest()
            self._lock_key = int.from_bytes(digest[:8], "big", signed=True)

    def redemption_to_change(self, redemption_id: str) -> Redemption | None:
        row = self._one(self._s.redemption_to_change, {"id": redemption_id})
        return None if row is None else _redemption(row)

    def redemption_by_key(self, merchant_id: str, key: str) -> Redemption | None:
        row = self._one(self._s.redemption_by_key, {"merchant_id": merchant_id, "key": key})
        return None if row is None else _redemption(row)

    def till_context(
        self, merchant_id: str, key: str, voucher_id: str, order_ref: str
    ) -> TillContext:
        params = {"merchant_id": merchant_id, "key": key, "id": voucher_id, "order_ref": order_ref}
        if self._postgres:
            row = self._pipelined_till_context(params)
        else:
            row = self._one(self._s.till_context, params)
        if row is None:  # no such voucher: the key may still name an earlier redemption
            prior = self.redemption_by_key(merchant_id, key)
            return TillContext(None, None if prior is None else prior.id, False)
        return TillContext(_voucher(row[:10]), row[10], bool(row[11]))

    def _pipelined_till_context(self, params: dict[str, Any]) -> Row | None:
        """The till's read in one round trip with what goes before it: the order's pending
        lock, and the merchant's row if the batch has not read it yet. The server still runs
        them one after the other, each statement with a snapshot of its own."""
        merchant_id = params["merchant_id"]
        lock_key, self._lock_key = self._lock_key, None
        read_merchant = self._merchants is not None and merchant_id not in self._merchants
        merchant_cursor = self._merchant_cursor if read_merchant else None
        till_cursor = self._till_cursor
        assert till_cursor is not None
        try:
            with self._connection.driver_connection.pipeline():
                if lock_key is not None:
                    self._cursor.execute(_LOCK_ORDER, {"key": lock_key})
                if merchant_cursor is not None:
                    merchant_cursor.execute(self._s.merchant, {"id": merchant_id})
                till_cursor.execute(self._s.till_context, params)
            if merchant_cursor is not None:
                self._keep_merchant(merchant_id, merchant_cursor.fetchone())
            row: Row | None = till_cursor.fetchone()
        except Exception as error:
            _reraise(error)
        return row

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

    def insert_new_vouchers(self, claims: Sequence[tuple[Voucher, str]]) -> int:
        """The claims' vouchers and issue events the ledger does not hold yet; how many.

        A batch costs one id query per 500 claims and two bulk inserts (`bulk_insert`: COPY on
        PostgreSQL), not three statements a claim, each a round trip on PostgreSQL."""
        held: set[str] = set()
        ids = [voucher.id for voucher, _key in claims]
        style = positional(self._dialect)
        try:
            for start in range(0, len(ids), MAX_ROWS_PER_INSERT):
                chunk = ids[start : start + MAX_ROWS_PER_INSERT]
                self._cursor.execute(held_ids(style, len(chunk)), chunk)
                held.update(row[0] for row in self._cursor.fetchall())
            fresh = {v.id: (v, key) for v, key in claims if v.id not in held}
            if fresh:
                rows = [voucher_row(v, key) for v, key in fresh.values()]
                events = [
                    issue_event_row(v, key, row["issued_at_us"])
                    for (v, key), row in zip(fresh.values(), rows, strict=True)
                ]
                bulk_insert(self._dialect, self._connection, "vouchers", rows)
                bulk_insert(self._dialect, self._connection, "voucher_events", events)
        except Exception as error:
            _reraise(error)
        return len(fresh)

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
        self._run(self._s.insert_redemption, _redemption_params(redemption))

    def redeem_voucher(self, redemption: Redemption) -> bool:
        if not self._postgres:  # in process: separate statements cost no round trip
            moved = self.move_voucher(
                redemption.voucher_id,
                VoucherState.ISSUED,
                VoucherEvent.REDEEM,
                redemption.redeemed_at,
                redemption.id,
            )
            if moved:
                self.insert_redemption(redemption)
            return moved
        params = _redemption_params(redemption) | {
            "from_state": VoucherState.ISSUED.value,
            "to_state": next_state(VoucherState.ISSUED, VoucherEvent.REDEEM).value,
            "event": VoucherEvent.REDEEM.value,
        }
        return self._run(_REDEEM, params) == 1

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

    # Operators' writes: each runs in a writer unit together with its audit entry.

    def insert_merchant(
        self, merchant_id: str, name: str, category: str, status: str, at: datetime
    ) -> None:
        params = {
            "id": merchant_id,
            "name": name,
            "category": category,
            "status": status,
            "enrolled_at_us": to_us(at),
        }
        self._run(self._s.insert_merchant, params)
        if self._merchants is not None:
            self._merchants.pop(merchant_id, None)

    def set_merchant_status(self, merchant_id: str, status: str) -> bool:
        if self._merchants is not None:
            self._merchants.pop(merchant_id, None)
        return self._run(self._s.set_merchant_status, {"id": merchant_id, "status": status}) == 1

    def merchant_status(self, merchant_id: str) -> str | None:
        """The merchant's status, its row locked until the transaction ends (PostgreSQL)."""
        row = self._one(self._s.merchant_to_change, {"id": merchant_id})
        return None if row is None else str(row[0])

    def merchant_key(self, key_id: str) -> tuple[str, datetime | None] | None:
        row = self._one(self._s.merchant_key, {"key_id": key_id})
        if row is None:
            return None
        return str(row[0]), None if row[1] is None else from_us(row[1])

    def insert_merchant_key(self, key_id: str, merchant_id: str, secret: str, at: datetime) -> None:
        params = {"key_id": key_id, "merchant_id": merchant_id, "secret": secret}
        self._run(self._s.insert_merchant_key, params | {"created_at_us": to_us(at)})

    def revoke_merchant_key(self, key_id: str, at: datetime) -> bool:
        return self._run(self._s.revoke_merchant_key, {"key_id": key_id, "at_us": to_us(at)}) == 1

    def insert_round_window(
        self,
        round_id: str,
        opens_at: datetime,
        closes_at: datetime,
        action: str,
        operator: str,
        at: datetime,
    ) -> None:
        params = {
            "round_id": round_id,
            "opens_at_us": to_us(opens_at),
            "claim_closes_at_us": to_us(closes_at),
            "action": action,
            "operator": operator,
            "at_us": to_us(at),
        }
        self._run(self._s.insert_round_window, params)

    def last_audit_entry(self) -> AuditEntry | None:
        """The chain's last entry, locked for this transaction's append (see audit.py)."""
        if self._dialect.name == "postgresql":
            self._run(CHAIN_LOCK_SQL, {})
        row = self._one(self._s.last_audit, {})
        return None if row is None else AuditEntry(*row)

    def insert_audit_entry(self, entry: AuditEntry) -> None:
        e = entry
        params = {
            "seq": e.seq,
            "at_us": e.at_us,
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "details": e.details_json,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        self._run(self._s.insert_audit, params)

    def fraud_flag_status(self, flag_id: str) -> tuple[str, str] | None:
        """(status, merchant id) of a stored flag."""
        row = self._one(self._s.fraud_flag, {"id": flag_id})
        return None if row is None else (str(row[8]), str(row[2]))

    def review_fraud_flag(
        self, flag_id: str, status: str, reviewer: str, at: datetime, reason: str
    ) -> bool:
        """Close an open flag; False if it is not open (any more)."""
        params = {
            "id": flag_id,
            "status": status,
            "reviewed_by": reviewer,
            "reviewed_at_us": to_us(at),
            "review_reason": reason,
        }
        return self._run(self._s.review_fraud_flag, params) == 1
