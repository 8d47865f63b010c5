"""pytest plugin around nbval: notebook kernels run in smoke mode with deprecations as errors,
each notebook gets a final "did something" check, and the run ends with a time table and the
list of cells skipped on this machine (with their reasons)."""
import os
from collections import defaultdict

import pytest
from nbval.plugin import IPyNbCell

from tests.harness import kernel_env, outcome_problems, skipped_cells

_seconds = defaultdict(float)
_skips = {}


def pytest_configure(config):
    # nbval starts each kernel from this process, so the kernel inherits this environment.
    os.environ.update(kernel_env(smoke=os.environ.get("COURSE_SMOKE", "1") != "0"))


class NotebookOutcome(pytest.Item):
    """Fails when the notebook ran but produced (almost) nothing: no figure, no output, all skipped."""

    def __init__(self, *, cells, **kwargs):
        super().__init__(**kwargs)
        self.cells = cells

    def runtest(self):
        outputs = [cell.test_outputs or [] for cell in self.cells]
        _skips[self.parent.path.name] = skipped_cells(outputs)
        problems = outcome_problems(outputs)
        if problems:
            raise AssertionError(f"{self.parent.path.name} did too little: " + "; ".join(problems))

    def reportinfo(self):
        return self.path, None, f"{self.parent.path.name}::did something"


def pytest_collection_modifyitems(session, config, items):
    by_notebook = defaultdict(list)
    for item in items:
        if isinstance(item, IPyNbCell):
            by_notebook[item.parent].append(item)
    for notebook, cells in by_notebook.items():
        last = items.index(cells[-1])
        items.insert(last + 1, NotebookOutcome.from_parent(notebook, name="did something", cells=cells))


def pytest_runtest_logreport(report):
    if report.nodeid.endswith(".ipynb") or ".ipynb::" in report.nodeid:
        _seconds[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _seconds:
        return
    write = terminalreporter.write_line
    terminalreporter.section("notebooks (smoke mode)" if os.environ.get("COURSE_SMOKE") == "1"
                             else "notebooks")
    for name, seconds in sorted(_seconds.items()):
        write(f"{name:<50}{seconds:8.1f} s")
    write(f"{'total':<50}{sum(_seconds.values()):8.1f} s")
    for name, skips in sorted(_skips.items()):
        for index, reason in skips:
            write(f"skipped on this machine: {name} code cell {index}: {reason}")
