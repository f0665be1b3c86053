"""Quotas: a voucher type's stock split into pools that different claimants draw from.

A type's count is split into: the assisted channel's reserve (staff at service desks claim on
a person's behalf after checking their ID), then the rest, either as one pool for everyone
(keyed by the type's id) or split by district (each district's people draw from theirs).
Pools partition the count, so no pool can oversell the type.
"""

from __future__ import annotations

from xfq.domain.campaign import VoucherType

ASSISTED = "assisted"


def assisted_pool(type_id: str) -> str:
    return f"{type_id}#{ASSISTED}"


def district_pool(type_id: str, district: str) -> str:
    return f"{type_id}@{district}"


def pools_of(vtype: VoucherType) -> dict[str, int]:
    """Every pool of a type and its count; the counts add up to the type's count."""
    pools: dict[str, int] = {}
    split = sum(n for _, n in vtype.districts)
    pools[vtype.id] = vtype.count - vtype.assisted - split
    if vtype.assisted:
        pools[assisted_pool(vtype.id)] = vtype.assisted
    for district, n in vtype.districts:
        pools[district_pool(vtype.id, district)] = n
    assert sum(pools.values()) == vtype.count and min(pools.values()) >= 0, (vtype, pools)
    return pools


def type_of_pool(pool: str) -> str:
    return pool.split("#", 1)[0].split("@", 1)[0]
