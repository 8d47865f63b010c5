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
