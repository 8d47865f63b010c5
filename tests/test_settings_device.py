import pytest
import torch

from utils.device import describe_hardware, get_device, get_dtype, needs_gpu
from utils.settings import Settings


def test_settings_read_the_environment(monkeypatch):
    monkeypatch.setenv("COURSE_SMOKE", "1")
    monkeypatch.setenv("COURSE_MODEL", "mini")
    settings = Settings.from_env()
    assert settings.smoke and settings.model == "mini"
    assert settings.pick(full=25, smoke=2) == 2
    monkeypatch.setenv("COURSE_SMOKE", "0")
    monkeypatch.delenv("COURSE_MODEL")
    settings = Settings.from_env()
    assert not settings.smoke and settings.model is None
    assert settings.pick(full=25, smoke=2) == 25


def test_settings_reject_an_unclear_flag(monkeypatch):
    monkeypatch.setenv("COURSE_SMOKE", "maybe")
    with pytest.raises(ValueError, match="COURSE_SMOKE='maybe'.*use 1"):
        Settings.from_env()


def test_device_and_dtype_on_this_machine():
    device = get_device()
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert device.type == expected
    assert get_dtype("cpu") == torch.float32 and get_dtype("cuda") == torch.float16
    line = describe_hardware()
    assert "torch" in line and "\n" not in line


def test_get_device_explains_bad_choices():
    with pytest.raises(ValueError, match="prefer='tpu'"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            get_device("cuda")


def test_needs_gpu_says_why_it_skips(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so nothing is skipped")
    assert needs_gpu("training SD 1.5") is False
    assert "Skipped on this machine: training SD 1.5" in capsys.readouterr().out
    with pytest.raises(ValueError, match="needs a reason"):
        needs_gpu("  ")


def test_course_dtype_sets_the_pipelines_dtype_on_every_device(monkeypatch):
    import utils.device as device_module

    monkeypatch.setenv("COURSE_DTYPE", "fp16")
    settings = Settings.from_env()
    assert settings.dtype == "float16" and "dtype: float16" in str(settings)
    monkeypatch.setattr(device_module, "SETTINGS", settings)
    assert get_dtype("cpu") == torch.float16 and get_dtype("cuda") == torch.float16
    monkeypatch.setenv("COURSE_DTYPE", "int8")
    with pytest.raises(ValueError, match="COURSE_DTYPE='int8'.*float16, bfloat16 or float32"):
        Settings.from_env()
    monkeypatch.setenv("COURSE_DTYPE", "")
    monkeypatch.setenv("COURSE_SD_TRAIN_STEPS", "ten")
    with pytest.raises(ValueError, match="COURSE_SD_TRAIN_STEPS='ten'"):
        Settings.from_env()


def test_gpu_cells_run_on_the_cpu_when_asked(monkeypatch, capsys):
    import utils.device as device_module

    if torch.cuda.is_available():
        pytest.skip("on a GPU every such cell runs anyway")
    monkeypatch.setattr(device_module, "SETTINGS", Settings(gpu_cells=True))
    assert needs_gpu("training SD 1.5") is True
    assert "Running without a CUDA GPU (COURSE_GPU_CELLS=1): training SD 1.5" in capsys.readouterr().out


def test_tolerance_follows_the_dtype_and_peak_memory_is_nan_on_the_cpu():
    import math

    from utils.device import peak_memory_gb, reset_peak_memory, tolerance

    assert tolerance(torch.float32) < tolerance(torch.float16) < tolerance(torch.bfloat16)
    # fp16 keeps 10 bits: one rounding of a number near 4 moves it by up to 2e-3, inside.
    x = torch.linspace(-4, 4, 1001)
    assert torch.allclose(x.half().float(), x, atol=tolerance(torch.float16))
    assert not torch.allclose(x.half().float(), x, atol=tolerance(torch.float32))
    with pytest.raises(ValueError, match="has no tolerance"):
        tolerance(torch.int64)
    reset_peak_memory("cpu")
    assert math.isnan(peak_memory_gb("cpu"))


def test_needs_gpu_says_a_mac_has_a_gpu_this_cell_cannot_use(monkeypatch, capsys):
    """The cells needs_gpu guards use CUDA itself (its memory counters, accelerate's fp16
    training): on a Mac the skip says the Apple GPU is there but not supported, not "none found"."""
    import utils.device as device_module

    monkeypatch.setattr(device_module, "SETTINGS", Settings())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert needs_gpu("training SD 1.5") is False
    assert capsys.readouterr().out == (
        "Skipped on this machine: training SD 1.5 (needs a CUDA GPU: this Mac's Apple GPU (MPS) "
        "is not supported by this cell).\n")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert needs_gpu("training SD 1.5") is False
    assert capsys.readouterr().out == ("Skipped on this machine: training SD 1.5 (needs a CUDA "
                                       "GPU; none found).\n")


def test_attention_slicing_is_advised_on_apple_mps_under_64_gib(monkeypatch):
    import utils.device as device_module
    from utils.device import attention_slicing_advice, physical_memory_gib

    assert attention_slicing_advice("mps", memory_gib=16) == \
        "Apple MPS with 16 GiB of memory, under 64 GiB"
    assert attention_slicing_advice("mps", memory_gib=63.9) is not None
    assert attention_slicing_advice("mps", memory_gib=64) is None
    assert attention_slicing_advice("mps", memory_gib=128) is None
    for other in ("cuda", "cpu"):  # CUDA and the CPU have their own memory: no slicing by default
        assert attention_slicing_advice(other, memory_gib=8) is None
    # By default it reads this machine's memory; where the OS does not say, it slices to be safe.
    memory = physical_memory_gib()
    assert memory is None or memory > 0
    monkeypatch.setattr(device_module, "physical_memory_gib", lambda: 8.0)
    assert attention_slicing_advice("mps") == "Apple MPS with 8 GiB of memory, under 64 GiB"
    monkeypatch.setattr(device_module, "physical_memory_gib", lambda: None)
    assert attention_slicing_advice("mps") == "Apple MPS with an unknown amount of memory"
