"""Figures and defaults quoted in the docs stay true to their records and to the code.

- Every figure in README's Benchmarks section, and in each row of docs/benchmarks.md's
  current results, is in a record under benchmarks/results/ (the row's own record).
- The scenario files say what a setting does, not how it scored: at most 15 comment lines
  about results in each (the issue's bound).
- A default quoted in README or docs/*.md (the [evaluate] table, a "default X" in README's
  scenario-values table, a default number of training steps) is the code's or the
  scenario files'.

The checks are functions of text, so the last tests show each one failing on stale text.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from aigc_run.scenario import Scenario

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BENCHMARKS_DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results"
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))
RECORD_FIELDS = {"source", "commit", "date", "machine", "threads", "seeds", "budget", "command"}
MAX_RESULT_COMMENTS = 15

# 1,694 or 0.60 or 26 or -0.004 (an unbiased KID can fall below 0), not the 8 of uint8,
# the 16 of bf16 or the 2 of 2e-4's exponent.
NUMBER = re.compile(r"(?<![\w.])(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)(?![\w])")
CODE_OR_LINK = re.compile(r"`[^`]*`|\[[^\]]*\]\([^)]*\)")
RESULTS_LINK = re.compile(r"\]\(\.\./benchmarks/results/([\w.-]+\.json)\)")


def quoted_numbers(text: str) -> list[str]:
    """The numbers in prose: code spans (commands, options) and links are left out."""
    return NUMBER.findall(CODE_OR_LINK.sub(" ", text))


def record_numbers(record: Any) -> list[float]:
    """Every number in a record, however deep (keys are names, not figures)."""
    if isinstance(record, bool):
        return []
    if isinstance(record, int | float):
        return [float(record)]
    values = record.values() if isinstance(record, dict) else record
    if isinstance(values, str) or not hasattr(values, "__iter__"):
        return []
    return [number for value in values for number in record_numbers(value)]


def in_record(quoted: str, numbers: list[float]) -> bool:
    """A quoted figure is a record's number as rounded for the text: 1.05 quotes 1.054."""
    text = quoted.replace(",", "")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return any(abs(round(n, decimals) - float(text)) < 1e-9 for n in numbers)


def section(markdown: str, heading: str) -> str:
    """The text under a heading (``## Name``), up to the next heading of its level."""
    level = heading.split(" ", 1)[0]
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^{level} |\Z)", markdown, re.M | re.S)
    assert match, f"no '{heading}' section"
    return match.group(1)


def load_records() -> dict[str, Any]:
    return {path.name: json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))}


# -- figures: README and docs/benchmarks.md against the records ---------------------------


def readme_figure_problems(readme: str, records: dict[str, Any]) -> list[str]:
    """README's Benchmarks section quotes no figure that no record holds."""
    numbers = [n for record in records.values() for n in record_numbers(record)]
    text = section(readme, "## Benchmarks")
    missing = [q for q in quoted_numbers(text) if not in_record(q, numbers)]
    return [f"README quotes {q}, in no record" for q in missing]


def table_rows(text: str) -> list[str]:
    """Data rows of the markdown tables in ``text`` (each table's header and rule left out)."""
    rows, previous = [], ""
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|[-:| ]+\|", line):
            if not previous.startswith("|"):
                previous = line  # a header: the rule follows it
                continue
            rows.append(line)
        previous = line
    return rows


def results_table_problems(doc: str, records: dict[str, Any]) -> list[str]:
    """Each row of the current results links a record that holds every figure in the row,
    and every record is linked."""
    problems, linked = [], set()
    for row in table_rows(section(doc, "## Current results")):
        names = RESULTS_LINK.findall(row)
        if len(set(names)) != 1 or names[0] not in records:
            problems.append(f"row links no record in benchmarks/results/: {row[:80]}")
            continue
        linked.add(names[0])
        numbers = record_numbers(records[names[0]])
        for quoted in quoted_numbers(row):
            if not in_record(quoted, numbers):
                problems.append(f"{names[0]} does not hold {quoted}: {row[:80]}")
    problems += [f"{name} is linked from no row" for name in sorted(set(records) - linked)]
    return problems


