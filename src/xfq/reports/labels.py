"""The report's words in Simplified Chinese (default) and English, shared by HTML, XLSX, charts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from xfq.domain.campaign import Campaign

Lang = Literal["zh", "en"]

# key -> (Simplified Chinese, English)
LABELS: dict[str, tuple[str, str]] = {
    "title": ("轮次报告", "Round report"),
    "made_at": ("生成于", "Made at"),
    "ledger": ("账本", "Ledger"),
    "headline": ("要点", "Headline"),
    "budget": ("预算（券面合计）", "Budget (face value of the stock)"),
    "people": ("获券人数", "People holding a voucher"),
    "redemption_rate": ("核销率", "Redemption rate"),
    "gross_leverage": ("毛拉动比（订单额 ÷ 补贴）", "Gross leverage (order value ÷ discount)"),
    "gross_note": (
        "毛拉动比把用券订单的全部金额算作券带来的消费；没有券也会发生的消费也计在内，"
        "因此高估券的效果。因果拉动比见下文。",
        "Gross leverage counts the whole value of orders paid with a voucher as spending the "
        "voucher brought, including what would have been spent anyway, so it overstates the "
        "effect. The causal estimate is further down.",
    ),
    "by_type": ("按券种", "By voucher type"),
    "by_category": ("按券类", "By category"),
    "by_day": ("按日期和券类", "By day and category"),
    "sell_out": ("抢券：售罄曲线", "The grab: sell-out curve"),
    "sell_out_note": (
        "各券种库存被领取的比例，横轴为开抢后的时间（对数刻度）。",
        "Share of each type's stock claimed, against time after the opening (log scale).",
    ),
    "col_type": ("券种", "Voucher type"),
    "col_category": ("券类", "Category"),
    "col_day": ("日期", "Day"),
    "col_threshold": ("门槛（元）", "Threshold ¥"),
    "col_face": ("面额（元）", "Discount ¥"),
    "col_stock": ("发行", "Issued (stock)"),
    "col_claimed": ("领取", "Claimed"),
    "col_redeemed": ("核销", "Redeemed"),
    "col_expired": ("过期", "Expired"),
    "col_unused": ("未用", "Unused"),
    "col_reversals": ("退款撤销", "Reversals"),
    "col_rate": ("核销率", "Redemption rate"),
    "col_discount": ("补贴（元）", "Discount paid ¥"),
    "col_order_value": ("订单额（元）", "Order value ¥"),
    "col_leverage": ("毛拉动比", "Gross leverage"),
    "col_sold_out": ("售罄时间", "Sold out at"),
    "col_sold_out_after": ("开抢后（秒）", "Seconds after opening"),
    "total": ("合计", "Total"),
    "chart_after_opening": ("开抢后", "After the opening"),
    "chart_share_claimed": ("已领取", "Claimed"),
    "chart_discount_yuan": ("补贴（元）", "Discount paid (yuan)"),
    "chart_before": ("开抢前", "Before"),
    "chart_after": ("开抢后", "After"),
    "chart_daily_spend_yuan": ("人均日消费（元）", "Mean daily spend per person (yuan)"),
    "group_winners": ("抢到券的人", "Winners"),
    "group_others": ("未抢到的人", "Tried and failed"),
    "group_counterfactual": ("若无券（平行趋势）", "Winners without vouchers (parallel trend)"),
    "causal": ("因果拉动比（双重差分）", "Causal leverage (difference-in-differences)"),
    "causal_missing": (
        "没有消费数据：用 --spending 提供每人每日消费（CSV 或 Parquet）即可估计。",
        "No spending feed: give one with --spending (per person per day, CSV or Parquet).",
    ),
    "extra_per_yuan": ("每元补贴带来的额外消费（元）", "Extra spending per yuan of subsidy"),
    "interval": ("95% 置信区间", "95% interval"),
    "effect_per_day": ("每位获券人每日额外消费（元）", "Extra spend per winner per day ¥"),
    "placebo": (
        "安慰剂检验（开抢前较早与较晚整周之差，应接近 0）",
        "Placebo (earlier vs later whole weeks before; ~0 expected)",
    ),
    "winners": ("获券人（数据中）", "Winners in the feed"),
    "others": ("未抢到的人（数据中）", "People who failed, in the feed"),
    "subsidy_in_feed": ("这些获券人得到的补贴（元）", "Discount paid to them ¥"),
    "window": ("比较窗口", "Window"),
    "window_value": ("开抢日前后各 {weeks} 周", "{weeks} week(s) before and after the opening day"),
    "method": ("方法", "Method"),
    "assumptions": ("假设", "Assumptions"),
    "bootstrap": ("自助抽样次数", "Bootstrap draws"),
    "settlement": ("结算", "Settlement"),
    "rollover": ("结转", "Rollover"),
    "fraud": ("风控标记", "Fraud flags"),
    "not_available": ("暂无", "Not available"),
}

# The causal method and its assumptions in Chinese; the English text is causal.METHOD/ASSUMPTIONS.
METHOD_ZH = (
    "双重差分。对消费数据中的每个人：开抢日之后若干周的日均消费减去之前同样周数的日均消费。"
    "抢到券的人的平均变化减去尝试但未抢到的人的平均变化，即券使每位获券人每天多出的消费；"
    "乘以之后的天数、再除以获券人人均得到的补贴，即每元补贴带来的额外消费。"
    "95% 置信区间：按人重抽样的百分位自助法（获券人与未获券人分别抽样）。"
)
ASSUMPTIONS_ZH = (
    "平行趋势：若没有券，获券人日消费的变化（元/天）与未获券人相同（水平可以不同；下方安慰剂检验可检查）。",
    "获券不影响未获券人的消费（无溢出），且数据中除获券人外都是尝试过但没抢到的人。",
    "数据覆盖个人的全部消费，而不只是用券的消费；窗口之后的提前消费看不到，窗口应覆盖有效期。",
    "个人之间相互独立（自助法按人重抽样）。",
)


def labeller(lang: Lang) -> Callable[..., str]:
    column = 0 if lang == "zh" else 1

    def label(key: str, **values: object) -> str:
        text = LABELS[key][column]
        return text.format(**values) if values else text

    return label


def category_namer(campaign: Campaign, lang: Lang) -> Callable[[str], str]:
    names = {c.id: (c.name if lang == "zh" else c.name_en) for c in campaign.categories}
    return lambda category: names.get(category, category)
