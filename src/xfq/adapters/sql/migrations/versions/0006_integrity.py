"""audit trail, fraud flags, coarse locations

Revision ID: 0006_integrity (after 0005_money)
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_integrity"
down_revision = "0005_money"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    _append_only(op.get_bind().dialect.name)
    op.create_table(
        "fraud_flags",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=True),
        sa.Column("redemption_ids", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("found_at_us", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reviewed_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_at_us", sa.BigInteger(), nullable=True),
        sa.Column("review_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fraud_flags_status", "fraud_flags", ["status"])
    op.create_table(
        "locations",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("lat_e6", sa.Integer(), nullable=False),
        sa.Column("lon_e6", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "id"),
    )


# Rows of the audit trail are never changed: the database refuses it, so no code path can by
# mistake. (Someone who can drop the trigger can also edit the file; the hash chain shows that.)
_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER audit_log_no_{verb} BEFORE {verb.upper()} ON audit_log "
    f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    for verb in ("update", "delete")
]
_POSTGRESQL_TRIGGER = [
    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
]


def _append_only(dialect: str) -> None:
    statements = {"sqlite": _SQLITE_TRIGGERS, "postgresql": _POSTGRESQL_TRIGGER}
    for statement in statements.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("locations")
    op.drop_index("ix_fraud_flags_status", table_name="fraud_flags")
    op.drop_table("fraud_flags")
    op.drop_table("audit_log")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_log_append_only()")