def test_readme_quotes_only_recorded_figures() -> None:
    records = load_records()
    assert readme_figure_problems(README.read_text(), records) == []


def test_the_results_table_matches_its_records() -> None:
    records = load_records()
    assert records, "no records under benchmarks/results/"
    assert results_table_problems(BENCHMARKS_DOC.read_text(), records) == []


def test_each_record_says_where_and_how_it_was_measured() -> None:
    for name, record in load_records().items():
        assert not RECORD_FIELDS - set(record), f"{name} lacks {RECORD_FIELDS - set(record)}"
        assert record["figures"], f"{name} has no figures"
        assert record["command"].startswith("python benchmarks/"), name


# -- scenario files: what a setting does, not how it scored -------------------------------

RESULT_WORDS = re.compile(
    r"\b(fid|kid|scored|scores?|ratios?|benchmarks?|trials?|tried|against|steps/s|images/s)\b",
    re.IGNORECASE,
)
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+")
GROUPED = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")  # 11,240 steps: a count someone measured


def comments(toml_text: str) -> list[str]:
    """Comment lines and trailing comments (a # inside a string is not one)."""
    found = []
    for line in toml_text.splitlines():
        inside = False
        for i, char in enumerate(line):
            if char == '"':
                inside = not inside
            elif char == "#" and not inside:
                found.append(line[i:])
                break
    return found


def about_results(comment: str) -> bool:
    """A result word, two decimal figures (a setting's comment gives one default at most),
    or a count written with thousands separators."""
    figures = len(DECIMAL.findall(comment))
    return bool(RESULT_WORDS.search(comment) or figures >= 2 or GROUPED.search(comment))


def result_comments(toml_text: str) -> list[str]:
    return [c for c in comments(toml_text) if about_results(c)]


def test_scenario_files_keep_results_out_of_their_comments() -> None:
    assert SCENARIOS
    for path in SCENARIOS:
        found = result_comments(path.read_text())
        assert len(found) <= MAX_RESULT_COMMENTS, (
            f"{path.name}: {len(found)} comment lines about results (at most "
            f"{MAX_RESULT_COMMENTS}); move them to docs/benchmarks.md:\n" + "\n".join(found)
        )


# -- defaults quoted in README and docs/*.md against the code -----------------------------

WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
# docs/benchmarks.md records past runs at named commits: the defaults it gives are theirs.
DEFAULT_DOCS = [README, *sorted(p for p in (ROOT / "docs").glob("*.md") if p != BENCHMARKS_DOC)]
DEFAULT_STEPS = re.compile(
    r"default[^.]{0,60}?\b(\d[\d,]*) (?:training )?steps|\b(\d[\d,]*) (?:training )?steps,? "
    r"(?:by default|as the default)",
    re.IGNORECASE,
)


def code_default(section_name: str, key: str) -> Any:
    config = Scenario.model_fields[section_name].annotation
    assert isinstance(config, type), section_name
    if section_name == "model" and key not in config.model_fields:  # a family's own key
        from aigc_run.models.gan import GanOptions
        from aigc_run.models.vae import VaeOptions

        config = GanOptions if key in GanOptions.model_fields else VaeOptions
    return config.model_fields[key].get_default(call_default_factory=True)


def evaluate_table_problems(evaluation_doc: str) -> list[str]:
    """docs/evaluation.md's `[evaluate]` table gives each key's default as the code has it."""
    problems = []
    for row in table_rows(section(evaluation_doc, "## Settings (`[evaluate]`)")):
        cells = [c.strip() for c in row.strip("|").split("|")]
        key, quoted = cells[0].strip("`"), cells[-1]
        actual = code_default("evaluate", key)
        if count := re.fullmatch(r"all (\w+) below", quoted):
            ok = WORDS.get(count.group(1)) == len(actual)
        elif quoted.startswith("`"):
            ok = tomllib.loads(f"v = {quoted.strip('`')}")["v"] == actual
        else:
            ok = float(quoted.replace(",", "")) == actual
        if not ok:
            problems.append(f"docs/evaluation.md: evaluate.{key} default {quoted}, code {actual!r}")
    return problems


