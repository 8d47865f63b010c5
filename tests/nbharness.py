"""pytest plugin around nbval: notebook kernels run in smoke mode with deprecations as errors,
each notebook gets a final "did something" check, and the run ends with a time table and the
list of cells skipped on this machine (with their reasons).

Every notebook runs in several configurations (``--notebook-configs``, default all of
``CONFIGS``): nbval's own run is ``mini-fp32`` (MiniSD as a CPU learner gets it), and this plugin
adds the same notebook with other settings in the kernel's environment, so the path a GPU learner
takes (SD 1.5 in fp16) fails here rather than in class. Each run's kernel saves its training runs
into an empty temporary folder of its own (``COURSE_OUTPUT_DIR``), unless one is set for the suite.
"""
import os
import tempfile
from collections import defaultdict

import pytest
from nbval.plugin import IPyNbCell, IPyNbFile

from tools.notebooks import (TRACK_CALLS, kernel_env, notebook_code, outcome_problems,
                             skipped_cells)

_seconds = defaultdict(float)
_skips = {}
_outputs = None  # a TemporaryDirectory holding every notebook run's COURSE_OUTPUT_DIR
# Each configuration: what it stands for, the kernel environment on top of the suite's own, and
# the calls a notebook must make for the configuration to change anything in it (a notebook that
# never loads a pipeline, asks for a dtype or a GPU runs the same in all of them, so only once).
# "sd15-fp16" is a Colab learner's track on the tiny SD 1.5 stand-in (python course.py standin),
# with the cells that need a GPU run too; "sd-folder" is a local SD-shaped folder with an empty
# Hub cache and no network, where cells that need a Hub repository must skip and say why.
CONFIGS = {
    "mini-fp32": ("MiniSD in float32, as on a CPU", {}, ()),
    "mini-fp16": ("MiniSD in float16, a GPU's dtype, on the CPU",
                  {"COURSE_MODEL": "mini", "COURSE_DTYPE": "float16"}, TRACK_CALLS),
    "sd15-fp16": ("the SD 1.5 stand-in from the Hub cache in float16, GPU cells included",
                  {"COURSE_MODEL": "sd15", "COURSE_DTYPE": "float16", "COURSE_GPU_CELLS": "1",
                   "HF_HUB_OFFLINE": "1", "HF_HOME": "<stand-in>"}, TRACK_CALLS),
    "sd-folder": ("a local SD-shaped folder, no Hub, an empty cache",
                  {"COURSE_MODEL": "<stand-in folder>", "COURSE_GPU_CELLS": "1",
                   "HF_HUB_OFFLINE": "1", "HF_HOME": "<empty>"}, ("needs_hub(",)),
}


def applies(name: str, code: str) -> bool:
    """Whether configuration ``name`` can change a notebook whose code cells are ``code``."""
    calls = CONFIGS[name][2]
    return not calls or any(call in code for call in calls)


def pytest_addoption(parser):
    parser.addoption("--notebook-configs", default=",".join(CONFIGS),
                     help=f"comma-separated notebook configurations to run (of {', '.join(CONFIGS)})")


def _configs(config) -> list[str]:
    names = [n.strip() for n in config.getoption("--notebook-configs").split(",") if n.strip()]
    unknown = set(names) - set(CONFIGS)
    if unknown:
        raise pytest.UsageError(f"--notebook-configs: unknown {sorted(unknown)}; known {list(CONFIGS)}")
    return names


def pytest_configure(config):
    smoke = os.environ.get("COURSE_SMOKE", "1") != "0"
    # nbval starts each kernel from this process, so the kernel inherits this environment.
    os.environ.update(kernel_env(smoke=smoke))
    if not smoke:  # full-mode cells take minutes: the limit `python course.py execute` gives them
        config.option.nbval_cell_timeout = max(float(config.option.nbval_cell_timeout), 1800)
    if not any(line.startswith("notebooks:") for line in config.getini("markers")):  # no pytest.ini
        config.addinivalue_line("markers", "notebooks: runs a whole notebook")


def pytest_unconfigure(config):
    if _outputs is not None:
        _outputs.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """A notebook's kernel starts with its first cell's setup: give that run an empty
    COURSE_OUTPUT_DIR of its own (removed at the end of the session), so runs leave nothing in the
    repository and never continue each other's training. A COURSE_OUTPUT_DIR set for the suite is
    kept: runs then share it, as a learner's reruns do."""
    global _outputs
    notebook = item.parent
    if not isinstance(notebook, IPyNbFile) or notebook.kernel is not None \
            or os.environ.get("COURSE_OUTPUT_DIR"):
        yield
        return
    _outputs = _outputs or tempfile.TemporaryDirectory(prefix="notebook-outputs-")
    run = f"{notebook.path.stem}-{getattr(notebook, 'configuration', 'mini-fp32')}-"
    os.environ["COURSE_OUTPUT_DIR"] = tempfile.mkdtemp(prefix=run, dir=_outputs.name)
    try:
        yield
    finally:
        del os.environ["COURSE_OUTPUT_DIR"]


