"""The GPU check, run here on the CPU with the tiny stand-in (the same code a GPU machine runs,
fp16 emulated), and its verdicts, report section and wheel list."""
import json

import pytest
import torch

from tools import gpu_check
from tools.notebooks import ROOT


@pytest.mark.notebooks
def test_the_check_runs_a_lesson_on_both_tracks_and_writes_its_section(tmp_path):
    report = tmp_path / "REPORT.md"
    report.write_text("# Benchmark report\n\n## Machine\n\nx\n\n## Quality and sampler reports\n\ny\n")
    code = gpu_check.main(["--cpu", "--smoke", str(ROOT / "notebooks" / "00_setup_and_gpus.ipynb"),
                           "--report", str(report)])
    assert code == 0
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [(r["notebook"], r["run"], r["result"]) for r in results["rows"]] == [
        ("00_setup_and_gpus.ipynb", "sd15", "ok"), ("00_setup_and_gpus.ipynb", "mini-fp16", "ok")]
    assert results["cpu"] and results["stand_in"] == "tiny" and results["passed"]
    text = report.read_text()
    # The section lands before the quality reports, and the rest of the report is kept.
    assert text.index("## Machine") < text.index("## GPU check") < text.index("## Quality")
    assert "tiny STAND-IN" in text and "not a GPU figure" in text and text.endswith("y\n")
    again = dict(results, rows=results["rows"][:1])
    gpu_check.write(again, report, tmp_path / "gpu_check.json")  # replaced, not added twice
    assert report.read_text().count("## GPU check") == 1 and "| mini-fp16 |" not in report.read_text()


def test_a_lesson_fails_on_an_error_or_a_peak_above_the_limit():
    assert gpu_check.verdict({"error": None, "peak_reserved_gb": 9.5}, 14) == "ok"
    assert gpu_check.verdict({"error": None, "peak_reserved_gb": None}, 14) == "ok"  # no CUDA
    assert "above 14 GB" in gpu_check.verdict({"error": None, "peak_reserved_gb": 14.2}, 14)
    assert "FAILED: boom" == gpu_check.verdict({"error": "boom", "peak_reserved_gb": 1.0}, 14)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the check runs")
def test_without_a_gpu_the_check_says_how_to_run_it():
    with pytest.raises(SystemExit, match="No CUDA GPU.*--cpu"):
        gpu_check.check([], size="tiny")


def test_the_wheels_leave_out_pytorch_and_what_only_it_brings():
    packages = {
        "torch": {"requires_dist": ["sympy>=1.13", "cuda-toolkit[cublas]==13.0; "
                                    "platform_system == 'Linux'", "filelock"]},
        "cuda-toolkit": {"requires_dist": ["nvidia-cublas-cu12; extra == 'cublas'",
                                           "nvidia-cufft; extra == 'cufft'"]},
        "sympy": {"requires_dist": ["mpmath<1.4"]}, "mpmath": {}, "filelock": {},
        "nvidia-cublas-cu12": {}, "nvidia-cufft": {},
        "diffusers": {"requires_dist": ["filelock", "numpy", "torch>=2; extra == 'torch'"]},
        "numpy": {},
    }
    assert gpu_check._closure("torch", packages) == {"torch", "sympy", "mpmath", "filelock",
                                                     "cuda-toolkit", "nvidia-cublas-cu12"}
    assert gpu_check._closure("diffusers", packages) == {"diffusers", "filelock", "numpy"}


def test_peak_setup_keeps_the_notebook_peak_across_a_lessons_own_reset():
    namespace, original = {}, torch.cuda.reset_peak_memory_stats
    try:
        exec(gpu_check.PEAK_SETUP, namespace)  # noqa: S102 (the course's own code)
        assert namespace["_course_peak"] == {"allocated": 0, "reserved": 0}
        if torch.cuda.is_available():  # on a GPU: a reset in between keeps the first peak
            big = torch.empty(2**28, dtype=torch.uint8, device="cuda")
            del big
            torch.cuda.reset_peak_memory_stats()
            assert namespace["_course_peak"]["allocated"] >= 2**28
    finally:
        torch.cuda.reset_peak_memory_stats = original
