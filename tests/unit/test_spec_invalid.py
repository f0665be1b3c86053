"""Malformed variants of the example file: each is refused, naming the line, field and fault.

Each case edits the example text a little. The line the problem must name carries the
comment `# <- here` in the replacement, so the expected line number follows from the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from xfq.domain.errors import SpecError
from xfq.spec import load_campaign, parse_campaign

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"
SOURCE = "variant.toml"
HERE = "# <- here"

R6_HOME_2000 = 'id = "r6-home-2000-300"\ncategory = "home"\nthreshold_yuan = 2000\n'
R6_CATERING = 'id = "r6-catering-200-50"\ncategory = "catering"\nthreshold_yuan = 200\n'
CAMPAIGN_HEAD = 'id = "taiyuan-2022"\nname = "晋情消费·悦享生活"\ncity = "太原 Taiyuan"\n'
R6_LIMITS = "[rounds.limits]\n# ASSUMPTION: as for round 5, one voucher per category per person"
R6_WINDOW = "opens_at = 2022-03-05T10:00:00\n"
R6_VALIDITY = 'validity = { kind = "calendar_days", days = 7 }\nbudget_yuan'


@dataclass(frozen=True)
class Case:
    name: str
    old: str  # must occur exactly once in the example
    new: str
    path: str  # the field path the message must name
    says: str  # and a phrase saying what is wrong


def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def edited(old: str, new: str) -> str:
    text = example_text()
    assert text.count(old) == 1, f"not exactly once in the example: {old!r}"
    return text.replace(old, new)


def marked_line(text: str) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if HERE in line]
    assert len(lines) == 1, "a case must mark exactly one line"
    return lines[0]


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_campaign(text, SOURCE)
    return caught.value.problems


CASES = [
    # wrong types
    Case(
        "count as text",
        f"{R6_HOME_2000}discount_yuan = 300\ncount = 1980",
        f'{R6_HOME_2000}discount_yuan = 300\ncount = "many"  {HERE}',
        "rounds[1].types[2].count",
        'must be a whole number, not "many"',
    ),
    Case(
        "date-time as text",
        "opens_at = 2022-02-26T10:00:00",
        f'opens_at = "2022-02-26 10:00"  {HERE}',
        "rounds[0].opens_at",
        "must be a date-time",
    ),
    Case(
        "flag as text",
        "one_voucher_per_order = true",
        f'one_voucher_per_order = "yes"  {HERE}',
        "checkout.one_voucher_per_order",
        "must be true or false",
    ),
    Case(
        "limits as an array of tables",
        R6_LIMITS,
        f"[[rounds.limits]]  {HERE}",
        "rounds[1].limits",
        "must be a table, not an array",
    ),
    Case(
        "unknown partial-refund rule",
        'partial = "keep_if_threshold_met"',
        f'partial = "maybe"  {HERE}',
        "refunds.partial",
        "must be one of 'forfeit', 'keep_if_threshold_met' or 'restore', not \"maybe\"",
    ),
    Case(
        "unknown issuance mode",
        'issuance = "grab"                                   # 抢券',
        f'issuance = "raffle"  {HERE}',
        "rounds[0].issuance",
        "must be one of 'grab'",
    ),
    Case(
        "unknown residency",
        'residencies = ["permanent", "work", "study", "visit"]\nrequire_in_city = true   #'
        " ASSUMPTION: the claim is made from inside the city\n\n# The",
        f'residencies = ["permanent", "wrok"]  {HERE}\nrequire_in_city = true\n\n# The',
        "rounds[1].eligibility.residencies[1]",
        'not "wrok"',
    ),
    Case(
        "id with capitals and spaces",
        'id = "r6-online-30-6"',
        f'id = "R6 Online"  {HERE}',
        "rounds[1].types[6].id",
        "is not a valid id",
    ),
    # missing and unknown keys
    Case(
        "missing count",
        f"[[rounds.types]]           # 1980张、59.4万元的满2000元减300元\n{R6_HOME_2000}"
        "discount_yuan = 300\ncount = 1980\n",
        f"[[rounds.types]]  {HERE}\n{R6_HOME_2000}discount_yuan = 300\n",
        "rounds[1].types[2].count",
        "is required but missing",
    ),
    Case(
        "missing per_type",
        f"{R6_LIMITS} per round.\nper_type = 1\n",
        f"[rounds.limits]  {HERE}\n",
        "rounds[1].limits.per_type",
        "is required but missing",
    ),
    Case(
        "missing time zone",
        f"[campaign]\n{CAMPAIGN_HEAD}"
        'timezone = "Asia/Shanghai"   # every local date-time below is read in this zone\n',
        f"[campaign]  {HERE}\n{CAMPAIGN_HEAD}",
        "campaign.timezone",
        "is required but missing",
    ),
    Case(
        "typo in a key",
        f"{R6_HOME_2000}discount_yuan = 300\ncount = 1980",
        f"{R6_HOME_2000}discount_yuan = 300\ncount = 1980\ncahnnel = 'app'  {HERE}",
        "rounds[1].types[2].cahnnel",
        "unknown key 'cahnnel'; did you mean 'channel'?",
    ),
    Case(
        "unknown key far from any known one",
        "one_voucher_per_order = true",
        f"one_voucher_per_order = true\ncolour = 'red'  {HERE}",
        "checkout.colour",
        "unknown key 'colour'; allowed here: threshold_base, one_voucher_per_order",
    ),
    # counts and limits
    Case(
        "zero count",
        f"{R6_HOME_2000}discount_yuan = 300\ncount = 1980",
        f"{R6_HOME_2000}discount_yuan = 300\ncount = 0  {HERE}",
        "rounds[1].types[2].count",
        "must be at least 1, not 0",
    ),
    Case(
        "negative count",
        f"{R6_HOME_2000}discount_yuan = 300\ncount = 1980",
        f"{R6_HOME_2000}discount_yuan = 300\ncount = -1980  {HERE}",
        "rounds[1].types[2].count",
        "must be at least 1, not -1980",
    ),
    Case(
        "per_person zero",
        f"{R6_HOME_2000}discount_yuan = 300\ncount = 1980",
        f"{R6_HOME_2000}discount_yuan = 300\ncount = 1980\nper_person = 0  {HERE}",
        "rounds[1].types[2].per_person",
        "must be at least 1, not 0",
    ),
    Case(
        "limit per category zero",
        f"{R6_LIMITS} per round.\nper_type = 1\nper_category = 1",
        f"[rounds.limits]\nper_type = 1\nper_category = 0  {HERE}",
        "rounds[1].limits.per_category",
        "must be at least 1, not 0",
    ),
    # amounts
    Case(
        "discount equal to threshold",
        f"{R6_CATERING}discount_yuan = 50",
        f"{R6_CATERING}discount_yuan = 200  {HERE}",
        "rounds[1].types[4].discount_yuan",
        "the discount (200 yuan) must be smaller than the threshold (200 yuan)",
    ),
    Case(
        "discount above threshold",
        f"{R6_CATERING}discount_yuan = 50",
        f'{R6_CATERING}discount_yuan = "250.50"  {HERE}',
        "rounds[1].types[4].discount_yuan",
        "the discount (250.50 yuan) must be smaller than the threshold (200 yuan)",
    ),
    Case(
        "zero threshold",
        'id = "r6-catering-200-50"\ncategory = "catering"\nthreshold_yuan = 200',
        f'id = "r6-catering-200-50"\ncategory = "catering"\nthreshold_yuan = 0  {HERE}',
        "rounds[1].types[4].threshold_yuan",
        "must be more than 0 yuan",
    ),
    Case(
        "negative discount",
        f"{R6_CATERING}discount_yuan = 50",
        f"{R6_CATERING}discount_yuan = -50  {HERE}",
        "rounds[1].types[4].discount_yuan",
        "cannot be negative",
    ),
    Case(
        "float amount",
        'id = "r6-catering-200-50"\ncategory = "catering"\nthreshold_yuan = 200',
        f'id = "r6-catering-200-50"\ncategory = "catering"\nthreshold_yuan = 199.9  {HERE}',
        "rounds[1].types[4].threshold_yuan",
        '199.9 is a float; write whole yuan (180) or text with at most two decimals ("199.90")',
    ),
    Case(
        "amount text with three decimals",
        f"{R6_CATERING}discount_yuan = 50",
        f'{R6_CATERING}discount_yuan = "49.999"  {HERE}',
        "rounds[1].types[4].discount_yuan",
        "is not a yuan amount",
    ),
    Case(
        "float stated value",
        "count = 3270\nvalue_yuan = 163500",
        f"count = 3270\nvalue_yuan = 163500.0  {HERE}",
        "rounds[1].stated.catering.value_yuan",
        "is a float",
    ),
    # claim windows
    Case(
        "inverted claim window",
        "claim_closes_at = 2022-03-12T00:00:00",
        f"claim_closes_at = 2022-03-04T23:00:00  {HERE}",
        "rounds[1].claim_closes_at",
        "claims must close after they open",
    ),
    Case(
        "empty claim window",
        "claim_closes_at = 2022-03-12T00:00:00",
        f"claim_closes_at = 2022-03-05T10:00:00  {HERE}",
        "rounds[1].claim_closes_at",
        "is not after opens_at 2022-03-05 10:00:00+08:00",
    ),
    Case(
        "overlapping rounds",
        R6_WINDOW,
        f"opens_at = 2022-03-04T20:00:00  {HERE}\n",
        "rounds[1].opens_at",
        "overlaps that of round 'r5'",
    ),
    Case(
        "overlap through an offset date-time",
        R6_WINDOW,
        f"opens_at = 2022-03-04T22:30:00+07:00  {HERE}\n",
        "rounds[1].opens_at",
        "round 'r6' (2022-03-04 23:30:00+08:00 to",
    ),
    # duplicates
    Case(
        "duplicate round id",
        'id = "r6"',
        f'id = "r5"  {HERE}',
        "rounds[1].id",
        "round id 'r5' is used more than once (first at rounds[0].id)",
    ),
    Case(
        "duplicate round number",
        "number = 6",
        f"number = 5  {HERE}",
        "rounds[1].number",
        "round number 5 is used more than once",
    ),
    Case(
        "duplicate type id in a round",
        'id = "r6-online-30-6"',
        f'id = "r6-online-180-40"  {HERE}',
        "rounds[1].types[6].id",
        "voucher type id 'r6-online-180-40' is used more than once"
        " (first at rounds[1].types[5].id)",
    ),
    Case(
        "duplicate type id across rounds",
        'id = "r6-retail-180-40"',
        f'id = "r5-retail-180-40"  {HERE}',
        "rounds[1].types[0].id",
        "is used more than once (first at rounds[0].types[0].id)",
    ),
    Case(
        "duplicate category id",
        'id = "online"',
        f'id = "home"  {HERE}',
        "categories[3].id",
        "category id 'home' is used more than once",
    ),
    # categories and time zone
    Case(
        "unknown category in a type",
        'id = "r5-home-500-80"\ncategory = "home"',
        f'id = "r5-home-500-80"\ncategory = "homes"  {HERE}',
        "rounds[0].types[3].category",
        "unknown category 'homes' (the [[categories]] are: catering, home, online, retail)",
    ),
    Case(
        "unknown category in stated",
        "[rounds.stated.online]",
        f"[rounds.stated.onlin]  {HERE}",
        "rounds[1].stated.onlin",
        "unknown category 'onlin'",
    ),
    Case(
        "unknown time zone",
        'timezone = "Asia/Shanghai"',
        f'timezone = "Asia/Taiyuan"  {HERE}',
        "campaign.timezone",
        "unknown time zone 'Asia/Taiyuan'",
    ),
    # stated totals
    Case(
        "round budget off by 100 yuan",
        "budget_yuan = 2545900",
        f"budget_yuan = 2545800  {HERE}",
        "rounds[1].budget_yuan",
        "states 2,545,800 yuan, but the voucher types of the round add up to 2,545,900 yuan",
    ),
    Case(
        "round count off by one",
        "voucher_count = 126700",
        f"voucher_count = 126701  {HERE}",
        "rounds[1].voucher_count",
        "states 126,701 vouchers, but the voucher types of the round add up to 126,700",
    ),
    Case(
        "category count wrong",
        "count = 107250",
        f"count = 107520  {HERE}",
        "rounds[1].stated.retail.count",
        "states 107,520 vouchers, but the voucher types of the category 'retail' add up to 107,250",
    ),
    Case(
        "category value wrong",
        "value_yuan = 738000",
        f"value_yuan = 783000  {HERE}",
        "rounds[1].stated.home.value_yuan",
        "states 783,000 yuan, but the voucher types of the category 'home' add up to 738,000",
    ),
    Case(
        "budget without count",
        "budget_yuan = 2545900      # 254.59万元, checked against the voucher types below\n"
        "voucher_count = 126700",
        f"budget_yuan = 2545900  {HERE}\n",
        "rounds[1].budget_yuan",
        "is stated without voucher_count: give both or neither",
    ),
    # validity
    Case(
        "validity of zero days",
        R6_VALIDITY,
        f'validity = {{ kind = "calendar_days", days = 0 }}  {HERE}\nbudget_yuan',
        "rounds[1].validity.days",
        "must be at least 1, not 0",
    ),
    Case(
        "fixed validity inverted",
        R6_VALIDITY,
        f'validity = {{ kind = "fixed", from = 2022-03-12, through = 2022-03-11 }}  {HERE}\n'
        "budget_yuan",
        "rounds[1].validity.from",
        "from 2022-03-12 is after through 2022-03-11",
    ),
    Case(
        "fixed validity without through",
        R6_VALIDITY,
        f'validity = {{ kind = "fixed", from = 2022-03-05 }}  {HERE}\nbudget_yuan',
        "rounds[1].validity.through",
        'is required when kind = "fixed"',
    ),
    Case(
        "days without a day count",
        R6_VALIDITY,
        f'validity = {{ kind = "days_after_claim", through = 2022-03-11 }}  {HERE}\nbudget_yuan',
        "rounds[1].validity.days",
        'is required when kind = "days_after_claim"',
    ),
    Case(
        "rollover enabled without sources",
        "enabled = false                      # ASSUMPTION: unclaimed or expired value does not"
        ' roll over\nsources = ["unclaimed", "expired"]',
        f"enabled = true\nsources = []  {HERE}",
        "rollover.sources",
        "rollover is enabled but names no sources",
    ),
    Case(
        "rollover into a round that does not exist",
        'into = "next"',
        f'into = "r9"  {HERE}',
        "rollover.into",
        "rollover goes into round 'r9', which is not a round of this campaign (rounds: r5, r6)",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_variant_is_refused(case: Case) -> None:
    text = edited(case.old, case.new)
    expected = f"{SOURCE}:{marked_line(text)}: {case.path}: "
    problems = problems_of(text)
    assert any(p.startswith(expected) and case.says in p for p in problems), (
        f"expected {expected}...{case.says!r} among {problems}"
    )
    assert not any("Input should" in p or "pydantic" in p for p in problems)


def test_every_problem_is_reported_in_line_order() -> None:
    text = example_text()
    for old, new in [
        ("count = 23250\nchannel", 'count = "many"\nchannel'),  # round 5, shape
        ("budget_yuan = 2545900", "budget_yuan = 1"),  # round 6, a sum
    ]:
        text = text.replace(old, new, 1)
    text = text.replace('name_en = "Online, general"', 'name_en = "Online, general"\nextra = 1')
    shape_problems = problems_of(text)
    assert [p.split(": ")[1] for p in shape_problems] == [
        "categories[3].extra",
        "rounds[0].types[0].count",
    ]
    lines = [int(p.split(":")[1]) for p in shape_problems]
    assert lines == sorted(lines)


def test_every_rule_problem_is_reported() -> None:
    text = (
        example_text()
        .replace("budget_yuan = 2545900", "budget_yuan = 1")
        .replace('id = "r6-online-30-6"', 'id = "r6-online-180-40"')
        .replace("number = 6", "number = 5")
    )
    paths = [p.split(": ")[1] for p in problems_of(text)]
    assert paths == ["rounds[1].number", "rounds[1].budget_yuan", "rounds[1].types[6].id"]


@pytest.mark.parametrize(
    ("old", "new", "where", "says"),
    [
        ('name = "第六轮"', 'name = "第六轮', 'name = "第六轮', "Illegal character"),
        ("number = 6", "number = 6\nnumber = 7", "number = 7", "Cannot overwrite a value"),
        ('channel = "unionpay_app"\n', 'channel = ["unionpay_app",\n', None, "Invalid value"),
    ],
)
def test_toml_syntax_errors_name_their_line(
    old: str, new: str, where: str | None, says: str
) -> None:
    text = example_text()[::-1].replace(old[::-1], new[::-1], 1)[::-1]  # the last one
    lines = text.splitlines()
    # tomllib places some errors only "at end of document": the last line.
    line = len(lines) if where is None else 1 + next(i for i, t in enumerate(lines) if where in t)
    (problem,) = problems_of(text)
    assert problem.startswith(f"{SOURCE}:{line}: TOML syntax error: ")
    assert says in problem


def test_an_unreadable_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the file"):
        load_campaign(tmp_path / "missing.toml")
    binary = tmp_path / "latin1.toml"
    binary.write_bytes(b'[campaign]\nname = "caf\xe9"\n')
    with pytest.raises(SpecError, match=r"latin1.toml:2: the file is not UTF-8 text"):
        load_campaign(binary)
