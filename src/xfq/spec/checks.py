"""Rules that span fields of a well-shaped campaign file: windows, ids, categories, sums.

Each check returns problems (never raises), so one run reports everything that is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from itertools import combinations

from xfq.domain.campaign import IssuanceMode, ValidityKind
from xfq.domain.money import yuan_to_fen
from xfq.spec.convert import as_aware
from xfq.spec.display import yuan_text
from xfq.spec.locate import Loc
from xfq.spec.model import (
    CampaignFile,
    LotteryFile,
    RolloverFile,
    RoundFile,
    TypeFile,
    ValidityFile,
)
from xfq.spec.problems import Problem, dotted


def check_campaign(spec: CampaignFile, tz: tzinfo) -> list[Problem]:
    categories = {c.id for c in spec.categories}
    problems = [
        *_duplicate_ids(spec),
        *_rollover(spec.rollover, spec.rounds),
        *_overlaps(spec.rounds, tz),
    ]
    for i, rnd in enumerate(spec.rounds):
        problems += _round(("rounds", i), rnd, categories, tz)
    return problems


def _duplicates(items: Iterable[tuple[Loc, object]], what: str) -> list[Problem]:
    first_at: dict[object, Loc] = {}
    problems = []
    for loc, value in items:
        if value in first_at:
            first = dotted(first_at[value])
            problems.append(
                Problem(loc, f"{what} {value!r} is used more than once (first at {first})")
            )
        first_at.setdefault(value, loc)
    return problems


def _duplicate_ids(spec: CampaignFile) -> list[Problem]:
    rounds = list(enumerate(spec.rounds))
    categories = [(("categories", i, "id"), c.id) for i, c in enumerate(spec.categories)]
    round_ids = [(("rounds", i, "id"), r.id) for i, r in rounds]
    numbers = [(("rounds", i, "number"), r.number) for i, r in rounds]
    # Type ids must be unique across rounds: a voucher names its type alone.
    types = [
        (("rounds", i, "types", j, "id"), t.id) for i, r in rounds for j, t in enumerate(r.types)
    ]
    return [
        *_duplicates(categories, "category id"),
        *_duplicates(round_ids, "round id"),
        *_duplicates(numbers, "round number"),
        *_duplicates(types, "voucher type id"),
    ]


def _rollover(rollover: RolloverFile, rounds: list[RoundFile]) -> list[Problem]:
    problems = []
    if rollover.enabled and not rollover.sources:
        problems.append(
            Problem(("rollover", "sources"), "rollover is enabled but names no sources")
        )
    ids = [r.id for r in rounds]
    if rollover.into != "next" and rollover.into not in ids:
        problems.append(
            Problem(
                ("rollover", "into"),
                f"rollover goes into round {rollover.into!r}, which is not a round of this "
                f'campaign (rounds: {", ".join(ids)}); write "next" or one of them',
            )
        )
    return problems


def _overlaps(rounds: list[RoundFile], tz: tzinfo) -> list[Problem]:
    windows = [
        (i, r.id, as_aware(r.opens_at, tz), as_aware(r.claim_closes_at, tz))
        for i, r in enumerate(rounds)
    ]
    windows = [w for w in windows if w[2] < w[3]]  # inverted windows are reported on their own
    problems = []
    for (_, a_id, a_open, a_close), (j, b_id, b_open, b_close) in combinations(windows, 2):
        if a_open < b_close and b_open < a_close:
            problems.append(
                Problem(
                    ("rounds", j, "opens_at"),
                    f"the claim window of round {b_id!r} ({_when(b_open)} to {_when(b_close)})"
                    f" overlaps that of round {a_id!r} ({_when(a_open)} to {_when(a_close)})",
                )
            )
    return problems


def _when(moment: datetime) -> str:
    return moment.isoformat(sep=" ")


def _round(loc: Loc, rnd: RoundFile, categories: set[str], tz: tzinfo) -> list[Problem]:
    opens_at, closes_at = as_aware(rnd.opens_at, tz), as_aware(rnd.claim_closes_at, tz)
    problems = []
    if closes_at <= opens_at:
        problems.append(
            Problem(
                (*loc, "claim_closes_at"),
                f"claims must close after they open: claim_closes_at {_when(closes_at)}"
                f" is not after opens_at {_when(opens_at)}",
            )
        )
    problems += _validity((*loc, "validity"), rnd.validity, opens_at)
    problems += _issuance(loc, rnd, opens_at, closes_at, tz)
    for j, vtype in enumerate(rnd.types):
        problems += _voucher_type((*loc, "types", j), vtype, categories)
        problems += _quotas((*loc, "types", j), vtype, rnd.issuance)
    return problems + _stated_round(loc, rnd) + _stated_categories(loc, rnd, categories)


def _issuance(
    loc: Loc, rnd: RoundFile, opens_at: datetime, closes_at: datetime, tz: tzinfo
) -> list[Problem]:
    if rnd.issuance is not IssuanceMode.GRAB and rnd.waiting_room is not None:
        return [Problem((*loc, "waiting_room"), 'applies only when issuance = "grab"')]
    if rnd.issuance is not IssuanceMode.LOTTERY:
        if rnd.lottery is None:
            return []
        return [
            Problem(
                (*loc, "lottery"), f'applies only when issuance = "lottery", not "{rnd.issuance}"'
            )
        ]
    if rnd.lottery is None:
        return [
            Problem(
                (*loc, "issuance"),
                'is "lottery" but the round has no [rounds.lottery] table (registration_opens_at,'
                " registration_closes_at, draw_at)",
            )
        ]
    return _lottery((*loc, "lottery"), rnd.lottery, opens_at, closes_at, tz)


def _lottery(
    loc: Loc, lottery: LotteryFile, opens_at: datetime, closes_at: datetime, tz: tzinfo
) -> list[Problem]:
    """Registration, then the draw inside the round's window (its vouchers are issued then)."""
    reg_opens = as_aware(lottery.registration_opens_at, tz)
    reg_closes = as_aware(lottery.registration_closes_at, tz)
    draw_at = as_aware(lottery.draw_at, tz)
    problems = []
    if reg_closes <= reg_opens:
        problems.append(
            Problem(
                (*loc, "registration_closes_at"),
                f"registration must close after it opens: {_when(reg_closes)} is not after"
                f" registration_opens_at {_when(reg_opens)}",
            )
        )
    if draw_at < reg_closes:
        problems.append(
            Problem(
                (*loc, "draw_at"),
                f"the draw ({_when(draw_at)}) must not be before registration closes"
                f" ({_when(reg_closes)})",
            )
        )
    if not opens_at <= draw_at < closes_at:
        problems.append(
            Problem(
                (*loc, "draw_at"),
                f"the draw ({_when(draw_at)}) must be inside the round's window"
                f" ({_when(opens_at)} to {_when(closes_at)}): its vouchers are issued then",
            )
        )
    week, campaign = lottery.max_wins_per_week, lottery.max_wins_per_campaign
    if week is not None and campaign is not None and campaign < week:
        problems.append(
            Problem(
                (*loc, "max_wins_per_week"),
                f"allows {week} win(s) a week but max_wins_per_campaign allows only {campaign}",
            )
        )
    return problems


