"""Notebook checks shared by the test suite and ``python course.py execute``.

Two kinds of check: conventions read from the stored notebook (no outputs, badge, bootstrap,
slide metadata, no secrets) and outcome checks on an executed notebook (it ran, it showed
something, and every cell it skipped said why).
"""
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import course  # noqa: E402  (REPO_SLUG, BOOTSTRAP, badge)

SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}
SKIP_MARK = "Skipped on this machine:"
NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")
SECRETS = {
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    "OpenAI-style key": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


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
        problems.append("the title cell lacks this notebook's Open-in-Colab badge (run: python course.py stamp)")
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


def outcome_problems(cell_outputs: list[list[dict]]) -> list[str]:
    """Did an executed notebook do something? ``cell_outputs``: each code cell's output list."""
    with_output = [outs for outs in cell_outputs if outs]
    figures = sum("image/png" in o.get("data", {}) for outs in cell_outputs for o in outs)
    skipped = sum(any(SKIP_MARK in _text(o) for o in outs) for outs in cell_outputs)
    problems = []
    if len(with_output) < 3:
        problems.append(f"only {len(with_output)} code cells produced any output")
    if figures == 0:
        problems.append("no figure was shown")
    if cell_outputs and 2 * skipped >= len(cell_outputs):
        problems.append(f"{skipped} of {len(cell_outputs)} code cells were skipped on this machine")
    return problems


def _text(output: dict) -> str:
    if output.get("output_type") == "stream":
        return _source({"source": output.get("text", "")})
    return _source({"source": output.get("data", {}).get("text/plain", "")})


def skipped_cells(cell_outputs: list[list[dict]]) -> list[tuple[int, str]]:
    """(code cell index, reason) for every cell that said it was skipped on this machine."""
    found = []
    for i, outs in enumerate(cell_outputs):
        for o in outs:
            for line in _text(o).splitlines():
                if SKIP_MARK in line:
                    found.append((i, line.split(SKIP_MARK, 1)[1].strip()))
    return found


def kernel_env(smoke: bool) -> dict:
    """Environment for a notebook kernel: smoke mode as asked, deprecations as errors."""
    env = dict(os.environ, COURSE_SMOKE="1" if smoke else "0", COURSE_STRICT_WARNINGS="1",
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def execute_notebook(path: Path, out_path: Path, smoke: bool, timeout: int = 1800) -> dict:
    """Run a notebook top to bottom in a fresh kernel, save the executed copy, and measure it.

    Returns a dict: name, seconds, peak_rss_mb (of the kernel), error (None or a message).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    error, peak = None, float("nan")
    start = time.perf_counter()
    saved = dict(os.environ)
    os.environ.update(kernel_env(smoke))  # the kernel inherits this process's environment
    try:
        with client.setup_kernel():
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            except CellExecutionError as err:
                error = str(err).strip().splitlines()[-1][:300]
            seconds = time.perf_counter() - start
            probe = nbformat.v4.new_code_cell(
                "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
            nb.cells.append(probe)
            try:
                client.execute_cell(probe, len(nb.cells) - 1)
                peak = int(probe.outputs[0]["text"].strip()) / 1024  # Linux reports KiB
            except Exception:  # no `resource` module (Windows): leave the figure out
                pass
            nb.cells.remove(probe)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if error is None:
        problems = outcome_problems([c.outputs for c in nb.cells if c.cell_type == "code"])
        error = "; ".join(problems) or None
    nbformat.write(nb, out_path)
    return {"name": path.name, "seconds": seconds, "peak_rss_mb": peak, "error": error}