def _stand_in_env(name: str) -> dict:
    """The kernel environment of configuration ``name``, with its placeholders filled in."""
    from tools import standin

    env = dict(CONFIGS[name][1])  # (what it is, environment, calls)
    if "<stand-in>" in env.values() or "<stand-in folder>" in env.values():
        home = standin.build("tiny")  # seconds; reused while up to date
        folder = standin.snapshot_folder(home, standin.SD15)
        env = {k: {"<stand-in>": str(home), "<stand-in folder>": str(folder)}.get(v, v)
               for k, v in env.items()}
    if env.get("HF_HOME") == "<empty>":
        standin.EMPTY_HOME.mkdir(parents=True, exist_ok=True)
        env["HF_HOME"] = str(standin.EMPTY_HOME)
    return env


class ConfiguredNotebook(IPyNbFile):
    """nbval's notebook collector, with the kernel started in one configuration's environment."""

    configuration = "mini-fp32"

    def setup(self):
        saved = dict(os.environ)
        os.environ.update(_stand_in_env(self.configuration))
        try:
            super().setup()  # starts the kernel, which inherits os.environ
        finally:
            os.environ.clear()
            os.environ.update(saved)


class NotebookConfigurations(pytest.File):
    """One notebook's runs in the configurations other than nbval's own (mini-fp32)."""

    def collect(self):
        code = notebook_code(self.path)
        for name in _configs(self.config):
            if name == "mini-fp32" or not applies(name, code):
                continue
            notebook = ConfiguredNotebook.from_parent(self, path=self.path,
                                                      name=f"{self.path.name}[{name}]",
                                                      nodeid=f"{self.notebook_id}::{name}")
            notebook.configuration = name
            yield notebook


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".ipynb" and parent.config.option.nbval_lax:
        notebook_id = "/".join(p for p in (parent.nodeid, file_path.name) if p not in ("", "."))
        configurations = NotebookConfigurations.from_parent(parent, path=file_path,
                                                            nodeid=f"{notebook_id}::configs")
        configurations.notebook_id = notebook_id
        return configurations
    return None


class NotebookOutcome(pytest.Item):
    """Fails when the notebook ran but produced (almost) nothing: no figure, no output, all skipped."""

    def __init__(self, *, cells, **kwargs):
        super().__init__(**kwargs)
        self.cells = cells

    def runtest(self):
        outputs = [cell.test_outputs or [] for cell in self.cells]
        _skips[self.parent.name] = skipped_cells(outputs)
        problems = outcome_problems(outputs)
        if problems:
            raise AssertionError(f"{self.parent.name} did too little: " + "; ".join(problems))

    def reportinfo(self):
        return self.path, None, f"{self.parent.name}::did something"


@pytest.hookimpl(tryfirst=True)  # before -m selects: every notebook item is marked by then
def pytest_collection_modifyitems(session, config, items):
    if "mini-fp32" not in _configs(config):  # nbval's own collector is the mini-fp32 run
        kept = [i for i in items if not (isinstance(i, IPyNbCell)
                                         and not isinstance(i.parent, ConfiguredNotebook))]
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
    by_notebook = defaultdict(list)
    for item in items:
        if isinstance(item, IPyNbCell):
            by_notebook[item.parent].append(item)
    for notebook, cells in by_notebook.items():
        last = items.index(cells[-1])
        items.insert(last + 1, NotebookOutcome.from_parent(notebook, name="did something", cells=cells))
    for item in items:
        if isinstance(item, (IPyNbCell, NotebookOutcome)):
            item.add_marker("notebooks")


def pytest_runtest_logreport(report):
    if ".ipynb::" in report.nodeid:  # a cell, or a notebook's "did something"
        _seconds[report.nodeid.rsplit("::", 1)[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _seconds:
        return
    write = terminalreporter.write_line
    terminalreporter.section("notebooks (smoke mode)" if os.environ.get("COURSE_SMOKE") == "1"
                             else "notebooks")
    for name, seconds in sorted(_seconds.items()):
        name = name.replace(".ipynb::", ".ipynb ") if "::" in name else f"{name} mini-fp32"
        write(f"{name:<60}{seconds:8.1f} s")
    write(f"{'total':<60}{sum(_seconds.values()):8.1f} s")
    for name, skips in sorted(_skips.items()):
        for index, reason in skips:
            write(f"skipped on this machine: {name} code cell {index}: {reason}")
