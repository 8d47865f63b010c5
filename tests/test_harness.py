"""The notebook harness itself: it must accept the course's notebooks and reject bad ones."""
import copy
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import course
from tests.harness import ROOT, convention_problems, numbering_problems, outcome_problems

NOTEBOOKS = course.notebook_paths()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_course_notebooks_follow_the_conventions(path):
    assert convention_problems(path) == []


def test_course_notebooks_are_numbered_by_the_curriculum():
    assert NOTEBOOKS, "the course has no notebooks"
    assert numbering_problems(NOTEBOOKS) == []


def test_stamp_is_idempotent():
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        assert course.stamp(copy.deepcopy(nb), path.name) == nb, f"run: python course.py stamp ({path.name})"


def _lesson(*code: str, name: str = "00_example.ipynb") -> tuple[str, dict]:
    """A minimal well-formed lesson with the given code cells after the bootstrap."""
    def cell(kind, source):
        extra = {"outputs": [], "execution_count": None} if kind == "code" else {}
        return {"cell_type": kind, "metadata": {"slideshow": {"slide_type": "slide"}},
                "source": source, **extra}

    def tagged(kind, source, tag):
        made = cell(kind, source)
        made["metadata"]["tags"] = [tag]
        return made

    solution = "<details><summary>Solution</summary>\n\n```python\nprint(2)\n```\n</details>"
    cells = [cell("markdown", f"# Example\n{course.badge(name)}"), cell("code", course.BOOTSTRAP),
             tagged("code", "# Sizes: ...\nN = SETTINGS.pick(8, 2)", "sizes")]
    cells += [cell("code", src) for src in code]
    for n in (1, 2):
        cells += [cell("markdown", f"### Try it: change {n}"), cell("code", "print(N)"),
                  cell("markdown", solution)]
    cells.append(cell("markdown", f"## Summary\nIt ran.\n\n## Exercises\n1. Run it.\n{solution}"))
    cells += [tagged("markdown", "## Checks", "checks"), tagged("code", "assert N", "checks")]
    return name, {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}},
                  "nbformat": 4, "nbformat_minor": 5}


def test_a_well_formed_lesson_passes():
    name, nb = _lesson("print(1)")
    assert convention_problems(Path(name), nb) == []


@pytest.mark.parametrize("defect, expected", [
    (lambda nb: nb["cells"][2].update(outputs=[{"output_type": "stream", "name": "stdout", "text": "1"}]),
     "carries stored outputs"),
    (lambda nb: nb["cells"][2].update(execution_count=3), "carries stored outputs"),
    (lambda nb: nb["cells"][1].update(source=course.BOOTSTRAP + "\nimport numpy"), "standard bootstrap"),
    (lambda nb: nb["cells"][2].update(metadata={}), "cell 2 has no slide metadata"),
    (lambda nb: nb["cells"][0].update(source="# Example"), "Open-in-Colab and Open-in-Kaggle badges"),
    (lambda nb: nb["cells"][0].update(source="Example, no title"), "'# Title'"),
    (lambda nb: nb["cells"][2].update(source="token = 'hf_" + "a1B2" * 9 + "'"), "Hugging Face token"),
    (lambda nb: nb["cells"].pop(-3), "no 'Summary' section"),
    (lambda nb: nb["cells"][3].update(source="x = SETTINGS.pick(3, 1)"), "cell 3 switches on smoke"),
    (lambda nb: nb["cells"][3].update(source="assert 1\nassert 2\nassert 3\nassert 4"),
     "4 asserts in teaching cells"),
    (lambda nb: nb["cells"].pop(), "no single code cell tagged 'checks'"),
    (lambda nb: nb["cells"].insert(4, nb["cells"][-1]), "cells [4, 13] are tagged 'checks'"),
    (lambda nb: nb["cells"][3]["metadata"].update(tags=["sizes"]), "cells [2, 3] are tagged 'sizes'"),
    (lambda nb: nb["cells"][6].update(source="No solution here."), "has no <details><summary>Solution"),
    (lambda nb: [nb["cells"].pop(i) for i in (9, 8, 7)], "1 inline '### Try it' exercises"),
    (lambda nb: nb["cells"][-3].update(source="## Summary\nIt ran.\n\n## Exercises\n1. Run it."),
     "end-of-lesson exercises have no"),
])
def test_defects_are_caught(defect, expected):
    name, nb = _lesson("print(1)")
    defect(nb)
    assert any(expected in problem for problem in convention_problems(Path(name), nb)), expected


