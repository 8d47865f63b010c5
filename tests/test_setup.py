"""Set-up as a learner meets it: the notebooks' bootstrap cell on Colab and Kaggle, the installer
behind it and behind `python course.py lab` / `test`, and JupyterLab in a root shell."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import course
from tools import bootstrap

ROOT = Path(course.__file__).resolve().parent


# ---------------------------------------------------------------- the installer
@pytest.fixture
def fake_course(tmp_path):
    (tmp_path / "requirements-lessons.txt").write_text("somepackage>=1\n")
    return tmp_path


def fake_pip(monkeypatch, *, fails=False, upgrades=None):
    """Replace pip: record each call, optionally fail, optionally 'upgrade' installed versions."""
    calls, installed = [], {"numpy": "2.0.2", "torch": "2.11.0+cu128"}

    def run_pip(args, echo=print):
        calls.append(args)
        if fails:
            raise RuntimeError("pip could not install what the lessons need")
        installed.update(upgrades or {})

    monkeypatch.setattr(bootstrap, "run_pip", run_pip)
    monkeypatch.setattr(bootstrap, "installed_version", installed.get)
    monkeypatch.setattr(bootstrap, "imported_versions", lambda: {"numpy": installed["numpy"]})
    return calls


def test_install_runs_until_it_finishes_then_never_again(fake_course, monkeypatch):
    calls = fake_pip(monkeypatch, fails=True)
    with pytest.raises(RuntimeError, match="could not install"):
        bootstrap.install(fake_course)
    assert not (fake_course / bootstrap.MARKER).exists()  # interrupted: the next run installs again
    calls = fake_pip(monkeypatch)
    assert bootstrap.install(fake_course) is True and len(calls) == 1
    assert bootstrap.install(fake_course) is False and len(calls) == 1  # finished: skipped
    (fake_course / "requirements-lessons.txt").write_text("somepackage>=2\n")
    assert bootstrap.install(fake_course) is True  # the requirements changed: install again


def test_install_keeps_the_pytorch_build_that_is_there(fake_course, monkeypatch):
    calls = fake_pip(monkeypatch)
    kept = []
    original = bootstrap.run_pip

    def spy(args, echo=print):
        constraint = Path(args[args.index("-c") + 1])
        kept.append(constraint.read_text())
        original(args, echo)

    monkeypatch.setattr(bootstrap, "run_pip", spy)
    bootstrap.install(fake_course)
    assert kept == ["torch==2.11.0+cu128\n"] and calls


def test_install_says_to_restart_when_it_replaced_an_imported_package(fake_course, monkeypatch):
    fake_pip(monkeypatch, upgrades={"numpy": "2.1.3"})
    with pytest.raises(bootstrap.RestartNeeded, match=r"numpy 2\.0\.2 -> 2\.1\.3.*Restart now"):
        bootstrap.install(fake_course)
    calls = fake_pip(monkeypatch)
    assert bootstrap.install(fake_course) is False and not calls  # after the restart: no reinstall


def test_imported_versions_names_what_this_process_imported():
    import numpy

    assert bootstrap.imported_versions()["numpy"] == numpy.__version__


def test_run_pip_shows_progress_and_fails_loudly(tmp_path):
    shown = []
    with pytest.raises(RuntimeError, match="Run the same again"):
        bootstrap.run_pip(["--no-index", "--find-links", str(tmp_path), "no-such-package-x"],
                          echo=shown.append)
    assert any("no-such-package-x" in line for line in shown)


# ---------------------------------------------------------------- the bootstrap cell, as on Colab
def _course_repo(tmp_path: Path) -> Path:
    """A git repository holding this working tree (committed or not), as GitHub would serve it."""
    src = tmp_path / "published"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    git = ["git", "-c", "user.name=course", "-c", "user.email=course@example.org"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=src, check=True)
    subprocess.run([*git, "add", "-A"], cwd=src, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "published"], cwd=src, check=True)
    return src


def _run_cell_as_on(service: str, home: Path, url: str) -> subprocess.CompletedProcess:
    """Run the stamped bootstrap cell in a fresh Python that looks like Colab or Kaggle, with
    their working folder moved to ``home`` and the course's address to ``url``."""
    cell = course.BOOTSTRAP
    folder = {"colab": '"/content"', "kaggle": '"/kaggle/working"'}[service]
    assert folder in cell and f'"https://github.com/{course.REPO_SLUG}"' in cell
    cell = cell.replace(folder, repr(str(home))).replace(
        f'"https://github.com/{course.REPO_SLUG}"', repr(url))
    pretend = ("import importlib.machinery, sys, types\n"  # google.colab, with a spec as imported
               "sys.modules['google.colab'] = colab = types.ModuleType('google.colab')\n"
               "colab.__spec__ = importlib.machinery.ModuleSpec('google.colab', None)\n"
               if service == "colab" else "")
    env = {**os.environ, "COURSE_SMOKE": "1"}
    env.pop("KAGGLE_KERNEL_RUN_TYPE", None)
    if service == "kaggle":
        env["KAGGLE_KERNEL_RUN_TYPE"] = "Interactive"
    return subprocess.run([sys.executable, "-c", pretend + cell], cwd=home, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("service", ["colab", "kaggle"])
def test_the_bootstrap_cell_fetches_installs_and_reruns_on_a_hosted_runtime(tmp_path, service):
    repo = _course_repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / "course.partial").mkdir()  # left behind by an interrupted clone
    first = _run_cell_as_on(service, home, f"file://{repo}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert (home / "course" / "course.py").is_file() and not (home / "course.partial").exists()
    assert "Installing what the lessons need" in first.stdout
    assert "mode: smoke" in first.stdout  # utils imported from the fetched course
    again = _run_cell_as_on(service, home, f"file://{repo}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Installing" not in again.stdout and "mode: smoke" in again.stdout


def test_the_bootstrap_cell_names_the_repository_it_cannot_fetch(tmp_path):
    missing = f"file://{tmp_path}/no-such-repository"
    result = _run_cell_as_on("colab", tmp_path, missing)
    assert result.returncode != 0
    assert f"Could not fetch the course from {missing} at '{course.REF}'" in result.stderr
    assert "python course.py stamp" in result.stderr
    assert not (tmp_path / "course").exists()


def test_stamp_records_a_new_slug_and_ref_in_the_badges_and_the_cell():
    cell = course.bootstrap_cell("teacher/my-course", "v1.0")
    assert '"https://github.com/teacher/my-course", "v1.0"' in cell
    line = course.badge("01_pipelines.ipynb", "teacher/my-course", "v1.0")
    assert "colab.research.google.com/github/teacher/my-course/blob/v1.0/notebooks/01_pipelines" in line
    assert "kaggle.com/kernels/welcome?src=https://github.com/teacher/my-course/blob/v1.0/" in line


# ---------------------------------------------------------------- course.py: PyTorch and JupyterLab
@pytest.mark.parametrize("platform, nvidia, first", [
    ("linux", False, [course.TORCH, "--index-url", course.TORCH_CPU_INDEX]),
    ("linux", True, [course.TORCH]),
    ("darwin", False, [course.TORCH]),
])
def test_a_machine_without_pytorch_is_told_which_build_it_gets(monkeypatch, platform, nvidia, first):
    monkeypatch.setattr(course.sys, "platform", platform)
    monkeypatch.setattr(course.shutil, "which", lambda name: "/usr/bin/nvidia-smi" if nvidia else None)
    monkeypatch.setattr(course.Path, "exists", lambda self: False)
    attempts, why = course.torch_plan()
    assert attempts[0] == first and attempts[-1] == [course.TORCH]
    assert ("CPU build" in why) == (platform == "linux" and not nvidia)
    assert ("CUDA build" in why) == (platform == "linux" and nvidia)


def test_the_cpu_build_falls_back_to_the_default_index(monkeypatch, capsys):
    tried = []
    monkeypatch.setattr(bootstrap, "installed_version", lambda dist: None)
    monkeypatch.setattr(bootstrap, "install", lambda *a, **k: False)
    monkeypatch.setattr(course, "torch_plan", lambda: ([["a"], ["b"]], "why"))
    monkeypatch.setattr(course, "_pip", lambda *args: tried.append(list(args)) or (1 if args == ("a",) else 0))
    course.install(test=False)
    assert tried == [["a"], ["b"]]
    assert "trying the next source" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_lab_starts_in_this_shell_with_jupyterlabs_own_options():
    """The README's first command, as root or not, with options passed on to JupyterLab."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "course.py", "lab", "--no-browser", f"--port={port}",
         "--ServerApp.token=course-test"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline, answered = time.time() + 240, None
        while time.time() < deadline and process.poll() is None and answered is None:
            try:
                answered = urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/lab?token=course-test", timeout=5).status
            except OSError:
                time.sleep(1)
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert answered == 200
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def test_the_torch_requirement_admits_no_version_transformers_switches_off():
    """transformers disables itself below its minimum PyTorch ("requires PyTorch" errors later):
    the lessons' torch range must start at or above that minimum."""
    from packaging.requirements import Requirement
    from packaging.version import Version
    from transformers.dependency_versions_table import deps

    lines = (ROOT / "requirements-lessons.txt").read_text().splitlines()
    ours = next(Requirement(line.split("#")[0]) for line in lines if line.startswith("torch"))
    theirs = Requirement(deps["torch"])
    floor = min(Version(s.version) for s in ours.specifier if s.operator == ">=")
    assert theirs.specifier.contains(floor), f"{ours} admits torch {floor}; transformers needs {theirs}"


def test_stamp_with_a_new_slug_rewrites_course_py_and_every_notebook(tmp_path):
    """What a teacher runs to publish the course under their own repository and tag."""
    for name in ["course.py", "tools/__init__.py", "tools/layout.py", *(
            str(p.relative_to(ROOT)) for p in course.notebook_paths())]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    run = [sys.executable, "course.py", "stamp", "--slug", "teacher/my-course", "--ref", "v1.0"]
    result = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "course.py").read_text()
    assert 'REPO_SLUG = "teacher/my-course"' in text and 'REF = "v1.0"' in text
    for path in sorted((tmp_path / "notebooks").glob("*.ipynb")):
        stored = path.read_text()
        assert "teacher/my-course/blob/v1.0/notebooks/" + path.name in stored
        assert course.REPO_SLUG not in stored
    again = subprocess.run([sys.executable, "course.py", "stamp"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "stamped" not in again.stdout  # now recorded: nothing to do
    bad = subprocess.run([*run[:3], "--slug", "not a slug"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "is not a GitHub repository name" in bad.stdout
