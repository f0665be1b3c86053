"""Where a campaign lives in Redis: shards, their hash tags and the keys inside them.

A campaign is split over `shards` hash tags `{xfq:<campaign>:<n>}`. Each shard is a
self-contained slice: a part of every type's stock, the people whose home it is (their counts
and idempotency answers), and a stream of what it issued. A person always claims at their home
shard, so every per-person limit is checked by one atomic script on one Cluster slot; stock moves
between shards (`lend`/`borrow`) when a home shard runs out of a type.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

GROUP = "persisters"
COUNTS_SHARD = 0  # holds the counts, the spec digest, and stock added by an upload


@dataclass(frozen=True)
class Layout:
    campaign_id: str
    shards: int

    def __post_init__(self) -> None:
        assert self.shards >= 1, "at least one shard"

    def tag(self, shard: int) -> str:
        return f"{{xfq:{self.campaign_id}:{shard}}}"

    def home(self, person_id: str) -> int:
        """The shard that holds this person's counts and answers."""
        return zlib.crc32(person_id.encode()) % self.shards

    def stream(self, shard: int) -> str:
        return f"{self.tag(shard)}:claims"

    def stock(self, shard: int, type_id: str) -> str:
        return f"{self.tag(shard)}:s:{type_id}"

    def rebuilt(self, shard: int) -> str:
        """Vouchers per type that a load took over from the ledger (they are in no stream)."""
        return f"{self.tag(shard)}:rebuilt"

    def person(self, shard: int, person_id: str) -> str:
        """The person's counts (t:<type>, c:<round>:<category>, r:<round>) and answers
        (k:<idempotency key>)."""
        return f"{self.tag(shard)}:p:{person_id}"

    def voucher_type(self, shard: int, type_id: str) -> str:
        return f"{self.tag(shard)}:t:{type_id}"

    def round(self, shard: int, round_id: str) -> str:
        return f"{self.tag(shard)}:r:{round_id}"

    def rolled(self, shard: int) -> str:
        """Keys of the rollover moves whose stock this shard received (`scripts.TOP_UP`)."""
        return f"{self.tag(shard)}:rolled"

    def counts(self) -> str:
        """The voucher count of each type that Redis's stock is made for (`scripts.SET_COUNTS`);
        on the first shard, with the spec digest and the stock that raised counts add."""
        return f"{self.tag(COUNTS_SHARD)}:counts"

    def spec_digest(self) -> str:
        """The sha256 of the campaign spec whose counts Redis runs: workers that run another
        spec load the ledger's again (`Container.follow_upload`)."""
        return f"{self.tag(COUNTS_SHARD)}:spec"

    def loaded(self, shard: int) -> str:
        return f"{self.tag(shard)}:loaded"

    def split(self, count: int, shard: int) -> int:
        """This shard's part of `count`: as even as integers allow."""
        return count // self.shards + (1 if shard < count % self.shards else 0)


def shards_key(campaign_id: str) -> str:
    """The one key outside the shards: how many there are, fixed when first loaded."""
    return f"xfq:{campaign_id}:shards"
