"""The GPU check: every lesson in full mode on the SD 1.5 track and on MiniSD in fp16, on one
CUDA GPU with no network, with each lesson's wall time, peak GPU memory and result written into
bench/REPORT.md (section "GPU check") and bench/gpu_check.json.

    python course.py gpu-check                          # on a CUDA machine
    python course.py gpu-check --wheels DIR             # first install what it needs from DIR
    python course.py gpu-check --fetch-wheels DIR       # where PyPI is reachable: fill DIR

SD 1.5 is the full-size stand-in (``python course.py standin --size full``): SD 1.5's exact
classes, configs, files and tokenizer with RANDOM weights, so the time and memory are SD 1.5's
and nothing is downloaded, while what its images show means nothing. Training on the SD track
is capped at ``--sd-train-steps`` steps (``COURSE_SD_TRAIN_STEPS``) to fit the time; the report
says so. A lesson fails the check when a cell raises or when its peak reserved GPU memory is
above ``--limit-gb`` (14: a T4 has 15 GB, less the CUDA context).

On a machine without a GPU, ``--cpu`` runs the same check (tiny stand-in, fp16 emulated on the
CPU, GPU cells run anyway); the tests do that to keep the check itself working.
"""
import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

# Only the standard library at the top: with --wheels, this module runs before the course's
# libraries (numpy, diffusers, ...) are installed.
ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
REPORT = BENCH / "REPORT.md"
RESULTS = BENCH / "gpu_check.json"
REQUIREMENTS = ROOT / "requirements-gpu.txt"
SECTION = "## GPU check"
NEXT_SECTION = "## Quality and sampler reports"  # the GPU section goes just before it

# Run in every kernel before the lesson's first cell: a lesson that resets the peak itself
# (lesson 00 measures its memory levers so) must not hide the notebook's own peak.
PEAK_SETUP = """\
import torch as _torch
_course_peak = {"allocated": 0, "reserved": 0}
if _torch.cuda.is_available():
    _reset_peak = _torch.cuda.reset_peak_memory_stats
    def _keep_peak_then_reset(device=None):
        _course_peak["allocated"] = max(_course_peak["allocated"],
                                        _torch.cuda.max_memory_allocated(device))
        _course_peak["reserved"] = max(_course_peak["reserved"],
                                       _torch.cuda.max_memory_reserved(device))
        _reset_peak(device)
    _torch.cuda.reset_peak_memory_stats = _keep_peak_then_reset
"""
PEAK_PROBE = """\
import json as _json
if _torch.cuda.is_available():
    _torch.cuda.reset_peak_memory_stats()  # folds the last stretch into _course_peak
    print(_json.dumps({k: v / 1e9 for k, v in _course_peak.items()}))
else:
    print(_json.dumps({"allocated": None, "reserved": None}))
"""


def runs(home: Path, empty: Path, sd_train_steps: int, cpu: bool) -> dict[str, dict]:
    """The two runs of a lesson: SD 1.5's track (from the stand-in cache) and MiniSD in fp16
    (no Hub at all, so cells that need SD 1.5 say why they skip: the SD run covers them)."""
    sd = {"COURSE_MODEL": "sd15", "HF_HOME": str(home), "HF_HUB_OFFLINE": "1",
          "COURSE_SD_TRAIN_STEPS": str(sd_train_steps)}
    mini = {"COURSE_MODEL": "mini", "COURSE_DTYPE": "float16", "HF_HOME": str(empty),
            "HF_HUB_OFFLINE": "1"}
    if cpu:  # a GPU's dtype and its cells, emulated
        sd.update(COURSE_DTYPE="float16", COURSE_GPU_CELLS="1")
    return {"sd15": sd, "mini-fp16": mini}


def verdict(row: dict, limit_gb: float) -> str:
    """"ok", or why the lesson fails the check (an error, or a peak above the limit)."""
    if row.get("error"):
        return f"FAILED: {row['error']}"
    reserved = row.get("peak_reserved_gb")
    if reserved is not None and reserved > limit_gb:
        return f"FAILED: peak {reserved:.1f} GB reserved, above {limit_gb:g} GB"
    return "ok"


