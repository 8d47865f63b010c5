"""Write constraints.txt from the course's own requirements, in a clean virtual environment.

    python course.py constraints             the versions now pinned, for what the course installs
    python course.py constraints --upgrade   the newest versions the requirement ranges admit (run
                                             the whole suite afterwards: the pins say it passed)

A fresh virtual environment gets this machine's PyTorch version, then requirements.txt and
requirements-test.txt, under the current constraints unless ``--upgrade``; what it then holds,
less PyTorch and its CUDA libraries (a machine keeps its own build), becomes constraints.txt.
Nothing the course does not install can end up pinned. Standard library only.
"""
import argparse
import importlib.metadata as metadata
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from tools.layout import ROOT

CONSTRAINTS = ROOT / "constraints.txt"
REQUIREMENTS = ["requirements.txt", "requirements-test.txt"]
LEFT_OUT = re.compile(r"^(torch|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==", re.IGNORECASE)
HEADER = """\
# Exact versions the test suite last passed with (python course.py test installs under these).
# Written by `python course.py constraints` in a clean virtual environment holding only
# requirements.txt and requirements-test.txt ({python}); PyTorch and its CUDA libraries are left
# out, so a machine keeps its own build.
"""


def frozen(upgrade: bool, echo=print) -> list[str]:
    """``pip freeze`` of a fresh environment holding the course's requirements."""
    torch = metadata.version("torch").split("+")[0]
    with tempfile.TemporaryDirectory() as tmp:
        venv.create(tmp, with_pip=True)
        python = str(Path(tmp) / ("Scripts" if sys.platform == "win32" else "bin") / "python")
        install = [python, "-m", "pip", "install", "-q", f"torch=={torch}"]
        for name in REQUIREMENTS:
            install += ["-r", str(ROOT / name)]
        if not upgrade:
            install += ["-c", str(CONSTRAINTS)]
        which = "the newest versions" if upgrade else "the current pins"
        echo(f"Installing the course's requirements into a clean environment ({which}, "
             f"torch {torch}) ...")
        subprocess.run(install, check=True)
        subprocess.run([python, "-m", "pip", "check"], check=True)
        out = subprocess.run([python, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                             capture_output=True, text=True).stdout
    return sorted((line for line in out.splitlines() if "==" in line and not LEFT_OUT.match(line)),
                  key=str.lower)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python course.py constraints", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upgrade", action="store_true",
                        help="resolve the newest versions the ranges admit, not the current pins")
    args = parser.parse_args(argv)
    before = set(CONSTRAINTS.read_text().splitlines()) if CONSTRAINTS.exists() else set()
    pins = frozen(args.upgrade)
    version = f"Python {sys.version_info.major}.{sys.version_info.minor}"
    CONSTRAINTS.write_text(HEADER.format(python=version) + "\n".join(pins) + "\n")
    added = [p for p in pins if p not in before]
    dropped = sorted(p for p in before if "==" in p and p not in pins)
    print(f"wrote {CONSTRAINTS.relative_to(ROOT)}: {len(pins)} pins, {len(added)} new or changed, "
          f"{len(dropped)} dropped")
    if args.upgrade and added:
        print("Versions changed: run `python course.py test` before committing.")
    return 0
