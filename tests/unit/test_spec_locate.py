"""Locations in parsed TOML data map back to the lines that wrote them."""

from __future__ import annotations

import pytest

from xfq.spec.locate import LineIndex, Loc

TEXT = """\
# a comment with [brackets] and key = value
[campaign]
id = "c"                      # 3
"quoted.key" = 1              # 4
dotted.inner = 2              # 5

[[rounds]]                    # 7
id = "r1"
validity = { kind = "fixed", from = 2022-03-05, through = 2022-03-11 }
opens_at = 2022-03-05 10:00:00
note = '''
[[not a header]]
'''
residencies = [
  "permanent",                # 15
  "work",                     # 16
]

[rounds.limits]               # 19
per_type = 1

[[rounds.types]]              # 22
id = "t1"

[[rounds.types]]              # 25
id = "t2"
count = 3                     # 27

[[rounds]]                    # 29
id = "r2"

[rounds.stated.retail]        # 32
count = 5

[[rounds.types]]              # 35
id = "t3"
"""


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("campaign",), 2),
        (("campaign", "id"), 3),
        (("campaign", "quoted.key"), 4),
        (("campaign", "dotted", "inner"), 5),
        (("rounds", 0), 7),
        (("rounds", 0, "validity", "through"), 9),
        (("rounds", 0, "validity", "missing"), 9),
        (("rounds", 0, "opens_at"), 10),
        (("rounds", 0, "residencies", 0), 15),
        (("rounds", 0, "residencies", 1), 16),
        (("rounds", 0, "limits", "per_type"), 20),
        (("rounds", 0, "limits", "per_round"), 19),  # missing: the table's header
        (("rounds", 0, "types", 1), 25),
        (("rounds", 0, "types", 1, "count"), 27),
        (("rounds", 0, "types", 1, "channel"), 25),
        (("rounds", 1, "id"), 30),
        (("rounds", 1, "stated", "retail", "count"), 33),
        (("rounds", 1, "types", 0, "id"), 36),
        (("checkout", "threshold_base"), 1),  # nothing of it in the file
    ],
)
def test_line_of(loc: Loc, line: int) -> None:
    assert LineIndex(TEXT).line_of(loc) == line


def test_a_multi_line_string_hides_what_looks_like_a_header() -> None:
    index = LineIndex(TEXT)
    assert index.line_of(("not a header",)) == 1
    assert index.line_of(("rounds", 0, "note")) == 11