def _validity(loc: Loc, validity: ValidityFile, opens_at: datetime) -> list[Problem]:
    kind = validity.kind
    given = {
        "days": validity.days,
        "from": validity.valid_from,
        "through": validity.valid_through,
    }
    needed = {"from", "through"} if kind is ValidityKind.FIXED else {"days"}
    problems = [
        Problem((*loc, key), f'is required when kind = "{kind}"')
        for key in sorted(needed)
        if given[key] is None
    ] + [
        Problem((*loc, key), f'does not apply when kind = "{kind}"')
        for key, value in given.items()
        if key not in needed and value is not None
    ]
    start, end = validity.valid_from, validity.valid_through
    if kind is ValidityKind.FIXED and start is not None and end is not None:
        if start > end:
            problems.append(Problem((*loc, "from"), f"from {start} is after through {end}"))
        elif end < opens_at.date():
            problems.append(Problem((*loc, "through"), f"through {end} is before the round opens"))
    return problems


def _voucher_type(loc: Loc, vtype: TypeFile, categories: set[str]) -> list[Problem]:
    problems = []
    if vtype.category not in categories:
        problems.append(_unknown_category((*loc, "category"), vtype.category, categories))
    threshold_fen = yuan_to_fen(vtype.threshold_yuan)
    discount_fen = yuan_to_fen(vtype.discount_yuan)
    if discount_fen >= threshold_fen:
        problems.append(
            Problem(
                (*loc, "discount_yuan"),
                f"the discount ({yuan_text(discount_fen)} yuan) must be smaller than the"
                f" threshold ({yuan_text(threshold_fen)} yuan)",
            )
        )
    return problems


