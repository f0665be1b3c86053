"""Every string the pages show, in Simplified Chinese (the default) and English.

The language comes from `?lang=en` (remembered in a cookie) or that cookie; anything else is
Chinese. Templates call `t("key", name=value)`; a key missing from `MESSAGES` is a bug, so it
raises instead of showing the key to a citizen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lang = Literal["zh", "en"]
DEFAULT_LANG: Lang = "zh"
LANG_COOKIE = "xfq_lang"

# key -> (Simplified Chinese, English); values are str.format templates.
MESSAGES: dict[str, tuple[str, str]] = {
    # Frame
    "app_name": ("消费券", "Consumption vouchers"),
    "nav_wallet": ("我的券包", "Wallet"),
    "nav_merchant": ("商户收银", "Merchant checkout"),
    "nav_ops": ("运营看板", "Operations"),
    "switch_lang": ("English", "中文"),
    "switch_lang_label": ("切换语言", "Change language"),
    "no_campaign": ("尚未导入活动。", "No campaign has been imported yet."),
    "yuan": ("{amount} 元", "¥{amount}"),
    "dash": ("—", "—"),
    # Signing in
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "signed_in_as": ("已登录：{subject}", "Signed in as {subject}"),
    "subject": ("用户标识", "User id"),
    "subject_hint": ("字母、数字或 _ . : -", "Letters, digits or _ . : -"),
    "subject_invalid": (
        "用户标识只能包含字母、数字和 _ . : -（1 至 64 个字符）。",
        "A user id is 1 to 64 letters, digits or _ . : -",
    ),
    "residency": ("居住身份", "Residency"),
    "residency_permanent": ("常住人口", "Permanent resident"),
    "residency_work": ("在本市工作", "Working here"),
    "residency_study": ("在本市学习", "Studying here"),
    "residency_visit": ("观光旅游", "Visiting"),
    "in_city": ("我现在在本市", "I am in the city now"),
    "dev_login_note": (
        "开发环境身份：仅供演示，任何人都可以此登录。",
        "Development identity provider: for demos only; anyone can sign in.",
    ),
    "no_dev_issuer": (
        "请通过您的钱包应用或城市身份认证登录。",
        "Sign in through your wallet app or the city's identity provider.",
    ),
    "session_expired": ("登录已过期，请重新登录。", "Your session has ended; sign in again."),
    # Citizen: the round
    "wallet_title": ("消费券 · 我的券包", "Vouchers · my wallet"),
    "round_name_en": ("{name}", "Round {number}"),
    "opens_at": ("开抢时间：{time}", "Opens: {time}"),
    "closes_at": ("领取截止：{time}", "Claims close: {time}"),
    "countdown_label": ("距开抢还有", "Opens in"),
    "round_open": ("正在抢券", "Open now"),
    "round_closed": ("本轮已结束", "This round has closed"),
    "no_round": ("目前没有可领取的轮次。", "No round is open or coming up."),
    "voucher_types": ("券种", "Voucher types"),
    "voucher_label": ("满{threshold}减{discount}", "¥{discount} off ¥{threshold}"),
    "remaining": ("剩余 {remaining} / {count} 张", "{remaining} of {count} left"),
    "per_person": ("每人限 {n} 张", "{n} per person"),
    "grab": ("抢券", "Grab"),
    "grab_waiting": ("未开始", "Not open yet"),
    "grab_sold_out": ("已抢光", "Sold out"),
    "grab_closed": ("已结束", "Closed"),
    "claim_issued": ("抢到了！券已放入券包。", "Got it! The voucher is in your wallet."),
    "claim_sold_out": ("手慢了，这种券已抢光。", "Too late: this voucher is sold out."),
    "claim_limit_reached": (
        "您已达到这种券的领取上限。",
        "You have reached the limit for this voucher.",
    ),
    "claim_not_open": ("还没开抢，请等到开抢时间。", "Not open yet: wait for the opening time."),
    "claim_closed": ("本轮领取已结束。", "Claiming has closed for this round."),
    "claim_not_eligible": ("您不符合本轮的领取条件。", "You are not eligible for this round."),
    "claim_unknown_type": ("没有这种券。", "There is no such voucher."),
    "claim_idempotency_conflict": (
        "请求冲突，请刷新页面后重试。",
        "Conflicting request: reload the page and try again.",
    ),
    "claim_failed": ("出错了，请稍后再试。", "Something went wrong; try again shortly."),
    "rate_limited": (
        "操作太频繁，请 {seconds} 秒后再试。",
        "Too many tries: wait {seconds} s and try again.",
    ),
    # Citizen: the wallet
    "wallet_heading": ("我的券包", "My vouchers"),
    "wallet_empty": ("券包还是空的。", "No vouchers yet."),
    "state_issued": ("可使用", "Ready to use"),
    "state_redeemed": ("已使用", "Used"),
    "state_expired": ("已过期", "Expired"),
    "valid_range": ("有效期 {start} 至 {end}", "Valid {start} to {end}"),
    "show_code": ("出示券码", "Show the code at the till"),
    "refresh_code": ("刷新券码", "Refresh the code"),
    "code_label": ("券码", "Code"),
    "code_expires": (
        "{time} 前有效，每分钟自动刷新；截图无效。",
        "Valid until {time}; refreshes every minute, so a screenshot will not work.",
    ),
    "qr_label": ("券码二维码", "QR code of the voucher code"),
    "code_unavailable": ("无法生成券码。", "Could not make a code for this voucher."),
    # Merchant checkout
    "checkout_title": ("商户收银台", "Merchant checkout"),
    "key_heading": ("收银终端密钥", "Till API key"),
    "key_id": ("密钥 ID", "Key id"),
    "key_secret": ("密钥", "Secret"),
    "key_note": (
        "密钥只留在本页，随每次请求交给服务器签名，服务器不保存。",
        "The key stays in this page and is sent with each request for the server to sign; "
        "it is never stored.",
    ),
    "order_heading": ("订单", "Order"),
    "order_amount": ("订单金额（元）", "Order amount (yuan)"),
    "order_promotion": ("本店优惠（元）", "Your own promotion (yuan)"),
    "customer_code": ("顾客券码（扫码或粘贴）", "Customer's code (scan or paste)"),
    "quote": ("试算", "Quote"),
    "amount_invalid": (
        "{field}：请填写数字，最多两位小数，如 12.50。",
        "{field}: digits with at most two decimals, e.g. 12.50.",
    ),
    "field_missing": ("请填写{field}。", "Fill in {field}."),
    "quote_ok": (
        "优惠 {discount} 元，顾客实付 {pays} 元。",
        "¥{discount} off: the customer pays ¥{pays}.",
    ),
    "quote_below_threshold": (
        "还差 {shortfall} 元才能使用这张券。",
        "Spend ¥{shortfall} more to use this voucher.",
    ),
    "quote_wrong_category": (
        "这张券不能在本店的券类使用。",
        "This voucher is not accepted in your shop's category.",
    ),
    "quote_not_yet_valid": ("这张券还未生效。", "This voucher is not valid yet."),
    "quote_expired": ("这张券已过期。", "This voucher has expired."),
    "quote_already_redeemed": ("这张券已被使用。", "This voucher has already been used."),
    "quote_merchant_not_enrolled": (
        "本店尚未获准受理消费券。",
        "Your shop is not approved to accept vouchers.",
    ),
    "quote_invalid_order": (
        "订单金额有误：本店优惠须小于订单金额。",
        "Invalid order: your promotion must be less than the order amount.",
    ),
    "quote_one_voucher_per_order": (
        "这笔订单已用过一张券，每单限用一张。",
        "This order already used a voucher: one per order.",
    ),
    "quote_not_found": ("找不到这张券。", "No such voucher."),
    "quote_no_voucher": ("没有可用的券。", "No voucher to use."),
    "quote_idempotency_conflict": (
        "请求冲突，请重新试算。",
        "Conflicting request: quote again.",
    ),
    "code_expired": (
        "券码已失效：请顾客刷新券码。",
        "The code has lapsed: ask the customer to refresh it.",
    ),
    "code_forged": ("这不是本平台签发的券码。", "This code was not issued by xfq."),
    "code_malformed": ("无法识别的券码。", "This is not a voucher code."),
    "key_refused": (
        "密钥被拒绝（{code}）：请核对密钥 ID 和密钥。",
        "The key was refused ({code}): check the key id and secret.",
    ),
    "request_refused": ("请求被拒绝（{code}）：{detail}", "Refused ({code}): {detail}"),
    "order_value": ("订单 {amount}", "Order {amount}"),
    "promotion_value": ("本店优惠 {amount}", "Your promotion {amount}"),
    "voucher_discount": ("消费券优惠", "Voucher discount"),
    "customer_pays": ("顾客实付", "Customer pays"),
    "redeem": ("确认核销", "Confirm and redeem"),
    "redeemed": ("核销成功。", "Redeemed."),
    "redemption_id": ("核销单号", "Redemption"),
    "refund_heading": ("退货退款", "Refund"),
    "refund_amount": ("退货金额（元）", "Value of goods returned (yuan)"),
    "refund": ("退款", "Refund"),
    "refund_restored": (
        "已退款，券已退回顾客券包。",
        "Refunded: the voucher is back in the customer's wallet.",
    ),
    "refund_lapsed": (
        "已退款，这张券不再退回（已过期或按活动规则）。",
        "Refunded: the voucher does not come back (expired, or by the campaign's rules).",
    ),
    "refund_kept": (
        "已部分退款，剩余金额仍满足门槛，券保持已使用。",
        "Partly refunded: the rest still meets the threshold, so the voucher stays used.",
    ),
    "refund_already_reversed": ("这笔核销已撤销。", "This redemption was already reversed."),
    "refund_invalid_refund": (
        "退货金额须大于 0 且不超过订单剩余金额。",
        "The refund must be more than 0 and at most what is left of the order.",
    ),
    "refund_not_found": ("找不到这笔核销。", "No such redemption."),
    "refund_idempotency_conflict": (
        "请求冲突，请刷新后重试。",
        "Conflicting request: reload and try again.",
    ),
    # Operators
    "ops_title": ("运营看板", "Operations dashboard"),
    "round_report": (
        "轮次报告（领取、核销、拉动比）",
        "Round report (claims, redemptions, leverage)",
    ),
    "operator_login": ("运营人员登录", "Operator sign-in"),
    "operator_required": ("需要运营人员或审计人员身份。", "An operator or auditor must sign in."),
    "role": ("角色", "Role"),
    "role_operator": ("运营人员", "Operator"),
    "role_auditor": ("审计人员", "Auditor"),
    "live_connected": ("实时更新中", "Live"),
    "live_reconnecting": ("连接中断，正在重连…", "Reconnecting…"),
    "clock_now": ("系统时间 {time}", "Server time {time}"),
    "stock_heading": ("库存", "Stock"),
    "rounds_heading": ("轮次", "Rounds"),
    "round_planned": ("未开始", "Not open yet"),
    "round_open_now": ("立即开抢", "Open now"),
    "round_cancel": ("停止抢券", "Stop claims"),
    "fair_lottery": ("摇号发放", "Lottery"),
    "fair_draw_at": ("开奖", "draw"),
    "fair_registered": ("已登记", "registered"),
    "fair_waiting_room": ("排队等候室", "Waiting room"),
    "fair_household": ("每户上限", "Per household"),
    "fair_quotas": ("配额", "Quotas"),
    "col_type": ("券种", "Voucher"),
    "col_category": ("券类", "Category"),
    "col_count": ("总量", "Count"),
    "col_remaining": ("剩余", "Remaining"),
    "col_sold_out_at": ("抢光时间", "Sold out at"),
    "claims_heading": ("申领", "Claims"),
    "claims_last_second": ("上一秒申领", "Claims in the last second"),
    "claims_peak": ("每秒峰值（近 60 秒）", "Peak per second (last 60 s)"),
    "claims_chart": ("近 60 秒每秒申领数", "Claims per second, last 60 s"),
    "answers_heading": ("申领结果", "Claim answers"),
    "col_answer": ("结果", "Answer"),
    "col_answers": ("次数", "Count"),
    "answer_issued": ("成功", "Issued"),
    "answer_sold_out": ("已抢光", "Sold out"),
    "answer_limit_reached": ("达上限", "Limit reached"),
    "answer_not_open": ("未开始", "Not open"),
    "answer_closed": ("已结束", "Closed"),
    "answer_not_eligible": ("不符合条件", "Not eligible"),
    "answer_unknown_type": ("无此券种", "Unknown type"),
    "answer_idempotency_conflict": ("请求冲突", "Idempotency conflict"),
    "redemptions_heading": ("核销（按券类和日期）", "Redemptions by category and day"),
    "redemptions_note": ("刷新页面更新。", "Reload the page to update."),
    "redemptions_empty": ("还没有核销。", "No redemptions yet."),
    "col_day": ("日期", "Day"),
    "col_redemptions": ("笔数", "Redemptions"),
    "col_discount": ("优惠金额", "Discounts"),
    "col_order_value": ("订单金额", "Order value"),
    "merchants_heading": ("商户", "Merchants"),
    "merchants_empty": ("还没有商户。", "No merchants yet."),
    "col_merchant": ("商户编号", "Merchant id"),
    "col_name": ("名称", "Name"),
    "col_status": ("状态", "Status"),
    "status_pending": ("待批准", "Pending"),
    "status_enrolled": ("已批准", "Enrolled"),
    "status_suspended": ("已暂停", "Suspended"),
    "enroll_heading": ("登记并批准商户", "Enroll and approve a merchant"),
    "merchant_id_hint": ("小写字母、数字、_ 或 -", "Lower-case letters, digits, _ or -"),
    "enroll": ("登记并批准", "Enroll and approve"),
    "enrolled_key": (
        "商户 {merchant} 已批准。收银终端密钥只显示这一次：",
        "Merchant {merchant} is approved. Its till key is shown this once:",
    ),
    # Operators: a merchant's till keys
    "col_keys": ("密钥", "Keys"),
    "keys_link": ("查看密钥", "Keys"),
    "keys_link_label": ("商户 {merchant} 的收银终端密钥", "Till keys of merchant {merchant}"),
    "keys_title": ("商户 {merchant} 的收银终端密钥", "Till keys of merchant {merchant}"),
    "keys_heading": ("密钥", "Keys"),
    "keys_empty": ("这个商户还没有密钥。", "This merchant has no key yet."),
    "col_issued": ("签发时间", "Issued"),
    "key_live": ("有效", "Works"),
    "key_revoked_at": ("已吊销（{time}）", "Revoked ({time})"),
    "key_revoke": ("吊销", "Revoke"),
    "key_revoke_label": ("吊销密钥 {key}", "Revoke key {key}"),
    "key_revoked_note": (
        "密钥 {key} 已吊销：所有服务进程最迟 {seconds} 秒后拒绝用它签名的请求。",
        "Key {key} is revoked: every server process refuses requests signed with it within "
        "{seconds} s.",
    ),
    "keys_note": (
        "密钥丢失或泄露时吊销它；商户的其他密钥照常使用。要换新密钥，先再次批准商户，再吊销旧密钥。",
        "Revoke a key that was lost or leaked; the merchant's other keys keep working. To "
        "rotate, approve the merchant again for a new key, then revoke the old one.",
    ),
}


@dataclass(frozen=True)
class Translator:
    """`t("key", name=value)` in one language."""

    lang: Lang

    def __call__(self, key: str, /, **values: object) -> str:
        zh, en = MESSAGES[key]
        text = zh if self.lang == "zh" else en
        return text.format(**values) if values else text

    @property
    def html_lang(self) -> str:
        return "zh-CN" if self.lang == "zh" else "en"

    @property
    def other(self) -> Lang:
        return "en" if self.lang == "zh" else "zh"


def known(key: str, fallback: str) -> str:
    """`key` if there is a message for it (API codes can grow), else `fallback`."""
    return key if key in MESSAGES else fallback


def pick_lang(query: str | None, cookie: str | None) -> Lang:
    """The query's choice, else the cookie's, else Chinese."""
    for choice in (query, cookie):
        if choice == "en":
            return "en"
        if choice == "zh":
            return "zh"
    return DEFAULT_LANG
