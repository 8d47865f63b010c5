"""Checks of a stored notebook's form: no outputs, badge, bootstrap, slide metadata, no secrets.

Running notebooks (and the outcome check on an executed one: it ran, it showed something, and
every cell it skipped said why) is ``tools.notebooks``; its names are imported here for the tests.
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import course  # noqa: E402  (REPO_SLUG, BOOTSTRAP, badge)
from tools.notebooks import (SKIP_MARK, _source, execute_notebook, kernel_env,  # noqa: E402,F401
                             outcome_problems, skipped_cells)

SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}
NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")
SECRETS = {
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    "OpenAI-style key": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


def convention_problems(path: Path, nb: dict | None = None) -> list[str]:
    """Everything wrong with a stored notebook's form; empty when it follows the conventions."""
    path = Path(path)
    nb = nb if nb is not None else json.loads(path.read_text())
    problems = []
    if not NAME.match(path.name):
        problems.append(f"name {path.name!r} is not NN_lowercase_words.ipynb")
    cells = nb.get("cells", [])
    if not cells:
        return problems + ["the notebook has no cells"]
    title = cells[0]
    if title.get("cell_type") != "markdown" or not re.search(r"^# \S", _source(title), re.M):
        problems.append("the first cell is not a markdown cell with a '# Title'")
    elif course.badge(path.name) not in _source(title):
        problems.append("the title cell lacks this notebook's Open-in-Colab and Open-in-Kaggle "
                        "badges (run: python course.py stamp)")
    code = [c for c in cells if c.get("cell_type") == "code"]
    if not code or _source(code[0]) != course.BOOTSTRAP:
        problems.append("the first code cell is not the standard bootstrap (run: python course.py stamp)")
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"cell {i} carries stored outputs or an execution count (clear them)")
        slide = cell.get("metadata", {}).get("slideshow", {}).get("slide_type")
        if slide not in SLIDE_TYPES:
            problems.append(f"cell {i} has no slide metadata (slideshow.slide_type one of {sorted(SLIDE_TYPES)})")
        for what, pattern in SECRETS.items():
            if pattern.search(_source(cell)):
                problems.append(f"cell {i} contains what looks like a {what}: use notebook_login() or Colab secrets")
    headings = {line.strip().lower() for c in cells if c.get("cell_type") == "markdown"
                for line in _source(c).splitlines() if line.startswith("## ")}
    for needed in ("## summary", "## exercises"):
        if needed not in headings:
            problems.append(f"no '{needed[3:].title()}' section")
    return problems + form_problems(cells)


SMOKE_SWITCH = re.compile(r"SETTINGS\.(pick|smoke)\b")
MAX_TEACHING_CHECKS = 3


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def form_problems(cells: list[dict]) -> list[str]:
    """The lesson form: sizes chosen in one cell, at most three checks in the teaching, the rest in
    one checks cell at the end, and exercises with solutions (inline "Try it" and at the end)."""
    problems = []
    code = [(i, c) for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    sizes = [i for i, c in code if "sizes" in _tags(c)]
    checks = [i for i, c in code if "checks" in _tags(c)]
    if len(sizes) > 1:
        problems.append(f"cells {sizes} are tagged 'sizes': choose every size in one cell")
    if len(checks) != 1:
        problems.append("no single code cell tagged 'checks' (the lesson's checks, at the end)"
                        if not checks else f"cells {checks} are tagged 'checks': use one")
    elif checks[0] != code[-1][0]:
        problems.append(f"the checks cell (cell {checks[0]}) is not the last code cell")
    asserts = 0
    for i, cell in code:
        if "sizes" in _tags(cell) or "checks" in _tags(cell):
            continue
        if SMOKE_SWITCH.search(_source(cell)):
            problems.append(f"cell {i} switches on smoke mode (SETTINGS.pick/smoke): choose sizes "
                            "in the cell tagged 'sizes', check in the cell tagged 'checks'")
        asserts += len(re.findall(r"^\s*assert\b", _source(cell), re.M))
    if asserts > MAX_TEACHING_CHECKS:
        problems.append(f"{asserts} asserts in teaching cells: keep at most {MAX_TEACHING_CHECKS} "
                        "'Check yourself' ones and move the rest to the cell tagged 'checks'")
    markdown = [(i, _source(c)) for i, c in enumerate(cells) if c.get("cell_type") == "markdown"]
    tries = [i for i, text in markdown if re.search(r"^### Try it\b", text, re.M)]
    if len(tries) < 2:
        problems.append(f"{len(tries)} inline '### Try it' exercises: a lesson has at least two")
    for i in tries:  # its solution: in one of the next two markdown cells, collapsed
        following = [text for j, text in markdown if j > i][:2]
        if not any("<details>" in text and "<summary>Solution" in text for text in following):
            problems.append(f"the 'Try it' in cell {i} has no <details><summary>Solution ... "
                            "block in the markdown cells after it")
    start = next((j for j, text in markdown if re.search(r"^## Exercises", text, re.M)), None)
    after = "".join(text for j, text in markdown if start is not None and j >= start)
    if start is not None and "<summary>Solution" not in after:
        problems.append("the end-of-lesson exercises have no <details><summary>Solution blocks")
    return problems


def numbering_problems(paths: list[Path]) -> list[str]:
    """Each lesson number is used once, and names the lesson the curriculum gives it
    (``course.CURRICULUM``: 00_setup_and_gpus, 01_pipelines, ...)."""
    problems, seen = [], {}
    for path in map(Path, paths):
        match = NAME.match(path.name)
        if not match:
            continue
        number = int(match.group(1))
        if number in seen:
            problems.append(f"lesson number {number:02d} is used twice: {seen[number]} and {path.name}")
        seen[number] = path.name
        expected = (f"{number:02d}_{course.CURRICULUM[number]}.ipynb"
                    if number < len(course.CURRICULUM) else None)
        if path.name != expected:
            problems.append(f"{path.name}: the curriculum (course.CURRICULUM) names lesson {number:02d} "
                            f"{expected or 'nothing'}")
    return problems


