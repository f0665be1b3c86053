"""Which fair-issuance rules a campaign uses that a claim engine must enforce itself.

An engine that does not enforce one of them must refuse to run the campaign rather than ignore
the rule (grab a lottery type, pass a household cap, take from the wrong quota pool).
"""

from __future__ import annotations

from xfq.domain.campaign import Campaign, IssuanceMode


def engine_rules_used(campaign: Campaign) -> list[str]:
    """Human-readable names of the rules in use, e.g. "household cap (round r2)"."""
    used = []
    for rnd in campaign.rounds:
        if rnd.issuance is IssuanceMode.LOTTERY:
            used.append(f"lottery issuance (round {rnd.id})")
        if rnd.limits.per_household is not None:
            used.append(f"household cap (round {rnd.id})")
        for vtype in rnd.types:
            if vtype.assisted:
                used.append(f"assisted-channel reserve ({vtype.id})")
            if vtype.districts:
                used.append(f"district shares ({vtype.id})")
    return used
