"""A Colab-like install: a fresh virtual environment holding Colab's versions of the lessons'
libraries (tests/colab_runtime.txt) and this machine's CPU PyTorch, then exactly the bootstrap
cell's install step, then `pip check`, PyTorch untouched, and lesson 01 run in smoke mode on
MiniSD. It installs a few hundred MB into a temporary folder, so it is marked slow:

    python -m pytest tests/test_colab_like.py      # about 3 minutes
"""
import json
import os
import subprocess
import venv

import pytest

from tests.test_setup import ROOT, _course_repo

pytestmark = pytest.mark.slow
RUN_LESSON = """
import json, sys
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=900, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
print(json.dumps([o.get("text", "") for c in nb.cells if c.cell_type == "code"
                  for o in c.outputs if o.get("output_type") == "stream"]))
"""


def _run(*command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            timeout=1200, **kwargs)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_the_bootstrap_installs_on_colabs_libraries_and_lesson_01_runs(tmp_path):
    env_dir = tmp_path / "colab"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "torch==2.13.0",
         "-r", ROOT / "tests" / "colab_runtime.txt")
    torch_before = _run(python, "-m", "pip", "show", "torch").stdout

    course = _course_repo(tmp_path)  # the course as the cell's git clone leaves it
    step = (f"import sys; sys.path.insert(0, {str(course)!r}); from tools import bootstrap; "
            f"bootstrap.install({str(course)!r})")
    installed = _run(python, "-c", step)
    print(installed.stdout)  # what the bootstrap upgraded (pytest -s shows it)
    assert "Installed." in installed.stdout
    _run(python, "-m", "pip", "check")
    assert _run(python, "-m", "pip", "show", "torch").stdout == torch_before

    env = {**os.environ, "COURSE_SMOKE": "1", "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf-home"), "COURSE_OUTPUT_DIR": str(tmp_path / "outputs"),
           "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    lesson = course / "notebooks" / "01_pipelines.ipynb"
    printed = "".join(json.loads(_run(python, "-c", RUN_LESSON, lesson, lesson.parent,
                                      env=env).stdout.strip().splitlines()[-1]))
    assert "Model track: MiniSD" in printed
