"""Read a campaign file: TOML syntax, then shape, then the rules between fields.

Each stage reports every problem it finds; a later stage runs only on what the earlier ones
accepted, because its rules need well-typed values.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from xfq.domain.campaign import Campaign
from xfq.domain.errors import SpecError
from xfq.spec.checks import check_campaign
from xfq.spec.convert import to_campaign
from xfq.spec.locate import LineIndex
from xfq.spec.model import CampaignFile
from xfq.spec.problems import from_validation_error, render

_TOML_PLACE = re.compile(
    r"\s*\((?:at line (?P<line>\d+), column (?P<column>\d+)|at end of document)\)$"
)


def load_campaign(path: Path) -> Campaign:
    """Load and check the campaign file at `path`; raise `SpecError` listing every problem."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SpecError([f"{path}: cannot read the file: {err.strerror or err}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise SpecError([f"{path}:{line}: the file is not UTF-8 text"]) from None
    return parse_campaign(text, str(path))


def parse_campaign(text: str, source: str) -> Campaign:
    """Check campaign-file `text`; `source` names it in messages (`source:LINE: ...`)."""
    data = _parse_toml(text, source)
    index = LineIndex(text)
    try:
        spec = CampaignFile.model_validate(data)
    except ValidationError as err:
        raise SpecError(render(from_validation_error(err), source, index)) from None
    problems = check_campaign(spec, ZoneInfo(spec.campaign.timezone))
    if problems:
        raise SpecError(render(problems, source, index))
    return to_campaign(spec)


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        place = _TOML_PLACE.search(message)
        line = max(1, len(text.splitlines()))
        if place is not None:
            message = message[: place.start()]
            if place["line"] is not None:
                line = int(place["line"])
                message += f" (column {place['column']})"
        raise SpecError([f"{source}:{line}: TOML syntax error: {message}"]) from None
