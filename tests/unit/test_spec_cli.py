"""`xfq spec check`: figures on success, every problem and exit code 2 on a bad file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner, Result

from xfq.spec.cli import spec_app

EXAMPLE = Path(__file__).parents[2] / "examples" / "taiyuan-2022" / "campaign.toml"


def run(*args: str) -> Result:
    app = typer.Typer()
    app.add_typer(spec_app, name="spec")  # as the main CLI mounts it
    return CliRunner().invoke(app, ["spec", *args], env={"COLUMNS": "120"})


def line_of(text: str, needle: str) -> int:
    return 1 + next(n for n, line in enumerate(text.splitlines()) if needle in line)


def test_check_prints_round_figures() -> None:
    result = run("check", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for figure in ["126,700", "2,545,900", "107,250", "1,434,000", "3,780", "738,000"]:
        assert figure in out
    for figure in ["163,500", "12,400", "210,400", "满2000减300", "23,250", "930,000"]:
        assert figure in out
    assert "2022-03-05 10:00:00 Asia/Shanghai (UTC+08:00)" in out
    assert "last usable day  2022-03-11" in out
    assert "last usable day  2022-03-04" in out
    assert "1 per type, 1 per category, 4 per round" in out
    assert "round, retail, home, catering, online (all match)" in out


def test_check_json_has_the_figures() -> None:
    result = run("check", "--json", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    r6 = next(r for r in data["rounds"] if r["id"] == "r6")
    assert (r6["count"], r6["value_fen"], r6["value_yuan"]) == (126_700, 254_590_000, "2545900.00")
    assert r6["last_usable_day"] == "2022-03-11"
    by_category = {c["id"]: (c["count"], c["value_yuan"]) for c in r6["categories"]}
    assert by_category == {
        "retail": (107_250, "1434000.00"),
        "home": (3_780, "738000.00"),
        "catering": (3_270, "163500.00"),
        "online": (12_400, "210400.00"),
    }
    assert [t["value_fen"] for t in r6["types"]] == [
        93_000_000,
        50_400_000,
        59_400_000,
        14_400_000,
        16_350_000,
        16_000_000,
        5_040_000,
    ]


def test_check_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        text.replace("budget_yuan = 2545900", "budget_yuan = 2545800").replace(
            "number = 6", "number = 5"
        ),
        encoding="utf-8",
    )
    result = run("check", str(bad))
    assert result.exit_code == 2
    assert result.stdout == ""
    number_line, budget_line = line_of(text, "number = 6"), line_of(text, "budget_yuan =")
    assert (
        f"{bad}:{number_line}: rounds[1].number: round number 5 is used more than once"
        in result.stderr
    )
    assert f"{bad}:{budget_line}: rounds[1].budget_yuan: states 2,545,800 yuan" in result.stderr
    assert "2 problems; the campaign was not loaded." in result.stderr
    assert "Traceback" not in result.output


def test_check_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = run("check", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2
    assert "cannot read the file" in result.stderr
    assert "Traceback" not in result.output


def test_bracketed_text_in_problems_is_printed_verbatim(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = EXAMPLE.read_text(encoding="utf-8")
    bad.write_text(text.replace('category = "catering"', 'category = "[bold]x"'), "utf-8")
    result = run("check", str(bad))
    assert result.exit_code == 2
    assert '"[bold]x" is not a valid id' in result.stderr