def _quotas(loc: Loc, vtype: TypeFile, issuance: IssuanceMode) -> list[Problem]:
    """The assisted reserve and the district split must fit in the count, exactly for districts."""
    assisted = vtype.assisted or 0
    if issuance is IssuanceMode.LOTTERY and (assisted or vtype.districts):
        key = "assisted" if assisted else "districts"
        return [Problem((*loc, key), "a lottery round's types cannot have quotas (yet)")]
    if assisted >= vtype.count:
        return [
            Problem(
                (*loc, "assisted"),
                f"reserves {assisted:,} of {vtype.count:,} vouchers for the assisted channel:"
                " leave some for the app",
            )
        ]
    if vtype.districts is None:
        return []
    split, rest = sum(vtype.districts.values()), vtype.count - assisted
    if split == rest:
        return []
    return [
        Problem(
            (*loc, "districts"),
            f"the districts add up to {split:,} vouchers, but the type has {rest:,} to split"
            f" (count {vtype.count:,} less {assisted:,} assisted)",
        )
    ]


def _unknown_category(loc: Loc, category: str, categories: set[str]) -> Problem:
    known = ", ".join(sorted(categories))
    return Problem(loc, f"unknown category {category!r} (the [[categories]] are: {known})")


def _stated_round(loc: Loc, rnd: RoundFile) -> list[Problem]:
    stated = {"budget_yuan": rnd.budget_yuan, "voucher_count": rnd.voucher_count}
    given = [key for key, value in stated.items() if value is not None]
    if len(given) == 1:
        other = next(key for key in stated if key not in given)
        return [Problem((*loc, given[0]), f"is stated without {other}: give both or neither")]
    problems = []
    if rnd.voucher_count is not None:
        problems += _mismatch((*loc, "voucher_count"), rnd.voucher_count, rnd.types, "round")
    if rnd.budget_yuan is not None:
        problems += _value_mismatch((*loc, "budget_yuan"), rnd.budget_yuan, rnd.types, "round")
    return problems


def _stated_categories(loc: Loc, rnd: RoundFile, categories: set[str]) -> list[Problem]:
    problems = []
    for category, stated in rnd.stated.items():
        here = (*loc, "stated", category)
        if category not in categories:
            problems.append(_unknown_category(here, category, categories))
            continue
        types = [t for t in rnd.types if t.category == category]
        what = f"category {category!r}"
        problems += _mismatch((*here, "count"), stated.count, types, what)
        problems += _value_mismatch((*here, "value_yuan"), stated.value_yuan, types, what)
    return problems


def _mismatch(loc: Loc, stated: int, types: list[TypeFile], what: str) -> list[Problem]:
    total = sum(t.count for t in types)
    if stated == total:
        return []
    return [
        Problem(
            loc,
            f"states {stated:,} vouchers, but the voucher types of the {what} add up to"
            f" {total:,} vouchers",
        )
    ]


def _value_mismatch(
    loc: Loc, stated_yuan: int | str, types: list[TypeFile], what: str
) -> list[Problem]:
    stated_fen = yuan_to_fen(stated_yuan)
    total_fen = sum(t.count * yuan_to_fen(t.discount_yuan) for t in types)
    if stated_fen == total_fen:
        return []
    return [
        Problem(
            loc,
            f"states {yuan_text(stated_fen)} yuan, but the voucher types of the {what}"
            f" add up to {yuan_text(total_fen)} yuan",
        )
    ]
