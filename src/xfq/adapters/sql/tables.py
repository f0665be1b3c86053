"""The ledger schema: one definition for SQLite and PostgreSQL.

Times are integer microseconds since the Unix epoch (UTC), named `*_at_us`: portable across both
databases and never naive. Money is integer fen. Rows of `voucher_events` are never updated.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("spec_toml", sa.Text, nullable=False),
    sa.Column("loaded_at_us", sa.BigInteger, nullable=False),
)

voucher_types = sa.Table(
    "voucher_types",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("campaign_id", sa.String(64), sa.ForeignKey("campaigns.id"), nullable=False),
    sa.Column("round_id", sa.String(64), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("threshold_fen", sa.BigInteger, nullable=False),
    sa.Column("discount_fen", sa.BigInteger, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

merchants = sa.Table(
    "merchants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("enrolled_at_us", sa.BigInteger, nullable=False),
)

vouchers = sa.Table(
    "vouchers",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("type_id", sa.String(64), sa.ForeignKey("voucher_types.id"), nullable=False),
    sa.Column("round_id", sa.String(64), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("person_id", sa.String(64), nullable=False),
    sa.Column("claim_key", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("issued_at_us", sa.BigInteger, nullable=False),
    sa.Column("valid_from_us", sa.BigInteger, nullable=False),
    sa.Column("valid_until_us", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("person_id", "claim_key", name="uq_vouchers_claim"),
    sa.Index("ix_vouchers_state_until", "state", "valid_until_us"),
)

redemptions = sa.Table(
    "redemptions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("voucher_id", sa.String(32), sa.ForeignKey("vouchers.id"), nullable=False),
    sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id"), nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=False),
    sa.Column("order_ref", sa.String(128), nullable=False),
    sa.Column("list_price_fen", sa.BigInteger, nullable=False),
    sa.Column("merchant_promotion_fen", sa.BigInteger, nullable=False),
    sa.Column("threshold_base_fen", sa.BigInteger, nullable=False),
    sa.Column("discount_fen", sa.BigInteger, nullable=False),
    sa.Column("customer_pays_fen", sa.BigInteger, nullable=False),
    sa.Column("redeemed_at_us", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # posted | reversed
    sa.Column("reversed_at_us", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("merchant_id", "idempotency_key", name="uq_redemptions_key"),
    sa.Index("ix_redemptions_voucher", "voucher_id"),
    sa.Index("ix_redemptions_order", "merchant_id", "order_ref"),
)

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("redemption_id", sa.String(32), sa.ForeignKey("redemptions.id"), nullable=False),
    sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id"), nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=False),
    sa.Column("refund_fen", sa.BigInteger, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("refunded_at_us", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("merchant_id", "idempotency_key", name="uq_refunds_key"),
    sa.Index("ix_refunds_redemption", "redemption_id"),
)

voucher_events = sa.Table(
    "voucher_events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("voucher_id", sa.String(32), sa.ForeignKey("vouchers.id"), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("ref", sa.String(64), nullable=True),
    sa.Index("ix_voucher_events_voucher", "voucher_id"),
)

# API keys of merchants' tills. The secret is kept because HMAC needs it on both sides;
# TODO(security): encrypt at rest with a key from the settings.
merchant_keys = sa.Table(
    "merchant_keys",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("merchant_id", sa.String(64), sa.ForeignKey("merchants.id"), nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("revoked_at_us", sa.BigInteger, nullable=True),
    sa.Index("ix_merchant_keys_merchant", "merchant_id"),
    # Every worker reads the revoked keys once a second; partial, so it holds only those few
    # and a key issued adds nothing to it.
    sa.Index(
        "ix_merchant_keys_revoked",
        "revoked_at_us",
        sqlite_where=sa.text("revoked_at_us IS NOT NULL"),
        postgresql_where=sa.text("revoked_at_us IS NOT NULL"),
    ),
)

# Answers to writes made with an Idempotency-Key (operators' writes; claims, redemptions and
# refunds keep their keys on their own rows). A retry gets the stored answer.
idempotent_answers = sa.Table(
    "idempotent_answers",
    metadata,
    sa.Column("scope", sa.String(128), primary_key=True),  # who, and which operation
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
)

# Operators' changes to a round's claim window (opened early, cancelled); the latest one counts.
round_windows = sa.Table(
    "round_windows",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("round_id", sa.String(64), nullable=False),
    sa.Column("opens_at_us", sa.BigInteger, nullable=False),
    sa.Column("claim_closes_at_us", sa.BigInteger, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("operator", sa.String(64), nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
)

# Days whose settlement was closed (paid); a closed day's statement is frozen in its lines.
settlement_days = sa.Table(
    "settlement_days",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD in the campaign's zone
    sa.Column("closed_at_us", sa.BigInteger, nullable=False),
    sa.Column("closed_by", sa.String(64), nullable=False),
    sa.Column("owed_fen", sa.BigInteger, nullable=False),
    sa.Column("payable_fen", sa.BigInteger, nullable=False),
    sa.Column("held_fen", sa.BigInteger, nullable=False),
    sa.Column("lines", sa.Integer, nullable=False),
)

settlement_lines = sa.Table(
    "settlement_lines",
    metadata,
    sa.Column("day", sa.String(10), sa.ForeignKey("settlement_days.day"), primary_key=True),
    sa.Column("redemption_id", sa.String(32), sa.ForeignKey("redemptions.id"), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # redemption | reversal
    sa.Column("merchant_id", sa.String(64), nullable=False),
    sa.Column("type_id", sa.String(64), nullable=False),
    sa.Column("order_ref", sa.String(128), nullable=False),
    sa.Column("order_amount_fen", sa.BigInteger, nullable=False),
    sa.Column("discount_fen", sa.BigInteger, nullable=False),
    sa.Column("reversal_fen", sa.BigInteger, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("held", sa.Boolean, nullable=False),  # the merchant was suspended at closing
    sa.Index("ix_settlement_lines_redemption", "redemption_id"),
)

# Value of a finished round moved into a later round's stock, one row per source voucher type.
rollovers = sa.Table(
    "rollovers",
    metadata,
    sa.Column("from_round", sa.String(64), primary_key=True),
    sa.Column("from_type_id", sa.String(64), primary_key=True),
    sa.Column("into_round", sa.String(64), nullable=False),
    sa.Column("into_type_id", sa.String(64), nullable=True),  # None: no type to carry into
    sa.Column("unclaimed", sa.Integer, nullable=False),
    sa.Column("expired", sa.Integer, nullable=False),
    sa.Column("value_fen", sa.BigInteger, nullable=False),
    sa.Column("added_count", sa.Integer, nullable=False),
    sa.Column("remainder_fen", sa.BigInteger, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
)

# The audit trail (xfq.domain.audit): rows are appended in sequence and never updated; each
# row's hash covers the previous row's, so an edit anywhere shows in `xfq audit verify`.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # canonical JSON
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Cash-out fraud signals (xfq.domain.fraud) and the operators' review of each. The id is derived
# from the rule and what it is about, so a second scan updates a flag instead of adding one.
fraud_flags = sa.Table(
    "fraud_flags",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("merchant_id", sa.String(64), nullable=False),
    sa.Column("person_id", sa.String(64), nullable=True),
    sa.Column("redemption_ids", sa.Text, nullable=False),  # JSON list
    sa.Column("evidence", sa.Text, nullable=False),  # canonical JSON
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Column("found_at_us", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | confirmed | dismissed
    sa.Column("reviewed_by", sa.String(64), nullable=True),
    sa.Column("reviewed_at_us", sa.BigInteger, nullable=True),
    sa.Column("review_reason", sa.Text, nullable=True),
    sa.Index("ix_fraud_flags_status", "status"),
)

# Coarse locations (about 1 km: rounded to 0.01 degree) of merchants and of people who gave one,
# for the "vouchers from far away" signal. Micro-degrees as integers.
locations = sa.Table(
    "locations",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),  # person | merchant
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("lat_e6", sa.Integer, nullable=False),
    sa.Column("lon_e6", sa.Integer, nullable=False),
)

# A lottery round's published commitments (domain/lottery.py): the seed is kept secret until
# the draw; once drawn, `draw_json` is the published draw file and never changes.
lottery_rounds = sa.Table(
    "lottery_rounds",
    metadata,
    sa.Column("round_id", sa.String(64), primary_key=True),
    sa.Column("seed_hex", sa.String(64), nullable=False),
    sa.Column("seed_sha256", sa.String(64), nullable=False),
    sa.Column("committed_at_us", sa.BigInteger, nullable=False),
    sa.Column("committed_by", sa.String(64), nullable=False),
    sa.Column("frozen_at_us", sa.BigInteger, nullable=True),
    sa.Column("registrations_sha256", sa.String(64), nullable=True),
    sa.Column("drawn_at_us", sa.BigInteger, nullable=True),
    sa.Column("draw_json", sa.Text, nullable=True),
)

lottery_registrations = sa.Table(
    "lottery_registrations",
    metadata,
    sa.Column("round_id", sa.String(64), primary_key=True),
    sa.Column("person_id", sa.String(64), primary_key=True),
    sa.Column("type_id", sa.String(64), primary_key=True),
    sa.Column("registered_at_us", sa.BigInteger, nullable=False),
)

# Household wallets: each member (the head included) belongs to one household, named by its head.
household_members = sa.Table(
    "household_members",
    metadata,
    sa.Column("person_id", sa.String(64), primary_key=True),
    sa.Column("head_id", sa.String(64), nullable=False),
    sa.Column("declared_at_us", sa.BigInteger, nullable=False),
    sa.Index("ix_household_members_head", "head_id"),
)

# The quota pool (assisted reserve, a district's share) a voucher was taken from; written with
# the voucher in the same commit. Vouchers from a type's own stock have no row.
voucher_pools = sa.Table(
    "voucher_pools",
    metadata,
    sa.Column("voucher_id", sa.String(32), primary_key=True),
    sa.Column("pool", sa.String(160), nullable=False),
)
