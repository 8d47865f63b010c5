"""MiniSD: the data and captions, the tokenizer, the training command (smoke size), and the shipped
pipeline loaded exactly as a lesson loads it."""
import json
import warnings

import numpy as np
import pytest
import torch

from utils.minisd import MINISD_PATH, load_clip
from utils.minisd.data import (DIGIT_WORDS, HELD_OUT_COLOUR, PALETTE, TRAIN_COLOURS, caption,
                               random_attributes, random_captions, render)
from utils.minisd.tokenizer import CAPTION_WORDS, SPARE_WORDS, build_tokenizer


# --- data and captions -------------------------------------------------------------------------

def test_caption_names_what_it_is_given():
    assert caption(7, "red", "thick") == "a thick red seven"
    assert caption(7, "red", size="small", numeral=True) == "a small red 7"
    assert caption(None, "blue") == "a blue digit"
    assert caption(None) == ""
    with pytest.raises(ValueError, match="colour='mauve'"):
        caption(3, "mauve")
    with pytest.raises(ValueError, match="digit must be 0-9"):
        caption(12)


def test_random_captions_have_partial_and_about_ten_percent_empty_ones():
    rng = np.random.default_rng(0)
    attrs = random_attributes(rng.integers(0, 10, 20000), rng)
    texts, kept = random_captions(attrs, rng)
    empty = np.mean([t == "" for t in texts])
    assert 0.08 <= empty <= 0.13
    namable = 2 + (attrs["thickness"] != 0) + (attrs["size"] != 0)  # digit, colour, maybe two more
    named = kept.sum(1)
    assert ((named > 0) & (named < namable)).mean() > 0.3  # partial captions are common
    words = {w for t in texts for w in t.split()}
    assert HELD_OUT_COLOUR not in words and HELD_OUT_COLOUR not in TRAIN_COLOURS
    assert words <= set(CAPTION_WORDS) | set("0123456789")


def test_render_makes_32px_colour_digits():
    from utils.data import load_mnist

    digits, _ = load_mnist(split="test")
    x = render(digits[:4], np.arange(4), np.zeros(4, int), np.zeros(4, int))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    with pytest.raises(ValueError, match=r"images must have shape \(N, 28, 28\)"):
        render(np.zeros((2, 32, 32), np.uint8), [0, 0], [0, 0], [0, 0])


# --- tokenizer ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_every_word_is_one_token_and_merges_do_not_split_words(tokenizer):
    for word in CAPTION_WORDS + SPARE_WORDS + ["purple"]:
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    assert tokenizer.convert_ids_to_tokens(tokenizer("green red").input_ids)[1:3] == ["green</w>", "red</w>"]


def test_tokenizer_round_trip_and_padding(tokenizer, tmp_path):
    text = "a thick small green 7"
    ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length).input_ids
    assert len(ids) == tokenizer.model_max_length == 16
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    unknown = "a zebra"  # not in the vocabulary: byte pieces, never an unknown token
    assert tokenizer.decode(tokenizer(unknown).input_ids, skip_special_tokens=True) == unknown
    tokenizer.save_pretrained(tmp_path)
    from transformers import CLIPTokenizer

    assert CLIPTokenizer.from_pretrained(tmp_path)(text).input_ids == tokenizer(text).input_ids


# --- the training command, smoke size ----------------------------------------------------------

