"""Problems found in a campaign file, in words an operator can act on, each with its line.

Pydantic's own messages ("Input should be a valid integer") are translated here; nothing else
in xfq shows them.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from xfq.spec.locate import LineIndex, Loc
from xfq.spec.model import CampaignFile


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str


_TEMPLATES: dict[str, str] = {
    "missing": "is required but missing",
    "int_type": "must be a whole number, not {input}",
    "string_type": "must be text in quotes, not {input}",
    "bool_type": "must be true or false, not {input}",
    "datetime_type": "must be a date-time like 2022-03-05T10:00:00 (no quotes), not {input}",
    "date_type": "must be a date like 2022-03-05 (no quotes), not {input}",
    "list_type": "must be an array like [...], not {input}",
    "dict_type": "must be a table, not {input}",
    "model_type": "must be a table, not {input}",
    "model_attributes_type": "must be a table, not {input}",
    "greater_than_equal": "must be at least {ge}, not {input}",
    "less_than_equal": "must be at most {le}, not {input}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s), not {actual_length}",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters long",
    "string_pattern_mismatch": (
        "{input} is not a valid id: use lowercase letters a-z, digits, '_' and '-'"
    ),
    "enum": "must be one of {expected}, not {input}",
}


def toml_text(value: object) -> str:
    """Show a parsed value the way it is written in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return repr(value)


def from_validation_error(error: ValidationError) -> list[Problem]:
    return [_translate(details) for details in error.errors(include_url=False)]


def _translate(details: ErrorDetails) -> Problem:
    loc: Loc = tuple(details["loc"])
    kind = details["type"]
    ctx: dict[str, Any] = dict(details.get("ctx") or {})
    if kind == "value_error":
        return Problem(loc, str(ctx["error"]))
    if kind == "extra_forbidden":
        return Problem(loc, _unknown_key_message(loc))
    template = _TEMPLATES.get(kind)
    if template is None:
        return Problem(loc, details["msg"])
    return Problem(loc, template.format_map({**ctx, "input": toml_text(details["input"])}))


def _unknown_key_message(loc: Loc) -> str:
    allowed = keys_at(loc[:-1])
    message = f"unknown key {str(loc[-1])!r}"
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        return f"{message}; did you mean {close[0]!r}?"
    return f"{message}; allowed here: {', '.join(allowed)}"


def keys_at(loc: Loc) -> list[str]:
    """The keys the file format allows in the table at `loc`."""
    shape: Any = CampaignFile
    for step in loc:
        shape = _step_into(shape, step)
    if not (isinstance(shape, type) and issubclass(shape, BaseModel)):
        return []
    return [field.alias or name for name, field in shape.model_fields.items()]


def _step_into(shape: Any, step: str | int) -> Any:
    if isinstance(shape, type) and issubclass(shape, BaseModel):
        by_key = {f.alias or name: f.annotation for name, f in shape.model_fields.items()}
        return _unwrap(by_key.get(str(step)))
    # list[X] is entered with an index, dict[str, X] with a key: both lead to the last argument.
    args = typing.get_args(shape)
    return _unwrap(args[-1]) if args else None


def _unwrap(shape: Any) -> Any:
    """Strip `Annotated[...]` and `| None` to reach the type the file's value must have."""
    if typing.get_origin(shape) is typing.Annotated:
        return _unwrap(typing.get_args(shape)[0])
    if isinstance(shape, types.UnionType) or typing.get_origin(shape) is typing.Union:
        options = [arg for arg in typing.get_args(shape) if arg is not type(None)]
        return _unwrap(options[0]) if len(options) == 1 else shape
    return shape


def dotted(loc: Loc) -> str:
    """("rounds", 1, "types", 2, "count") -> "rounds[1].types[2].count"."""
    text = ""
    for step in loc:
        text += f"[{step}]" if isinstance(step, int) else f".{step}"
    return text.lstrip(".") or "(top level)"


def render(problems: list[Problem], source: str, index: LineIndex) -> list[str]:
    """`FILE:LINE: field.path: what is wrong`, in the order of the lines of the file."""
    placed = [(index.line_of(p.loc), dotted(p.loc), p.message) for p in problems]
    placed.sort(key=lambda item: item[0])
    return [f"{source}:{line}: {path}: {message}" for line, path, message in placed]
