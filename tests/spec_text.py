"""Small campaign files for tests, built from parts so each test states only what it varies."""

from __future__ import annotations

CATEGORIES = {
    "retail": ("零售通用", "Retail, general"),
    "home": ("家电家居", "Home appliances & furnishing"),
    "catering": ("餐饮住宿", "Catering & lodging"),
    "online": ("线上通用", "Online, general"),
}
ALL_RESIDENCIES = ("permanent", "work", "study", "visit")


def campaign(campaign_id: str, name: str, categories: tuple[str, ...] = ("retail", "home")) -> str:
    """The campaign table, its categories, and the reference campaign's checkout and refunds."""
    text = f'[campaign]\nid = "{campaign_id}"\nname = "{name}"\ncity = "Taiyuan"\n'
    text += 'timezone = "Asia/Shanghai"\n'
    for category in categories:
        zh, en = CATEGORIES[category]
        text += f'\n[[categories]]\nid = "{category}"\nname = "{zh}"\nname_en = "{en}"\n'
    return text + (
        '\n[checkout]\nthreshold_base = "after_merchant_promotion"\none_voucher_per_order = true\n'
        '\n[refunds]\nfull_refund_restores = true\npartial = "keep_if_threshold_met"\n'
        "\n[rollover]\nenabled = false\nsources = []\n"
    )


def round_(
    round_id: str = "r1",
    number: int = 1,
    opens_at: str = "2022-03-05T10:00:00",
    claim_closes_at: str = "2022-03-12T00:00:00",
    validity: str = '{ kind = "calendar_days", days = 7 }',
    limits: str = "per_type = 1\nper_category = 2\nper_round = 3",
    residencies: tuple[str, ...] = ALL_RESIDENCIES,
    name: str = "Round one",
    issuance: str = "grab",
    extra: str = "",
) -> str:
    """A [[rounds]] entry; `extra` is appended after its eligibility (e.g. [rounds.lottery])."""
    kinds = ", ".join(f'"{r}"' for r in residencies)
    return (
        f'\n[[rounds]]\nid = "{round_id}"\nnumber = {number}\nname = "{name}"\n'
        f"opens_at = {opens_at}\nclaim_closes_at = {claim_closes_at}\n"
        f'issuance = "{issuance}"\nvalidity = {validity}\n'
        f"\n[rounds.limits]\n{limits}\n"
        f"\n[rounds.eligibility]\nresidencies = [{kinds}]\nrequire_in_city = true\n" + extra
    )


def voucher_type(
    type_id: str, threshold_yuan: int, discount_yuan: int, count: int, per_person: int | None = None
) -> str:
    """A [[rounds.types]] entry; the category is the second part of the id (r1-retail-30-6)."""
    category = type_id.split("-")[1]
    text = (
        f'\n[[rounds.types]]\nid = "{type_id}"\ncategory = "{category}"\n'
        f"threshold_yuan = {threshold_yuan}\ndiscount_yuan = {discount_yuan}\ncount = {count}\n"
    )
    return text + (f"per_person = {per_person}\n" if per_person is not None else "")


def lottery(
    registration_opens_at: str = "2022-03-01T09:00:00",
    registration_closes_at: str = "2022-03-04T20:00:00",
    draw_at: str = "2022-03-05T10:00:00",
    caps: str = "",
) -> str:
    """A [rounds.lottery] table for `round_(issuance="lottery", extra=...)`."""
    return (
        f"\n[rounds.lottery]\nregistration_opens_at = {registration_opens_at}\n"
        f"registration_closes_at = {registration_closes_at}\ndraw_at = {draw_at}\n{caps}"
    )