def test_duplicate_and_misnamed_lesson_numbers_are_caught():
    first, second = (f"{n:02d}_{course.CURRICULUM[n]}.ipynb" for n in (0, 1))
    assert not numbering_problems([Path(first), Path(second)])
    assert any("used twice" in p for p in numbering_problems([Path(first), Path("00_other.ipynb")]))
    assert any("names lesson 01" in p for p in numbering_problems([Path("01_vae.ipynb")]))
    assert any("names lesson 99 nothing" in p for p in numbering_problems([Path("99_extra.ipynb")]))


def test_a_notebook_that_did_nothing_is_caught():
    figure = {"output_type": "display_data", "data": {"image/png": "...", "text/plain": "<Figure>"}}
    text = {"output_type": "stream", "name": "stdout", "text": "ok\n"}
    skip = {"output_type": "stream", "name": "stdout", "text": "Skipped on this machine: x (needs a GPU)\n"}
    assert outcome_problems([[text], [text], [figure]]) == []
    assert "no figure was shown" in outcome_problems([[text], [text], [text]])
    assert any("produced any output" in p for p in outcome_problems([[], [], [figure]]))
    assert any("skipped" in p for p in outcome_problems([[text], [skip], [skip], [figure]]))


FIGURE = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"
DEPRECATED = (
    "import torch\nfrom utils.track import tiny_random_pipeline\npipe = tiny_random_pipeline()\n"
    "pipe('a red seven', num_inference_steps=1, height=32, width=32,\n"
    "     callback=lambda step, t, latents: None, callback_steps=1)"
)
# Each run's kernel gets an empty output folder of its own, outside the repository (get_dtype
# makes both configurations run it: a folder shared between runs would hold the first's marker).
OWN_OUTPUTS = (
    "import os\nfrom pathlib import Path\nfrom utils import get_dtype\nprint(get_dtype())\n"
    f"folder = Path(os.environ['COURSE_OUTPUT_DIR'])\nassert {str(ROOT)!r} not in str(folder)\n"
    "assert folder.is_dir() and not any(folder.iterdir()), folder\n(folder / 'marker').touch()"
)


@pytest.mark.notebooks
def _nbval(folder: Path, configs: str) -> dict[str, list[str]]:
    """Run nbval with the course's plugin over the notebooks in ``folder`` in a pytest of its own;
    returns each failing notebook's failures, as "cell name: message"."""
    report = folder / "report.xml"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("COURSE_OUTPUT_DIR", None)
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.nbharness", "--nbval-lax", "-p", "no:cacheprovider",
         "--notebook-configs", configs,
         "--rootdir", str(folder), "-c", os.devnull, f"--junitxml={report}", str(folder)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    failed = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            notebook = case.get("classname", "").split(".ipynb")[0]
            failed.setdefault(notebook, []).append(f"{case.get('name')}: " + (problem.get("message") or "")
                                                   + (problem.text or ""))
    return failed


