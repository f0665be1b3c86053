"""A claim's identity from a claim pass (`Claim-Pass` header) instead of a bearer token.

The pass was handed out for a verified bearer token before the round opened
(`xfq.api.claim_pass`); reading it is an HMAC check, not an Ed25519 verification.
"""

from __future__ import annotations

from datetime import datetime

from xfq.api.auth.tokens import AuthError
from xfq.domain.campaign import Campaign
from xfq.domain.claim_pass import PassKeys, PassProblem, read_pass
from xfq.domain.eligibility import Citizen
from xfq.domain.errors import UnknownObject

_DETAILS = {
    PassProblem.MALFORMED: "the Claim-Pass header is not a claim pass",
    PassProblem.FORGED: "the claim pass's signature does not verify",
    PassProblem.UNKNOWN_KEY: "the claim pass was signed with a key no longer in use; get a new one",
    PassProblem.EXPIRED: "the claim pass has expired; get a new one",
    PassProblem.OTHER_ROUND: "the claim pass is for another round than this voucher type's",
}


class PassRefused(AuthError):
    """A claim pass was refused (401) with its `pass_*` code."""

    def __init__(self, problem: PassProblem) -> None:
        super().__init__(str(problem), _DETAILS[problem], status=401)


def pass_citizen(keys: PassKeys, token: str, now: datetime) -> tuple[Citizen, str]:
    """The citizen a pass names, and its round; `PassRefused` when it is not good now."""
    read = read_pass(keys, token.strip(), now)
    if isinstance(read, PassProblem):
        raise PassRefused(read)
    return read.citizen, read.round_id


def check_pass_round(campaign: Campaign, type_id: str, pass_round: str) -> None:
    """`PassRefused` when the voucher type is of another round than the pass's (an unknown
    type is left to the claim engine, which answers it as it always does)."""
    try:
        rnd = campaign.voucher_type(type_id)[0]
    except UnknownObject:
        return
    if rnd.id != pass_round:
        raise PassRefused(PassProblem.OTHER_ROUND)
