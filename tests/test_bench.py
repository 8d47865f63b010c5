"""The benchmark runner's code paths, at toy sizes (its figures are never asserted: they are timings)."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_unet_step_timing_runs_the_real_class_at_a_tiny_size(bench):
    tiny = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                block_out_channels=(32, 32), cross_attention_dim=16, attention_head_dim=2,
                norm_num_groups=8,
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    r = bench.sd15_unet_step("cpu", config=tiny, repeats=1)
    assert r["latent_size"] == 8 and r["seconds_per_unet_step"] > 0
    assert r["seconds_per_image_25_steps_estimate"] == pytest.approx(25 * r["seconds_per_unet_step"],
                                                                     abs=0.1)


def _row(name, seconds, peak, error=None):
    return {"name": name, "seconds": seconds, "peak_rss_mb": peak, "error": error}


def test_report_states_targets_failures_and_a_missing_gpu(bench):
    report = {
        "command": "python course.py bench", "minutes": 3.0,
        "machine": {"date": "2026-01-01 00:00 UTC", "cpu": "test cpu", "logical_cores": 2,
                    "ram_gb": 24.0, "gpu": None, "load_average_at_start": [0.1, 0.1, 0.1],
                    "python": "3.11", "torch": "2", "diffusers": "0", "transformers": "5",
                    "numpy": "2", "platform": "linux"},
        "notebooks": {"smoke": [_row("00_a.ipynb", 20.0, 900.0), _row("01_b.ipynb", 40.0, float("nan"))],
                      "full": [_row("00_a.ipynb", 100.0, 1200.0),
                               _row("01_b.ipynb", 2000.0, 5000.0, error="boom")]},
        "minisd": {"skipped": "no MiniSD in assets/minisd"},
        "sd15_cpu": {"device": "cpu", "dtype": "float32", "torch_threads": 2, "latent_size": 64,
                     "seconds_per_unet_step": 12.5, "seconds_per_image_25_steps_estimate": 312.5,
                     "peak_rss_growth_gb": 4.2},
        "scripts": [{"report": "x.md", "missing": True, "command": "python bench/x.py"}],
    }
    text = bench.markdown(report)
    assert "| 01_b.ipynb | 40 | n/a | 2000 (failed) | 5,000 |" in text
    assert "full mode: 35.0 min in all" in text and "under 30 min in all (NOT met)" in text
    assert "FAILED: 01_b.ipynb" in text
    assert "smoke mode: 1.0 min in all" in text and "(met)" in text
    assert "not run: no CUDA GPU on this machine" in text
    assert "RANDOM weights" in text and "12.5 s" in text
    assert "Not run: no MiniSD" in text and "not yet written" in text
