"""Installing what the lessons need, safely: on Colab and Kaggle from a notebook's set-up cell, and
on a laptop from ``python course.py lab`` / ``test``. Standard library only: it runs before the
lessons' libraries are there.

    install(course_dir, files)   pip-install requirement files until a marker says it finished;
                                 PyTorch is never replaced; tells the learner when to restart
    hosted()                     "colab", "kaggle" or None

Three things go wrong on hosted runtimes, and each is handled here:

- an install interrupted once must not be skipped for good: the marker (a digest of the requirement
  files and the Python) is written only after pip succeeded, so running the cell again installs
  again until it finishes;
- a silent minute looks like a hang: pip's output is shown as it comes, less the "already
  satisfied" lines;
- a package pip upgraded after the kernel imported it stays old in memory until a restart: the
  versions of the imported packages are compared before and after, and the learner is told to
  restart (an exception, so that "Run all" stops there) and which package changed.
"""
import hashlib
import importlib.metadata as metadata
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MARKER = Path("build") / ".installed"  # under the course folder; one line per finished install
RESTART = {"colab": "Runtime > Restart session", "kaggle": "Run > Restart & clear cell outputs"}


class RestartNeeded(RuntimeError):
    """pip replaced a package this kernel had already imported."""


def hosted() -> str | None:
    """Which hosted notebook service this is: "colab", "kaggle", or None (a machine of your own)."""
    if "google.colab" in sys.modules:
        return "colab"
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") or Path("/kaggle/working").is_dir():
        return "kaggle"
    return None


def digest(files: list[Path]) -> str:
    """What an install depends on: the requirement files' text and this Python."""
    h = hashlib.sha256(f"{sys.executable} {sys.version}".encode())
    for file in files:
        h.update(file.name.encode() + b"\0" + file.read_bytes())
    return h.hexdigest()[:16]


def imported_versions() -> dict[str, str]:
    """The installed version of every distribution that a module imported in this process
    belongs to: what a restart would change if pip replaced it."""
    owners = metadata.packages_distributions()  # top-level module name -> distribution names
    versions = {}
    for name in {m.split(".")[0] for m in list(sys.modules)}:
        for dist in owners.get(name, []):
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
    return versions


def installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def run_pip(args: list[str], echo=print) -> None:
    """``python -m pip install ARGS``, showing its output as it comes (less the lines about what
    is already there). Raises ``RuntimeError`` if pip fails."""
    command = [sys.executable, "-m", "pip", "install", "--progress-bar", "off", *args]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    tail = []
    for line in process.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-15:]
        if line and not line.startswith("Requirement already satisfied"):
            echo(f"  {line}")
    if process.wait():
        raise RuntimeError(f"pip could not install what the lessons need (exit code "
                           f"{process.returncode}; its last lines are above). Run the same again: "
                           "the install is repeated until it finishes.\n" + "\n".join(tail[-5:]))


def install(course_dir: str | Path, files: list[str] = ("requirements-lessons.txt",),
            constraints: str | None = None, echo=print, restart_hint: str | None = None) -> bool:
    """Install ``files`` (paths relative to ``course_dir``) unless an earlier call finished the same.

    PyTorch is pinned to the build already installed, if any (Colab's CUDA build, yours), so it is
    never replaced. Returns True when pip ran. Raises ``RestartNeeded`` when pip replaced a package
    this process had imported; the install is recorded as finished first, so after the restart
    the same call returns at once.
    """
    course_dir = Path(course_dir)
    paths = [course_dir / f for f in files] + ([course_dir / constraints] if constraints else [])
    key = digest(paths)
    marker = course_dir / MARKER
    if marker.exists() and key in marker.read_text().split():
        return False
    before = imported_versions()
    args = [arg for f in files for arg in ("-r", str(course_dir / f))]
    if constraints:
        args += ["-c", str(course_dir / constraints)]
    torch = installed_version("torch")
    with tempfile.TemporaryDirectory() as tmp:
        if torch:  # the one PyTorch this machine has stays: a constraint pip must keep
            keep = Path(tmp) / "keep-torch.txt"
            keep.write_text(f"torch=={torch}\n")
            args += ["-c", str(keep)]
        echo(f"Installing what the lessons need ({', '.join(files)}; "
             f"{'PyTorch ' + torch + ' is kept' if torch else 'no PyTorch yet'}). Once per "
             "machine, about a minute; pip's output follows.")
        run_pip(args, echo)
    marker.parent.mkdir(parents=True, exist_ok=True)
    with marker.open("a") as out:
        out.write(key + "\n")
    now = {dist: installed_version(dist) for dist in before}
    changed = {dist: (old, now[dist]) for dist, old in before.items() if now[dist] != old}
    if changed:
        what = ", ".join(f"{dist} {old} -> {new}" for dist, (old, new) in sorted(changed.items()))
        how = restart_hint or RESTART.get(hosted(), "restart the kernel")
        raise RestartNeeded(
            f"Installed. pip replaced packages this kernel had already imported ({what}); the old "
            f"versions stay in memory until a restart. Restart now ({how}), then run this cell "
            "again: it will not install a second time.")
    echo("Installed.")
    return True


def kaggle_token() -> None:
    """On Kaggle, hand a Hugging Face token kept as a Kaggle secret named HF_TOKEN to the Hub
    library (Colab's secrets reach it without help). Optional: without one, downloads are
    anonymous, which works but is rate limited on shared machines."""
    if os.environ.get("HF_TOKEN"):
        return
    try:
        from kaggle_secrets import UserSecretsClient  # only on Kaggle

        os.environ["HF_TOKEN"] = UserSecretsClient().get_secret("HF_TOKEN")
    except Exception:  # no such secret, or secrets not attached to this notebook: stay anonymous
        pass