@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from utils.minisd.__main__ import main

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("smoke") / "minisd"
    try:
        main(["train", "--smoke", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    return out


def test_smoke_training_runs_end_to_end(smoke_run):
    out = smoke_run
    record = json.loads((out / "TRAINING.json").read_text())
    assert list(record["stages"]) == ["tokenizer", "clip", "vae", "latents", "decoder", "unet",
                                      "export"]
    assert "--smoke" in record["command"] and record["versions"]["diffusers"]
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red seven", num_inference_steps=2, output_type="np").images
    assert image.shape == (1, 32, 32, 3)


def test_training_refuses_to_overwrite_and_resumes_without_redoing_stages(smoke_run):
    from utils.minisd.__main__ import main

    out = smoke_run
    with pytest.raises(FileExistsError, match="--overwrite"):
        main(["train", "--smoke", "--out", str(out)])
    work = out.parent / "minisd-train"
    before = json.loads((work / "state.json").read_text())
    with pytest.raises(FileExistsError, match="--resume"):
        main(["train", "--smoke", "--out", str(out.parent / "elsewhere"), "--work", str(work)])
    main(["train", "--smoke", "--resume", "--out", str(out.parent / "again"), "--work", str(work)])
    after = json.loads((work / "state.json").read_text())
    for stage in ["tokenizer", "clip", "vae", "latents", "decoder", "unet"]:  # none redone
        assert after["stages"][stage] == before["stages"][stage]


@pytest.mark.parametrize("stage", ["vae", "unet"])
def test_a_stage_interrupted_mid_way_resumes_to_the_uninterrupted_result(smoke_run, tmp_path,
                                                                        monkeypatch, stage):
    """Ctrl-C during a stage's step 5: steps 1-4 are checkpointed (SMOKE saves every step), and
    --resume goes on from there to weights equal to those of the run that was never stopped."""
    from safetensors.torch import load_file

    import utils.training as training
    from utils.minisd.__main__ import main

    threads = torch.get_num_threads()
    real_fit, argv = training.fit, ["train", "--smoke", "--threads", "1", "--out",
                                    str(tmp_path / "minisd"), "--work", str(tmp_path / "work")]

    def fit_stopped_at_step_5(loss_fn, *args, desc="", **kwargs):
        def loss(share):
            if desc == stage and kwargs["checkpoint"] and len(calls) == 4:
                raise KeyboardInterrupt
            calls.append(1)
            return loss_fn(share)
        calls = []
        return real_fit(loss, *args, desc=desc, **kwargs)

    monkeypatch.setattr("utils.minisd.train.fit", fit_stopped_at_step_5)
    try:
        with pytest.raises(KeyboardInterrupt):
            main(argv)
        saved = json.loads((tmp_path / "work" / f"{stage}-checkpoint" / "state.json").read_text())
        assert saved["step"] == 4
        monkeypatch.setattr("utils.minisd.train.fit", real_fit)
        main(argv + ["--resume"])
    finally:
        torch.set_num_threads(threads)
    state = json.loads((tmp_path / "work" / "state.json").read_text())
    assert state["stages"][stage]["steps"] == 8
    assert not (tmp_path / "work" / f"{stage}-checkpoint").exists()  # removed once the stage is done
    folder = {"vae": "vae", "unet": "unet"}[stage]
    for file in (smoke_run / folder).glob("*.safetensors"):
        resumed = load_file(tmp_path / "minisd" / folder / file.name)
        for name, tensor in load_file(file).items():
            assert torch.equal(resumed[name], tensor), name


# --- the shipped pipeline ----------------------------------------------------------------------

pytestmark_shipped = pytest.mark.skipif(not (MINISD_PATH / "model_index.json").exists(),
                                        reason="assets/minisd not trained yet")


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading must be silent: no Future/Deprecation warnings
        pipe = StableDiffusionPipeline.from_pretrained(MINISD_PATH)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytestmark_shipped
def test_shipped_folder_is_small_safetensors_only():
    files = [f for f in MINISD_PATH.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 25e6
    weights = [f for f in files if f.suffix in (".safetensors", ".bin", ".pt", ".ckpt", ".pth")]
    assert weights and all(f.suffix == ".safetensors" for f in weights)
    index = json.loads((MINISD_PATH / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None] and index["requires_safety_checker"] is False
    record = json.loads((MINISD_PATH / "TRAINING.json").read_text())
    assert record["seed"] == 0 and "utils.minisd train" in record["command"]
    # One uninterrupted command made the shipped weights, within the hour the design allows.
    assert [i["command"] for i in record["invocations"]] == [record["command"]]
    assert record["total_minutes"] <= 60


@pytestmark_shipped
def test_shipped_pipeline_loads_in_fp32_with_sd_settings(pipe):
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {torch.float32}
    config = pipe.scheduler.config
    assert (config.beta_start, config.beta_end, config.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert config.num_train_timesteps == 1000 and config.steps_offset == 1
    assert pipe.vae.config.latent_channels == 4 and pipe.vae_scale_factor == 4
    assert pipe.unet.config.sample_size == 8 and pipe.unet.config.cross_attention_dim == 64


@pytestmark_shipped
def test_shipped_pipeline_generates_without_warnings(pipe):
    from utils.settings import NUMPY_COPY_NOTICE

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # numpy 2's notice about torch's Tensor.__array__ (inside DPM-Solver's set_timesteps) is
        # the one warning let through, by its message, as everywhere in the course.
        warnings.filterwarnings("ignore", message=NUMPY_COPY_NOTICE, category=DeprecationWarning)
        images = pipe("a red seven", num_inference_steps=4, output_type="np",
                      generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (1, 32, 32, 3)


@pytestmark_shipped
def test_shipped_scheduler_is_ddim_and_add_noise_stays_exact_after_sampling(pipe):
    from diffusers import DDIMScheduler

    assert isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.scheduler.config.clip_sample is False  # latents are not pixels: never clip them
    pipe("a red seven", num_inference_steps=3)  # sampling sets the scheduler's timesteps
    z0, noise, t = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.tensor([500])
    a = pipe.scheduler.alphas_cumprod[500]
    assert torch.allclose(pipe.scheduler.add_noise(z0, noise, t), a.sqrt() * z0 + (1 - a).sqrt() * noise)


@pytest.fixture(scope="module")
def red_sevens(pipe):
    """Four "a red seven" images: the shipped scheduler (DDIM), 25 steps, guidance 7.5, seeds 50-53."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 notice in DPM-Solver
        return pipe(["a red seven"] * 4, num_inference_steps=25, output_type="np",
                    generator=[torch.Generator().manual_seed(s) for s in range(50, 54)]).images


@pytestmark_shipped
def test_a_red_seven_is_red(red_sevens):
    from utils.metrics import ink_colour

    assert ink_colour(red_sevens) == ["red"] * 4


@pytestmark_shipped
def test_a_red_seven_is_a_seven(red_sevens):
    from utils.metrics import classify

    assert (classify(red_sevens) == 7).all()


@pytestmark_shipped
def test_img2img_and_textual_inversion_work_unchanged(pipe):
    from diffusers import StableDiffusionImg2ImgPipeline

    i2i = StableDiffusionImg2ImgPipeline.from_pretrained(MINISD_PATH)
    i2i.set_progress_bar_config(disable=True)
    start = render(np.zeros((1, 28, 28), np.uint8), [0], [0], [0])  # a black image
    out = i2i("a blue three", image=start, strength=0.9, num_inference_steps=10,
              output_type="np").images
    assert out.shape == (1, 32, 32, 3)
    embedding = torch.randn(pipe.text_encoder.config.hidden_size)
    pipe.load_textual_inversion({"<purple-ink>": embedding}, token="<purple-ink>")
    try:
        ids = pipe.tokenizer("a <purple-ink> seven").input_ids
        assert len(ids) == 5  # start, a, <purple-ink>, seven, end
        new_row = pipe.text_encoder.get_input_embeddings().weight[ids[2]]
        assert torch.allclose(new_row, embedding)
        assert pipe("a <purple-ink> seven", num_inference_steps=2).images[0].size == (32, 32)
    finally:
        pipe.unload_textual_inversion()


@pytestmark_shipped
def test_shipped_clip_classifies_colour_zero_shot():
    import torch.nn.functional as F

    from utils.data import load_mnist
    from utils.minisd.tokenizer import build_tokenizer

    clip, tok = load_clip(), build_tokenizer()
    digits, _ = load_mnist(split="test")
    colour = np.arange(len(digits)) % len(TRAIN_COLOURS)
    pixels = render(digits, colour, np.zeros(len(digits), int), np.zeros(len(digits), int)) * 2 - 1
    with torch.no_grad():
        image = F.normalize(clip.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
        ids = tok([f"a {c} digit" for c in TRAIN_COLOURS], padding="max_length", return_tensors="pt")
        text = F.normalize(clip.get_text_features(input_ids=ids.input_ids).pooler_output, dim=-1)
    assert ((image @ text.T).argmax(1).numpy() == colour).mean() >= 0.9
    assert len(DIGIT_WORDS) == 10 and set(TRAIN_COLOURS) < set(PALETTE)
