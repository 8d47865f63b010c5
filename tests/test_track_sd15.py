import urllib.request

import pytest
import torch

from utils.sd15 import COMPONENTS, build_sd15_component, count_parameters
from utils.track import SD15_ID, choose_track, hub_reachable, load_pipeline


def test_explicit_choice_wins(monkeypatch):
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    assert choose_track("mini")[0] == "mini"
    assert choose_track("sd15")[:2] == ("sd", SD15_ID)
    assert choose_track("someone/their-model")[:2] == ("sd", "someone/their-model")
    with pytest.raises(TypeError, match="model must be a string"):
        choose_track(15)


def test_course_model_environment_variable(monkeypatch):
    import utils.track as track
    from utils.settings import Settings

    monkeypatch.setattr(track, "SETTINGS", Settings(model="sd15"))
    assert track.choose_track() == ("sd", SD15_ID, f"COURSE_MODEL {SD15_ID}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the automatic choice differs on a GPU")
def test_cpu_gets_minisd_with_a_reason(monkeypatch):
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    track, _, reason = choose_track()
    assert track == "mini" and "no GPU" in reason


def test_unreachable_hub_is_decided_in_seconds(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    tries, urlopen = [], urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout: tries.append(timeout) or urlopen(url, timeout=timeout))
    assert hub_reachable(timeout=2) is False
    assert tries == [2]  # one try, bounded by the timeout: no retries


def test_real_model_offline_fails_fast_with_directions(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(RuntimeError, match="Colab.*hf auth login"):
        load_pipeline("sd15", verbose=False)


def test_offline_track_loads_a_working_pipeline(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    pipe = load_pipeline("mini")
    assert pipe.course_track == "mini"
    assert "Model track:" in capsys.readouterr().out
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    image = pipe("a red seven", num_inference_steps=2, height=size, width=size,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (size, size) and image.mode == "RGB"


def test_sd15_sizes_match_the_published_parameter_counts():
    # The published sizes of SD 1.5's components; equal counts mean the configs are transcribed right.
    expected = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
    assert {name: count_parameters(build_sd15_component(name)) for name in expected} == expected
    assert set(expected) < set(COMPONENTS)  # and the safety checker, whose count is not published
    with pytest.raises(ValueError, match="name='clip'"):
        build_sd15_component("clip")


def test_a_claim_about_trained_weights_is_checked_or_said_to_be_unchecked(capsys):
    from types import SimpleNamespace

    from utils.track import check_claim

    real = SimpleNamespace(name_or_path="some/model", text_encoder=None)
    check_claim(real, "two is more than one", 2 > 1)
    assert "Checked: two is more than one" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="should hold for some/model.*one is more than two"):
        check_claim(real, "one is more than two", 1 > 2)
    config = SimpleNamespace(course_stand_in="stable-diffusion-v1-5/stable-diffusion-v1-5")
    stand_in = SimpleNamespace(text_encoder=SimpleNamespace(config=config))
    check_claim(stand_in, "one is more than two", 1 > 2)
    assert "Not checked (random STAND-IN weights): one is more than two" in capsys.readouterr().out


def test_sd_model_is_sd15_unless_course_model_names_an_sd_model(monkeypatch, tmp_path):
    import utils.track as track
    from utils.settings import Settings

    monkeypatch.setattr(track, "SETTINGS", Settings(model="mini"))
    assert track.sd_model() == SD15_ID
    monkeypatch.setattr(track, "SETTINGS", Settings(model="someone/their-sd-model"))
    assert track.sd_model() == "someone/their-sd-model"


def test_attention_slicing_auto_computes_half_the_heads_at_a_time():
    """Lesson 00's table: "auto" slices heads // 2 of the batch x heads score matrices, so with
    classifier-free guidance (batch 2) the largest one held is a quarter, not an eighth."""
    from diffusers.models.attention_processor import SlicedAttnProcessor

    from utils.track import tiny_random_pipeline

    pipe = tiny_random_pipeline()
    pipe.enable_attention_slicing()  # "auto"
    attentions = [m for m in pipe.unet.modules() if hasattr(m, "processor") and hasattr(m, "heads")]
    assert attentions
    for attention in attentions:
        assert isinstance(attention.processor, SlicedAttnProcessor)
        assert attention.processor.slice_size == attention.heads // 2