@pytest.mark.notebooks
def test_nbval_run_fails_bad_notebooks_and_passes_a_good_one(tmp_path):
    """One pytest-in-pytest run: nbval with the course's plugin over four small notebooks."""
    notebooks = {
        "good": _lesson("print('hello')", "print(2 + 2)", FIGURE),
        # get_dtype(...) makes the mini-fp16 configuration apply to it too
        "raises": _lesson("from utils import get_dtype\nprint(get_dtype())",
                          "raise ValueError('broken lesson')", FIGURE),
        "deprecated": _lesson("print('hello')", DEPRECATED, FIGURE),
        "nothing": _lesson("x = 1", "y = 2"),
        "outputs": _lesson(OWN_OUTPUTS, "print(folder)", FIGURE),
    }
    for key, (_, nb) in notebooks.items():
        (tmp_path / f"{key}.ipynb").write_text(json.dumps(nb))
    failed = _nbval(tmp_path, "mini-fp32,mini-fp16")
    assert "good" not in failed, failed.get("good")
    assert sum("broken lesson" in m for m in failed.get("raises", [])) == 2, failed  # both configs
    assert any("FutureWarning" in m and "callback" in m for m in failed.get("deprecated", [])), failed
    assert any("did too little" in m for m in failed.get("nothing", [])), failed
    assert "outputs" not in failed, failed.get("outputs")


@pytest.mark.notebooks
def test_a_lesson_that_stops_showing_its_effect_fails_in_its_checks_cell(tmp_path):
    """Lesson 03 with its latent walk broken (every step decodes the first image's latents) still
    runs top to bottom without an error; its checks cell, the last code cell, is what fails, and it
    names the claim the lesson no longer shows."""
    nb = json.loads((ROOT / "notebooks" / "03_vae.ipynb").read_text())
    walk = "walk = torch.stack([(1 - w) * z_a + w * z_b for w in weights])"
    (cell,) = [c for c in nb["cells"] if walk in "".join(c["source"])]
    cell["source"] = "".join(cell["source"]).replace(walk, "walk = torch.stack([z_a for w in weights])")
    (tmp_path / "03_vae.ipynb").write_text(json.dumps(nb))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]  # nbval numbers code cells
    assert "checks" in code[-1]["metadata"].get("tags", [])
    failed = _nbval(tmp_path, "mini-fp32")
    (failure,) = failed.get("03_vae", [])
    assert failure.startswith(f"Cell {len(code) - 1}:"), failure[:300]
    assert "the walk's two ends should decode to the two round trips" in failure, failure[-600:]


def test_a_notebook_run_saves_into_a_folder_of_its_own(tmp_path, monkeypatch):
    from tools.notebooks import own_output_dir

    monkeypatch.delenv("COURSE_OUTPUT_DIR", raising=False)
    with own_output_dir("08_lesson") as folder:
        assert os.environ["COURSE_OUTPUT_DIR"] == folder and Path(folder).is_dir()
        assert not Path(folder).is_relative_to(ROOT)
        (Path(folder) / "run").mkdir()
    assert not Path(folder).exists() and "COURSE_OUTPUT_DIR" not in os.environ
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))  # chosen: kept, and shared by runs
    with own_output_dir("08_lesson") as folder:
        (Path(folder) / "run").mkdir()
    assert (tmp_path / "run").is_dir() and os.environ["COURSE_OUTPUT_DIR"] == str(tmp_path)


def test_each_configuration_runs_the_notebooks_it_can_change():
    from tests.nbharness import CONFIGS, applies

    assert applies("mini-fp32", "x = 1")  # nbval's own run: every notebook
    assert applies("sd15-fp16", "pipe = load_pipeline()") and not applies("sd15-fp16", "x = 1")
    assert applies("mini-fp16", "dtype = get_dtype(device)")
    assert applies("sd-folder", "if needs_hub(repo):") and not applies("sd-folder", "load_pipeline()")
    from tools.notebooks import notebook_code

    lessons = {p.name: notebook_code(p) for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    on_sd = [name for name, code in lessons.items() if applies("sd15-fp16", code)]
    assert len(on_sd) >= 7 and "01_pipelines.ipynb" in on_sd and set(CONFIGS) >= {"sd15-fp16"}