def readme_value_problems(readme: str) -> list[str]:
    """A "default X" in README's scenario-values table is the code's default for that key."""
    problems = []
    for row in table_rows(section(readme, "### Scenario values")):
        name = row.strip("|").split("|")[0].strip().strip("`")
        for key, quoted in re.findall(r"`(\w+)` \([^()]*?default ([^,;)]+)", row):
            actual = code_default(name, key)
            if tomllib.loads(f"v = {quoted.strip('`')}")["v"] != actual:
                problems.append(f"README: {name}.{key} default {quoted}, code {actual!r}")
    return problems


def default_steps_problems(text: str, where: str, steps: set[int]) -> list[str]:
    """A number of training steps called the default is a shipped scenario's train.steps."""
    problems = []
    for match in DEFAULT_STEPS.finditer(" ".join(text.split())):
        quoted = int((match.group(1) or match.group(2)).replace(",", ""))
        if quoted not in steps:
            problems.append(f"{where}: '{match.group(0)}', the scenarios train {sorted(steps)}")
    return problems


def scenario_steps() -> set[int]:
    return {tomllib.loads(p.read_text())["train"]["steps"] for p in SCENARIOS}


def test_docs_quote_the_evaluate_defaults_of_the_code() -> None:
    assert evaluate_table_problems((ROOT / "docs" / "evaluation.md").read_text()) == []


def test_readme_quotes_the_scenario_defaults_of_the_code() -> None:
    assert readme_value_problems(README.read_text()) == []


def test_docs_quote_the_scenarios_default_steps() -> None:
    steps = scenario_steps()
    for path in DEFAULT_DOCS:
        assert default_steps_problems(path.read_text(), path.name, steps) == []


# -- each check fails on stale text --------------------------------------------------------


def test_the_checks_catch_stale_figures_and_defaults() -> None:
    records = load_records()
    stale_readme = "## Benchmarks\n\nThe ratio was 0.8137 on clothing (`--minutes 10`).\n"
    assert readme_figure_problems(stale_readme, records) == ["README quotes 0.8137, in no record"]
    # a minus sign is part of a figure, a hyphen between two numbers is not
    signed = quoted_numbers("KID -0.0045 (-0.01–0.02), seeds 3-5")
    assert signed == ["-0.0045", "-0.01", "0.02", "3", "5"]

    doc = BENCHMARKS_DOC.read_text()
    changed = results_table_problems(doc.replace("| 89.9 |", "| 97.9 |"), records)
    assert any("does not hold 97.9" in p for p in changed)
    unlinked = doc.replace("(../benchmarks/results/adam_fused.json)", "(adam.json)")
    assert any("linked from no row" in p for p in results_table_problems(unlinked, records))

    old_comment = (
        "# on clothing, 10 minutes on 2 CPU cores: 97.6 and 23.0 against 136.0 and 57.7\n"
        "# tried: hinge 98.5, R1 102.9; batch 16: 11,240 steps\n"
    )
    assert len(result_comments(old_comment * 8)) == 16
    assert result_comments('lr = 4e-4  # G\'s learning rate\nx = "#FID" # a colour\n') == []

    evaluation = (ROOT / "docs" / "evaluation.md").read_text()
    assert evaluate_table_problems(evaluation.replace("| 1000 |", "| 500 |")) != []
    assert evaluate_table_problems(evaluation.replace("all seven below", "all six below")) != []
    assert readme_value_problems(README.read_text().replace("default 1e6", "default 1e5")) != []
    stale = "`aigc-run scenario medical --data x.npz` (defaults, 1,300 steps): the evaluation"
    assert default_steps_problems(stale, "docs", {2500}) != []
