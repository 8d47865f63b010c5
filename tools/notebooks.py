"""Running a notebook headless: a fresh kernel, the course's environment, an outcome check.

Used by ``python course.py execute``, the GPU check, the benchmarks and the test suite (whose
convention checks on stored notebooks live in tests/harness.py).
"""
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from utils.device import SKIP_MARK  # what needs_gpu and needs_hub print for a skipped cell

ROOT = Path(__file__).resolve().parents[1]
# The calls through which a lesson meets the model track, its dtype or the GPU: a notebook that
# makes none of them runs the same on every track, in every dtype.
TRACK_CALLS = ("load_pipeline(", "get_dtype(", "needs_gpu(")


def uses_model_track(code: str) -> bool:
    """Whether notebook code (``notebook_code``) makes any of ``TRACK_CALLS``."""
    return any(call in code for call in TRACK_CALLS)


def notebook_code(path: Path) -> str:
    """The source of a stored notebook's code cells, joined."""
    cells = json.loads(Path(path).read_text())["cells"]
    return "\n".join(_source(c) for c in cells if c["cell_type"] == "code")


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


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


@contextlib.contextmanager
def own_output_dir(name: str):
    """Give the notebook run about to start an empty ``COURSE_OUTPUT_DIR`` of its own (a temporary
    folder, removed afterwards), so runs leave nothing in the repository and never continue each
    other's training. A ``COURSE_OUTPUT_DIR`` set already is kept: runs then share it, as a
    learner's reruns do."""
    if os.environ.get("COURSE_OUTPUT_DIR"):
        yield os.environ["COURSE_OUTPUT_DIR"]
        return
    with tempfile.TemporaryDirectory(prefix=f"{name}-outputs-") as folder:
        os.environ["COURSE_OUTPUT_DIR"] = folder
        try:
            yield folder
        finally:
            os.environ.pop("COURSE_OUTPUT_DIR", None)


def execute_notebook(path: Path, out_path: Path, smoke: bool, timeout: int = 1800,
                     env: dict | None = None, setup: str | None = None,
                     probe: str | None = None) -> dict:
    """Run a notebook top to bottom in a fresh kernel, save the executed copy, and measure it.

    Args:
        env: more environment for the kernel (a model track, a dtype, a Hub cache). Without a
            ``COURSE_OUTPUT_DIR`` here or in this process's environment, the run saves into a
            temporary folder of its own (``own_output_dir``).
        setup, probe: code run in the kernel before the first cell and after the last, left out
            of the saved copy; the probe prints one line of JSON, returned as ``probe``.

    Returns a dict: name, seconds, peak_rss_mb (of the kernel), error (None or a message), probe.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    error, peak, probed = None, float("nan"), None
    start = time.perf_counter()
    saved = dict(os.environ)
    os.environ.update(kernel_env(smoke))  # the kernel inherits this process's environment
    os.environ.update(env or {})
    try:
        with own_output_dir(path.stem), client.setup_kernel():
            try:
                if setup:
                    _run_hidden(client, nb, setup)
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            except CellExecutionError as err:
                error = str(err).strip().splitlines()[-1][:300]
            seconds = time.perf_counter() - start
            if probe:
                try:
                    probed = json.loads(_run_hidden(client, nb, probe).strip().splitlines()[-1])
                except (CellExecutionError, ValueError, IndexError) as err:
                    probed = {"error": str(err)[-300:]}
            try:
                rss = _run_hidden(client, nb, "import resource; "
                                  "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
                peak = int(rss.strip()) / 1024  # Linux reports KiB
            except Exception:  # no `resource` module (Windows): leave the figure out
                pass
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if error is None:
        problems = outcome_problems([c.outputs for c in nb.cells if c.cell_type == "code"])
        error = "; ".join(problems) or None
    nbformat.write(nb, out_path)
    return {"name": path.name, "seconds": seconds, "peak_rss_mb": peak, "error": error,
            "probe": probed}


def _run_hidden(client, nb, code: str) -> str:
    """Run ``code`` as a cell that is not kept in the notebook; return what it printed."""
    import nbformat

    cell = nbformat.v4.new_code_cell(code)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    finally:
        nb.cells.remove(cell)
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
