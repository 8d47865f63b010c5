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