def check(notebooks: list[Path], size: str = "full", smoke: bool = False, cpu: bool = False,
          sd_train_steps: int = 50, limit_gb: float = 14.0, timeout: int = 1800) -> dict:
    """Run the check and return its results (what ``write`` puts in the report)."""
    import torch

    from tools import standin
    from tools.notebooks import execute_notebook, notebook_code, uses_model_track

    if not (cpu or torch.cuda.is_available()):
        raise SystemExit("No CUDA GPU is visible to PyTorch. Run the check on a GPU machine, or "
                         "pass --cpu to run it here with a tiny stand-in (a test of the check).")
    started = time.time()
    print(f"building the {size} stand-in (once; reused while up to date) ...", flush=True)
    home = standin.build(size, standin.default_home(size))
    empty = standin.EMPTY_HOME
    empty.mkdir(parents=True, exist_ok=True)
    out_dir = ROOT / "build" / "gpu-check"
    out_dir.mkdir(parents=True, exist_ok=True)
    environments = runs(home, empty, sd_train_steps, cpu)
    rows = []
    for path in notebooks:
        # A lesson with no model track runs the same either way: once.
        names = list(environments) if uses_model_track(notebook_code(path)) else ["mini-fp16"]
        for name in names:
            print(f"  {path.name} [{name if len(names) > 1 else 'no model track'}] ...", flush=True)
            result = execute_notebook(path, out_dir / f"{path.stem}.{name}.ipynb", smoke=smoke,
                                      timeout=timeout, env=environments[name],
                                      setup=PEAK_SETUP, probe=PEAK_PROBE)
            peak = result["probe"] or {}
            row = {"notebook": path.name, "run": name if len(names) > 1 else "any",
                   "seconds": round(result["seconds"], 1),
                   "peak_allocated_gb": _round(peak.get("allocated")),
                   "peak_reserved_gb": _round(peak.get("reserved")),
                   "error": result["error"]}
            row["result"] = verdict(row, limit_gb)
            print(f"    {row['seconds']:.0f} s, peak {_gb(row['peak_reserved_gb'])} reserved: "
                  f"{row['result']}", flush=True)
            rows.append(row)
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": _machine(), "stand_in": size, "mode": "smoke" if smoke else "full",
            "sd_train_steps": sd_train_steps, "limit_gb": limit_gb, "cpu": cpu,
            "minutes": round((time.time() - started) / 60, 1), "rows": rows,
            "passed": all(r["result"] == "ok" for r in rows)}


def _round(value):
    return None if value is None else round(value, 2)


def _gb(value) -> str:
    return "n/a" if value is None else f"{value:.2f} GB"


def _machine() -> dict:
    import diffusers
    import torch
    import transformers

    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name}, {props.total_memory / 1e9:.0f} GB"
    return {"gpu": gpu, "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}


def section(results: dict) -> str:
    """The report's "GPU check" section, in Markdown."""
    m = results["machine"]
    where = m["gpu"] or "no GPU: the CPU, fp16 emulated (a test of the check, not a GPU figure)"
    stand_in = ("the full-size STAND-IN: SD 1.5's architecture and files with random weights, so "
                "time and memory are SD 1.5's and the pictures mean nothing"
                if results["stand_in"] == "full" else
                "the tiny STAND-IN: SD 1.5's structure and files with small widths and random "
                "weights, so neither time nor memory is SD 1.5's")
    lines = [SECTION, "",
             f"Written by `{results['command']}` on {results['date']} in {results['minutes']} min: "
             f"{where}; Python {m['python']}, torch {m['torch']} (CUDA {m['cuda']}), diffusers "
             f"{m['diffusers']}, transformers {m['transformers']}.", "",
             f"Every lesson in {results['mode']} mode, in a fresh kernel, with no network: on the "
             f"SD 1.5 track ({stand_in}), SD-track training capped at "
             f"{results['sd_train_steps']} steps; and on "
             "MiniSD in fp16, where cells that need SD 1.5 skip (the SD run covers them). A "
             "lesson with no model track runs once. Peaks are PyTorch's, over the whole "
             f"notebook; the check fails above {results['limit_gb']:g} GB reserved (a T4 has "
             "15 GB).", "",
             "| notebook | run | seconds | peak allocated | peak reserved | result |",
             "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['notebook']} | {r['run']} | {r['seconds']:.0f} | "
                     f"{_gb(r['peak_allocated_gb'])} | {_gb(r['peak_reserved_gb'])} | "
                     f"{r['result']} |")
    total = sum(r["seconds"] for r in results["rows"]) / 60
    peaks = [r["peak_reserved_gb"] for r in results["rows"] if r["peak_reserved_gb"] is not None]
    lines += ["", f"- {len(results['rows'])} runs, {total:.1f} min of notebooks; highest peak "
              f"{_gb(max(peaks)) if peaks else 'n/a'} reserved; "
              f"{'PASSED' if results['passed'] else 'FAILED'}."]
    return "\n".join(lines) + "\n"


def write(results: dict, report: Path = REPORT, json_path: Path = RESULTS) -> None:
    """Save the results, and put the section into the report in place of an older one."""
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    text = report.read_text() if report.exists() else "# Benchmark report\n\n"
    new = section(results)
    if SECTION in text:  # replace it, up to the next section
        before, rest = text.split(SECTION, 1)
        cut = rest.find("\n## ")
        text = before + new + ("\n" + rest[cut + 1:] if cut >= 0 else "")
    elif NEXT_SECTION in text:
        before, after = text.split(NEXT_SECTION, 1)
        text = before + new + "\n" + NEXT_SECTION + after
    else:
        text = text.rstrip("\n") + "\n\n" + new
    report.write_text(text)


# ---------------------------------------------------------------- the wheels it needs
def install_wheels(folder: Path) -> None:
    """Install what ``requirements-gpu.txt`` names from ``folder`` alone (no index, no network);
    an installed PyTorch (a CUDA build) is kept."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links",
                    str(folder), "-r", str(REQUIREMENTS)], check=True)


PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]


def fetch_wheels(folder: Path, python_version: str) -> list[str]:
    """Download into ``folder`` every wheel ``requirements-gpu.txt`` needs for CPython
    ``python_version`` on x86-64 Linux, except PyTorch and what it brings (the GPU machine has
    them), plus the open-clip-torch wheel the stand-in's tokenizer is built from."""
    folder.mkdir(parents=True, exist_ok=True)
    resolved = folder / "resolved.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
                    "--report", str(resolved), "-r", str(REQUIREMENTS)], check=True)
    packages = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]
                for item in json.loads(resolved.read_text())["install"]}
    keep = sorted(set(packages) - _closure("torch", packages))
    pins = [f"{name}=={packages[name]['version']}" for name in keep]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    from tools.standin import BPE_WHEEL

    for pin in pins + [BPE_WHEEL]:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", "--python-version", python_version,
                        "--implementation", "cp", *platforms, "-d", str(folder), pin], check=True)
    (folder / "wheels.txt").write_text("\n".join(pins) + "\n")
    return pins


