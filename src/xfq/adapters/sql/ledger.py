"""The ledger on SQLAlchemy: group-committed writes, thread-local readers, operator set-up."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from xfq.adapters.sql import tables
from xfq.adapters.sql.errors import storage_errors
from xfq.adapters.sql.group_commit import Done, GroupCommitWriter, Rows, TxControl
from xfq.adapters.sql.link import LinkBounds
from xfq.adapters.sql.schema import create_engine, migrate
from xfq.adapters.sql.statements import bulk_insert, compile_statements
from xfq.adapters.sql.times import from_us, to_us
from xfq.adapters.sql.tx import SqlTx, issue_event_row, voucher_of_row, voucher_row
from xfq.domain.campaign import Campaign
from xfq.domain.voucher import Voucher
from xfq.ports import LedgerReader, LedgerTx

T = TypeVar("T")
CAMPAIGN_LOCK = 0x7866_7104  # PostgreSQL advisory lock key held while installing a campaign
# What every API worker reads once a second (bootstrap.KEY_REFRESH_S); ix_merchant_keys_revoked.
REVOKED_KEYS = sa.select(tables.merchant_keys.c.key_id).where(
    tables.merchant_keys.c.revoked_at_us.is_not(None)
)


@dataclass(frozen=True)
class MerchantRow:
    id: str
    name: str
    category: str
    status: str


@dataclass(frozen=True)
class MerchantKeyRow:
    key_id: str
    created_at: datetime
    revoked_at: datetime | None


class SqlLedger:
    """Implements `xfq.ports.Ledger` on SQLite or PostgreSQL (`bounds`: on its link)."""

    def __init__(self, url: str, max_batch: int = 4096, bounds: LinkBounds | None = None) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, bounds)
        migrate(self.engine)
        self._statements = compile_statements(self.engine.dialect)
        self._writer = GroupCommitWriter(
            connect=self.engine.raw_connection,
            make_tx=lambda connection: SqlTx(
                connection, self._statements, self.engine.dialect, cache=True
            ),
            bulk_insert=functools.partial(bulk_insert, self.engine.dialect),
            control=TxControl(self.engine.dialect.name),
            max_batch=max_batch,
        )
        self._local = threading.local()
        self._readers: list[Any] = []
        self._readers_lock = threading.Lock()
        self._lock_holder: sa.Connection | None = None

    def hold_lock(self, key: int) -> bool:
        """Take a PostgreSQL advisory lock for as long as this ledger is open; False if another
        session holds it. (SQLite ledgers are locked by a file beside them instead.)"""
        if self.engine.dialect.name != "postgresql":
            return True
        holder = self.engine.connect()
        taken = holder.exec_driver_sql(f"SELECT pg_try_advisory_lock({int(key)})").scalar_one()
        holder.commit()  # a session lock outlives the transaction; no transaction stays open
        if not taken:
            holder.close()
            return False
        self._lock_holder = holder
        return True

    @contextlib.contextmanager
    def answering(self, scope: str, key: str) -> Iterator[bool]:
        """Hold an idempotency key while its request is answered; False if another session
        holds it. PostgreSQL: a session's advisory lock, so that two API processes cannot both
        answer one key, and a process that dies frees its keys. SQLite: True (its callers
        keep their own keys in flight in process)."""
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        lock, taken, released = _key_lock(scope, key), False, False
        with storage_errors():
            holder = self.engine.connect()
        try:
            with storage_errors():
                taken = bool(holder.exec_driver_sql(f"SELECT pg_try_advisory_lock{lock}").scalar())
                holder.commit()  # the lock is the session's: no transaction stays open
            yield taken
        finally:
            with contextlib.suppress(Exception):
                if taken:
                    holder.exec_driver_sql(f"SELECT pg_advisory_unlock{lock}")
                    holder.commit()
                released = True
            if not released:  # the session ends, and the lock with it
                holder.invalidate()
            holder.close()

    def write(self, unit: Callable[[LedgerTx], T]) -> Future[T]:
        return self._writer.submit(unit)

    def send(self, unit: Callable[[LedgerTx], T], done: Done) -> None:
        self._writer.enqueue(unit, done)

    def append_voucher(
        self, voucher: Voucher, claim_key: str, done: Done, pool: str | None = None
    ) -> None:
        """Record an issued voucher and its `issue` event; `done` is called once durable.

        `pool`: the quota it was taken from (domain/quota.py), when not the type's own stock.
        """
        row = voucher_row(voucher, claim_key)
        event = issue_event_row(voucher, claim_key, row["issued_at_us"])
        rows = {"vouchers": row, "voucher_events": event}
        if pool is not None:
            rows["voucher_pools"] = {"voucher_id": voucher.id, "pool": pool}
        self._writer.enqueue(Rows(rows), done)

    def pending_writes(self) -> int:
        return self._writer.pending()

    def reader(self) -> LedgerReader:
        tx: SqlTx | None = getattr(self._local, "tx", None)
        if tx is None or _broken(self._local.connection):
            if tx is not None:  # the server went away under it: a new connection
                self._drop_reader(self._local.connection)
                self._local.tx = None  # not reused closed if the new connection fails
            with storage_errors():
                connection = self.engine.raw_connection()
            with self._readers_lock:
                self._readers.append(connection)
            tx = SqlTx(connection, self._statements, self.engine.dialect)
            self._local.tx, self._local.connection = tx, connection
        return tx

    def _drop_reader(self, connection: Any) -> None:
        with self._readers_lock:
            self._readers.remove(connection)
        with contextlib.suppress(Exception):
            connection.invalidate()

    @contextlib.contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        with storage_errors(), self.engine.begin() as c:
            yield c

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        with storage_errors(), self.engine.connect() as c:
            yield c

    def close(self) -> None:
        self._writer.close()
        if self._lock_holder is not None:
            with contextlib.suppress(Exception):
                self._lock_holder.invalidate()  # the session ends, and its lock with it
            self._lock_holder = None
        with self._readers_lock:
            for connection in self._readers:
                # closing from another thread: sqlite3 may refuse; harmless at shutdown
                with contextlib.suppress(Exception):
                    connection.close()
            self._readers.clear()
        self.engine.dispose()

    def install_campaign(self, campaign: Campaign, spec_text: str, at: datetime) -> None:
        """Record the campaign's spec and its voucher types (idempotent for the same spec)."""
        with self._begin() as c:
            if c.dialect.name == "postgresql":  # workers starting together: one at a time
                c.exec_driver_sql(f"SELECT pg_advisory_xact_lock({CAMPAIGN_LOCK})")
            exists = c.execute(
                sa.select(tables.campaigns.c.id).where(tables.campaigns.c.id == campaign.id)
            ).first()
            if exists is None:
                c.execute(
                    tables.campaigns.insert().values(
                        id=campaign.id, spec_toml=spec_text, loaded_at_us=to_us(at)
                    )
                )
            else:
                c.execute(
                    tables.campaigns.update()
                    .where(tables.campaigns.c.id == campaign.id)
                    .values(spec_toml=spec_text, loaded_at_us=to_us(at))
                )
            self._upsert_types(c, campaign)

    @staticmethod
    def _upsert_types(c: sa.Connection, campaign: Campaign) -> None:
        known = set(c.execute(sa.select(tables.voucher_types.c.id)).scalars())
        for rnd in campaign.rounds:
            for t in rnd.types:
                values = {
                    "campaign_id": campaign.id,
                    "round_id": rnd.id,
                    "category": t.category,
                    "threshold_fen": t.threshold_fen,
                    "discount_fen": t.discount_fen,
                    "count": t.count,
                }
                if t.id in known:
                    c.execute(
                        tables.voucher_types.update()
                        .where(tables.voucher_types.c.id == t.id)
                        .values(**values)
                    )
                else:
                    c.execute(tables.voucher_types.insert().values(id=t.id, **values))

    def campaign_spec(self) -> str | None:
        return stored_spec(self.engine)

    def type_counts(self) -> dict[str, int]:
        """The count of every voucher type the ledger was ever given, as last installed."""
        with self._connect() as c:
            rows = c.execute(sa.select(tables.voucher_types.c.id, tables.voucher_types.c.count))
            return {type_id: int(count) for type_id, count in rows}

    def enroll_merchant(
        self, merchant_id: str, name: str, category: str, at: datetime, status: str = "enrolled"
    ) -> None:
        with self._begin() as c:
            c.execute(
                tables.merchants.insert().values(
                    id=merchant_id,
                    name=name,
                    category=category,
                    status=status,
                    enrolled_at_us=to_us(at),
                )
            )

    def set_merchant_status(self, merchant_id: str, status: str) -> bool:
        """Unaudited; an operator's change goes through `xfq.services.operations` instead."""
        m = tables.merchants
        with self._begin() as c:
            done = c.execute(m.update().where(m.c.id == merchant_id).values(status=status))
        return done.rowcount == 1

    def merchants(self) -> list[MerchantRow]:
        m = tables.merchants
        with self._connect() as c:
            rows = c.execute(sa.select(m.c.id, m.c.name, m.c.category, m.c.status).order_by(m.c.id))
            return [MerchantRow(*row) for row in rows]

    def merchant_keys(self) -> dict[str, tuple[bytes, str]]:
        """Live API keys: key id -> (secret, merchant id)."""
        k = tables.merchant_keys
        query = sa.select(k.c.key_id, k.c.secret, k.c.merchant_id).where(
            k.c.revoked_at_us.is_(None)
        )
        with self._connect() as c:
            return {row[0]: (row[1].encode(), row[2]) for row in c.execute(query)}

    def keys_of_merchant(self, merchant_id: str) -> list[MerchantKeyRow]:
        """A merchant's API keys, live and revoked, oldest first (without their secrets)."""
        k = tables.merchant_keys
        query = (
            sa.select(k.c.key_id, k.c.created_at_us, k.c.revoked_at_us)
            .where(k.c.merchant_id == merchant_id)
            .order_by(k.c.created_at_us, k.c.key_id)
        )
        with self._connect() as c:
            return [
                MerchantKeyRow(key_id, from_us(made), None if gone is None else from_us(gone))
                for key_id, made, gone in c.execute(query)
            ]

    def revoked_merchant_keys(self) -> set[str]:
        """Ids of the API keys an operator revoked (few, and indexed: cheap enough to repeat)."""
        with self._connect() as c:
            return set(c.scalars(REVOKED_KEYS))

    def stored_answer(self, scope: str, key: str) -> tuple[str, int, str] | None:
        """(request hash, status, body) of an earlier write with this key."""
        t = tables.idempotent_answers
        query = sa.select(t.c.request_sha256, t.c.status, t.c.body).where(
            t.c.scope == scope, t.c.key == key
        )
        with self._connect() as c:
            row = c.execute(query).first()
        return None if row is None else (row[0], row[1], row[2])

    def store_answer(
        self, scope: str, key: str, request_sha256: str, status: int, body: str, at: datetime
    ) -> None:
        with self._begin() as c:
            c.execute(
                tables.idempotent_answers.insert().values(
                    scope=scope,
                    key=key,
                    request_sha256=request_sha256,
                    status=status,
                    body=body,
                    at_us=to_us(at),
                )
            )

    def windows(self) -> dict[str, tuple[datetime, datetime]]:
        """The latest operator-set claim window of each round that has one."""
        w = tables.round_windows
        query = sa.select(w.c.round_id, w.c.opens_at_us, w.c.claim_closes_at_us).order_by(w.c.seq)
        with self._connect() as c:
            return {row[0]: (from_us(row[1]), from_us(row[2])) for row in c.execute(query)}

    def issued_vouchers(self) -> Iterator[tuple[Voucher, str]]:
        """Every voucher with its claim key, read in one pass (a restarting engine's counters;
        one query per voucher cost ~0.5 ms each on PostgreSQL)."""
        query = sa.select(tables.vouchers)
        with self._connect() as c:
            for row in c.execution_options(yield_per=10_000).execute(query):
                yield voucher_of_row(tuple(row)), row.claim_key

    def voucher_pools(self) -> dict[str, str]:
        """Voucher id -> the quota pool it came from, for vouchers not from a type's own stock."""
        p = tables.voucher_pools
        with self._connect() as c:
            return {row[0]: row[1] for row in c.execute(sa.select(p.c.voucher_id, p.c.pool))}

    def households(self) -> dict[str, str]:
        """Member -> head of every declared household (for the engine's household caps)."""
        h = tables.household_members
        with self._connect() as c:
            return {row[0]: row[1] for row in c.execute(sa.select(h.c.person_id, h.c.head_id))}

    def issued_claims(self) -> Iterator[tuple[str, str, str, str, str]]:
        """(voucher id, type id, person id, claim key, state) of every voucher, for a restart;
        in chunks, each an answer of its own (a whole city's in one would pass the answer bound)."""
        v = tables.vouchers
        query = sa.select(v.c.id, v.c.type_id, v.c.person_id, v.c.claim_key, v.c.state)
        with self._connect() as c:
            for row in c.execution_options(yield_per=10_000).execute(query):
                yield row[0], row[1], row[2], row[3], row[4]


def _key_lock(scope: str, key: str) -> tuple[int, int]:
    """An idempotency key's advisory lock: two 32-bit halves of its hash (PostgreSQL keeps
    two-key locks apart from the one-key locks of the engine and the audit chain)."""
    digest = hashlib.sha256(f"{scope}\0{key}".encode()).digest()
    first, second = struct.unpack(">ii", digest[:8])
    return first, second


def _broken(connection: Any) -> bool:
    """True once psycopg saw the server go; SQLite connections do not break."""
    return bool(getattr(connection.driver_connection, "broken", False))


def stored_spec(engine: sa.Engine) -> str | None:
    """The campaign file a ledger was set up with."""
    with engine.connect() as c:
        row = c.execute(sa.select(tables.campaigns.c.spec_toml)).first()
    return None if row is None else str(row[0])
