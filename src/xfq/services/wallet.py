"""A citizen's wallet: their vouchers, with what each is and until when it is usable."""

from __future__ import annotations

from dataclasses import dataclass

from xfq.domain.campaign import Campaign, VoucherType
from xfq.domain.voucher import Voucher
from xfq.ports import LedgerReader


@dataclass(frozen=True)
class WalletEntry:
    voucher: Voucher
    voucher_type: VoucherType


def wallet(reader: LedgerReader, campaign: Campaign, person_id: str) -> list[WalletEntry]:
    return [
        WalletEntry(v, campaign.voucher_type(v.type_id)[1]) for v in reader.vouchers_of(person_id)
    ]