def _closure(root: str, packages: dict) -> set[str]:
    """``root`` and everything it requires, transitively, among the resolved ``packages`` (with
    the extras each requirement asks for: torch needs ``cuda-toolkit[cublas, ...]``)."""
    from packaging.requirements import Requirement

    def name_of(text: str) -> str:
        return text.lower().replace("_", "-")

    seen, todo = set(), [(name_of(root), "")]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen or name not in packages:
            continue
        seen.add((name, extra))
        for text in packages[name].get("requires_dist") or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
                continue
            wanted = name_of(requirement.name)
            todo += [(wanted, "")] + [(wanted, e) for e in requirement.extras]
    return {name for name, _ in seen}


def main(argv=None, lessons: list[Path] = ()) -> int:
    """The command line; ``lessons``: the notebooks to check when none are named (the CLI's list)."""
    parser = argparse.ArgumentParser(prog="python course.py gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="default: every lesson, in order")
    parser.add_argument("--size", choices=("tiny", "full"), help="stand-in size (default full; "
                        "tiny with --cpu)")
    parser.add_argument("--smoke", action="store_true", help="lessons in smoke mode (tiny sizes)")
    parser.add_argument("--cpu", action="store_true",
                        help="run without a GPU: tiny stand-in, fp16 emulated (tests the check)")
    parser.add_argument("--sd-train-steps", type=int, default=50,
                        help="cap on SD-track training steps (default 50)")
    parser.add_argument("--limit-gb", type=float, default=14.0,
                        help="fail a lesson whose peak reserved GPU memory is above this")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--wheels", type=Path, help="first install requirements-gpu.txt from "
                        "this folder of wheels, with no network")
    parser.add_argument("--fetch-wheels", type=Path, metavar="DIR",
                        help="only download the wheels the check needs into DIR (needs PyPI)")
    parser.add_argument("--python-version", default="3.12",
                        help="the GPU machine's Python, for --fetch-wheels (default 3.12)")
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    if args.fetch_wheels:
        pins = fetch_wheels(args.fetch_wheels, args.python_version)
        print(f"{len(pins) + 1} wheels in {args.fetch_wheels}: bring the folder to the GPU machine "
              f"and run `python course.py gpu-check --wheels {args.fetch_wheels}` there.")
        return 0
    if args.wheels:
        install_wheels(args.wheels)
    from tools import standin

    if args.wheels:
        standin.WHEELS = args.wheels  # the BPE merges come from the open-clip-torch wheel there
    paths = [Path(p).resolve() for p in args.notebooks] or list(lessons)
    size = args.size or ("tiny" if args.cpu else "full")
    results = check(paths, size=size, smoke=args.smoke, cpu=args.cpu,
                    sd_train_steps=args.sd_train_steps, limit_gb=args.limit_gb,
                    timeout=args.timeout)
    given = argv if argv is not None else sys.argv[1:]
    results["command"] = " ".join(["python course.py gpu-check", *given])
    write(results, args.report, args.report.with_name(RESULTS.name))
    print(section(results))
    return 0 if results["passed"] else 1
