"""Campaign files (TOML): load and check them, and sum up their figures.

`load_campaign` and `parse_campaign` raise `xfq.domain.errors.SpecError` listing every problem
as `FILE:LINE: field.path: what is wrong`.
"""

from xfq.spec.load import load_campaign, parse_campaign
from xfq.spec.summary import CampaignSummary, RoundSummary, summarize_campaign, summary_json

__all__ = [
    "CampaignSummary",
    "RoundSummary",
    "load_campaign",
    "parse_campaign",
    "summarize_campaign",
    "summary_json",
]
