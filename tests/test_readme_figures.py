"""Every measured figure in README.md's results and performance sections is in a benchmarks/results/*.json file.

What it checks: the README sections named in SECTIONS ("## Results on real FER2013", "## Performance"), their
tables and prose alike, code blocks and `inline code` left out (commands and options are not figures). In a
table's body, every number outside the first column (which names the row) is a figure; elsewhere a figure is a
number written as a measurement: with a unit (65.17%, 1.93x, 528 s, 1,450 images/s, 224 MB, 16.55:1,
trials/hour, faces/s), with decimals (131.0), or with thousands separators (25,517). Each must equal, at the
precision the README writes it, some number under "figures" in a file that `benchmarks/results.py` wrote
(a percentage may be stored as a fraction: 65.17% matches 0.6517). So editing a figure in those sections without
a results file that holds it fails here.

Not checked: a line saying "to be measured", "not measured" or "unmeasured" (a figure to come, with its command),
and goals (a number after "goal", "≥", "≤", "at least" or "under"). Plain small integers in prose ("2 cores",
"3 seeds") describe a setting, not a measurement, and are not figures here.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
SECTIONS = ("## Results on real FER2013", "## Performance")
UNMEASURED = ("to be measured", "not measured", "unmeasured")
GOAL_WORDS = ("goal", "≥", "≤", "at least", "under")
UNIT = r"(?:%|x\b|:1\b|\s?(?:s|MB|images/s|faces/s|trials/hour)\b)"
# A number not inside a word, a version (25.10.3) or a range (85/15), with its sign where it has one (a gain:
# −0.25%, +0.47%; a hyphen is a range's, as in 64-65%); a figure when it has a unit, decimals or thousands separators.
NUMBER = re.compile(rf"(?<![\w.,/-])(?P<sign>[−+])?(?P<value>\d{{1,3}}(?:,\d{{3}})+|\d+)(?P<decimals>\.\d+)?(?P<unit>{UNIT})?"
                    r"(?![\w/]|\.\d|,\d)")


def section_lines(readme: str, heading: str) -> list[str]:
    """The lines of one `## ` section, without code blocks and inline code."""
    lines = readme.splitlines()
    assert heading in lines, f"README.md has no section {heading!r} (rename it in SECTIONS too)"
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    kept, in_code = [], False
    for line in lines[start:end]:
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code:
            kept.append(re.sub(r"`[^`]*`", "", line))
    return kept


def table_body_rows(lines: list[str]) -> set[int]:
    """Indices of the lines that are rows of a table's body (not its header or its |---| line)."""
    separators = {i for i, line in enumerate(lines) if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip())}
    return {i for i, line in enumerate(lines) if line.lstrip().startswith("|")
            and i not in separators and i + 1 not in separators}


def figures_in(line: str, table_row: bool = False) -> list[tuple[float, int, bool, str]]:
    """(value, decimals, is a percentage, text) of every figure on a line, goals and unmeasured lines left out;
    in a table row, every number after the first cell."""
    if any(marker in line for marker in UNMEASURED):
        return []
    if table_row:
        line = "|" + line.strip().strip("|").split("|", 1)[-1] if line.count("|") > 2 else ""
    found = []
    for match in NUMBER.finditer(line):
        decimals, unit = match["decimals"] or "", match["unit"] or ""
        if not (table_row or decimals or unit or "," in match["value"]):
            continue
        if any(word in line[max(0, match.start() - 15):match.start()] for word in GOAL_WORDS):
            continue
        sign = -1.0 if match["sign"] == "−" else 1.0
        found.append((sign * float(match["value"].replace(",", "") + decimals), max(len(decimals) - 1, 0),
                      unit == "%", match.group(0)))
    return found


def recorded_numbers() -> list[float]:
    """Every number under "figures" in every results file."""
    numbers: list[float] = []

    def walk(value) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers.append(float(value))

    for path in sorted(RESULTS_DIR.glob("*.json")):
        walk(json.loads(path.read_text())["figures"])
    return numbers


def is_recorded(value: float, decimals: int, percent: bool, numbers: list[float]) -> bool:
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    scales = (1.0, 100.0) if percent else (1.0,)
    return any(abs(number * scale - value) <= tolerance for number in numbers for scale in scales)


def test_every_readme_figure_is_in_a_results_file():
    readme = (REPO / "README.md").read_text()
    numbers = recorded_numbers()
    missing, checked = [], 0
    for heading in SECTIONS:
        lines = section_lines(readme, heading)
        rows = table_body_rows(lines)
        for index, line in enumerate(lines):
            for value, decimals, percent, text in figures_in(line, index in rows):
                checked += 1
                if not is_recorded(value, decimals, percent, numbers):
                    missing.append(f"{heading}: {text!r} in: {line.strip()[:100]}")
    assert checked, "no figure found in the README's results sections: the parser or the headings changed"
    assert not missing, "figures in README.md that no benchmarks/results/*.json holds:\n" + "\n".join(missing)


@pytest.mark.parametrize("line, expected", [
    ("| ResNet18 | run 6fevr4sx, 85/15 split | 65.31% (best epoch) | `fer` 25.10.3 |", ["65.31%"]),
    ("528 s of training (1,450 images/s), 224 MB an epoch, 1.93x, imbalance 16.55:1, mean 131.0",
     ["528 s", "1,450 images/s", "224 MB", "1.93x", "16.55:1", "131.0"]),
    ("2 cores, 3x3 convs, 48x48 crops, AVX-512, bf16, 3 seeds x 10 minutes", []),
    ("| `cpu-bf16` | goal: ≥ 64% | at least 10x |", []),
    ("| trainer | to be measured: 1,143 images/s |", []),
    ("gain −0.25% [−0.98%, +0.47%] over 64-65%", ["−0.25%", "−0.98%", "+0.47%"]),
])
def test_what_counts_as_a_figure(line, expected):
    assert [text.strip() for *_, text in figures_in(line)] == expected


def test_every_number_of_a_table_body_counts_but_its_first_cell():
    table = ["| search | wall time | trials per node |", "|---|---|---|", "| 3-node cluster (2 CPUs) | 168 s | 2 + 2 |"]
    assert table_body_rows(table) == {2}
    assert [text.strip() for *_, text in figures_in(table[2], table_row=True)] == ["168 s", "2", "2"]


def test_an_edited_figure_fails(tmp_path):
    """The check is not vacuous: a figure one hundredth off a recorded one is not found."""
    numbers = recorded_numbers()
    assert is_recorded(65.62, 2, True, numbers)  # cpu_search.sh's ensemble, cpu-bf16 seed 0
    assert not is_recorded(65.63, 2, True, numbers) and not is_recorded(65.61, 2, True, numbers)
