"""Bad input to every public function in utils gets a short error naming the argument.

One parametrised test per function: each case is ``(call, error, match)``, where ``call`` takes the
``broken`` fixture (folders with missing or corrupt weights) and ``match`` names the argument.
"""
import json
import shutil
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

matplotlib.use("Agg")

from bench import sampler_tables  # noqa: E402
from utils import (data, device, digits, gmm, lessons, metrics, plotting, sampler_report,  # noqa: E402
                   samplers, score, sd15, track)
from utils.minisd import data as minisd_data  # noqa: E402
from utils.minisd import load_clip, models, tokenizer  # noqa: E402
from utils.settings import Settings  # noqa: E402

IMAGE = torch.zeros(3, 8, 8)
X = torch.zeros(4, 2, dtype=torch.float64)
SIGMAS = [2.0, 1.0, 0.0]
ZERO = lambda x, sigma: torch.zeros_like(x)  # noqa: E731  an eps model
ROWS = [{"sampler": "Euler/DDIM", "budget": 4, "nfe": 4, "distance": 0.5}]


def case(name, call, error, match):
    return pytest.param(call, error, match, id=name)


def expect(call, error, match, broken):
    with pytest.raises(error, match=match):
        result = call(broken)
        if hasattr(result, "__next__"):  # samplers are generators: they check on the first step
            next(result)


def _truncate(file):
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """Folders and files as a failed download or an interrupted copy leaves them."""
    root = tmp_path_factory.mktemp("broken")
    b = SimpleNamespace(root=root, empty=root / "empty")
    b.empty.mkdir()
    torch.manual_seed(0)
    b.denoiser = score.Denoiser(score.build_unet((8, 16, 16))).eval()  # a working one, untrained
    # the digit classifier: truncated, and a complete file of another network
    b.classifier = root / "classifier.safetensors"
    save_file({k: v.contiguous() for k, v in metrics.DigitClassifier().state_dict().items()}, b.classifier)
    _truncate(b.classifier)
    b.not_classifier = root / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, b.not_classifier)
    # the MNIST denoiser: weights missing, weights truncated, config corrupt
    unet = score.build_unet((8, 16, 16))
    for name in ("denoiser_no_weights", "denoiser_truncated", "denoiser_bad_config"):
        folder = root / name
        unet.save_pretrained(folder)
        setattr(b, name, folder)
    (b.denoiser_no_weights / "diffusion_pytorch_model.safetensors").unlink()
    _truncate(b.denoiser_truncated / "diffusion_pytorch_model.safetensors")
    (b.denoiser_bad_config / "config.json").write_text("{ half a file")
    # pipelines: a MiniSD-shaped folder (it has clip/) with a truncated U-Net, and one without VAE weights
    pipe = track.tiny_random_pipeline()
    b.pipe_truncated, b.pipe_no_vae = root / "pipe_truncated", root / "pipe_no_vae"
    pipe.save_pretrained(b.pipe_truncated)
    shutil.copytree(b.pipe_truncated, b.pipe_no_vae)
    _truncate(b.pipe_truncated / "unet" / "diffusion_pytorch_model.safetensors")
    (b.pipe_no_vae / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    (b.pipe_truncated / "clip").mkdir()
    pipe.text_encoder.config.to_json_file(b.pipe_truncated / "clip" / "config.json")
    save_file({"weight": torch.zeros(100)}, b.pipe_truncated / "clip" / "model.safetensors")
    _truncate(b.pipe_truncated / "clip" / "model.safetensors")
    return b


# --- device, settings, data -----------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    case("unknown", lambda b: device.get_device("tpu"), ValueError, r"prefer='tpu' is not one of"),
    case("not a string", lambda b: device.get_device(0), ValueError, r"prefer=0"),
])
def test_get_device_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("unknown device", lambda b: device.get_dtype("tpu"), ValueError, r"device='tpu' is not a device"),
    case("wrong type", lambda b: device.get_dtype(3.5), ValueError, r"device=3.5"),
])
def test_get_dtype_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("unknown device", lambda b: device.describe_hardware("gpu"), ValueError, r"device='gpu'"),
])
def test_describe_hardware_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("empty", lambda b: device.needs_gpu(""), ValueError, "needs a reason"),
    case("not a string", lambda b: device.needs_gpu(None), ValueError, "needs a reason"),
])
def test_needs_gpu_rejects(call, error, match, broken):
    expect(call, error, match, broken)


def test_settings_reject_unclear_flags(monkeypatch):
    for name in ("COURSE_SMOKE", "COURSE_STRICT_WARNINGS"):
        monkeypatch.setenv(name, "maybe")
        with pytest.raises(ValueError, match=f"{name}='maybe'"):
            Settings.from_env()
        monkeypatch.delenv(name)


@pytest.mark.parametrize("call, error, match", [
    case("unknown split", lambda b: data.load_mnist("validation"), ValueError,
         r"split='validation' is not one of 'train', 'test', 'all'"),
    case("split not a string", lambda b: data.load_mnist(1), ValueError, r"split=1"),
    case("full not a bool", lambda b: data.load_mnist("train", full="yes"), TypeError, "full must be"),
])
def test_load_mnist_rejects(call, error, match, broken):
    expect(call, error, match, broken)


# --- plotting -------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    case("wrong type", lambda b: plotting.to_pil("image.png"), TypeError, "image: cannot show a str"),
    case("batch tensor", lambda b: plotting.to_pil(torch.zeros(2, 3, 8, 8)), ValueError,
         r"image: a tensor image must be \(C, H, W\).*image\[0\]"),
    case("channels last tensor", lambda b: plotting.to_pil(torch.zeros(8, 8, 3)), ValueError,
         r"image: .*C = 1, 3 or 4.*\(8, 8, 3\)"),
    case("five channels", lambda b: plotting.to_pil(np.zeros((8, 8, 5))), ValueError,
         r"image: .*\(H, W, C\) with C = 1, 3 or 4"),
    case("1-D array", lambda b: plotting.to_pil(np.zeros(8)), ValueError, r"image: .*got shape \(8,\)"),
    case("empty array", lambda b: plotting.to_pil(np.zeros((0, 8))), ValueError, r"image: .*shape \(0, 8\)"),
    case("strings", lambda b: plotting.to_pil(np.array([["a"]])), ValueError, "image: .*dtype <U1"),
])
def test_to_pil_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("one PIL image", lambda b: plotting.show_images(Image.new("RGB", (4, 4))), TypeError,
         r"images must be a list.*show_images\(\[image\]\)"),
    case("not images", lambda b: plotting.show_images(3), TypeError, "images must be a list"),
    case("bad element", lambda b: plotting.show_images([IMAGE, "x.png"]), TypeError,
         r"images\[1\]: cannot show a str"),
    case("RGBA-like 5 channels", lambda b: plotting.show_images([np.zeros((4, 4, 5))]), ValueError,
         r"images\[0\]: an array image"),
    case("empty", lambda b: plotting.show_images([]), ValueError, "show_images got no images"),
    case("too few titles", lambda b: plotting.show_images([IMAGE] * 3, titles=["a"]), ValueError,
         "1 titles for 3 images"),
    case("titles a string", lambda b: plotting.show_images([IMAGE], titles=7), TypeError,
         "titles must be a list"),
    case("cols zero", lambda b: plotting.show_images([IMAGE], cols=0), ValueError, "cols must be"),
    case("cols float", lambda b: plotting.show_images([IMAGE], cols=1.5), TypeError, "cols must be"),
    case("size negative", lambda b: plotting.show_images([IMAGE], size=-1), ValueError, "size must be"),
])
def test_show_images_rejects(call, error, match, broken):
    expect(call, error, match, broken)


# --- lessons --------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    case("n zero", lambda b: lessons.held_out_digits(0), ValueError, "n must be between 1 and 500"),
    case("n too big", lambda b: lessons.held_out_digits(501), ValueError, "n must be between 1 and 500"),
    case("n float", lambda b: lessons.held_out_digits(2.5), TypeError, "n must be an integer"),
    case("seed negative", lambda b: lessons.held_out_digits(2, seed=-1), ValueError, "seed must be"),
])
def test_held_out_digits_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("not a course pipeline", lambda b: lessons.lesson_images("mini"), TypeError,
         r"pipe must be a pipeline from utils.load_pipeline\(\)"),
    case("steps zero", lambda b: lessons.lesson_images(SimpleNamespace(course_track="sd"), steps=0),
         ValueError, "steps must be an integer >= 1"),
    case("steps float", lambda b: lessons.lesson_images(SimpleNamespace(course_track="sd"), steps=2.5),
         TypeError, "steps must be an integer"),
    case("n zero", lambda b: lessons.lesson_images(SimpleNamespace(course_track="mini"), n=0),
         ValueError, "n must be"),
])
def test_lesson_images_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("unknown track", lambda b: lessons.load_sketch("sd14"), ValueError, "track must be one of"),
    case("not a string", lambda b: lessons.load_sketch(None), ValueError, "track must be one of"),
])
def test_load_sketch_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("not a path", lambda b: lessons.draw_sketches(3), TypeError, "folder must be a folder"),
])
def test_draw_sketches_rejects(call, error, match, broken):
    expect(call, error, match, broken)


# --- track and SD 1.5 -----------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    case("zero", lambda b: track.hub_reachable(0), ValueError, r"timeout must be in \(0"),
    case("string", lambda b: track.hub_reachable("3"), TypeError, "timeout must be a number"),
])
def test_hub_reachable_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("not a string", lambda b: track.choose_track(15), TypeError, "model must be a string"),
    case("empty", lambda b: track.choose_track("  "), ValueError, "model is empty"),
    case("unknown name", lambda b: track.choose_track("sd14"), ValueError,
         r"model='sd14' is not a known name \('mini', 'minisd', 'sd15', 'sd'\)"),
    case("missing folder", lambda b: track.choose_track("./no/such/folder"), FileNotFoundError,
         "model='./no/such/folder' looks like a folder but does not exist"),
    case("folder without a pipeline", lambda b: track.choose_track(str(b.empty)), FileNotFoundError,
         "holds no model_index.json"),
])
def test_choose_track_rejects(call, error, match, broken, monkeypatch):
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("unknown model", lambda b: track.load_pipeline("minisd2"), ValueError, "model='minisd2'"),
    case("pipeline_class a string", lambda b: track.load_pipeline("mini", pipeline_class="img2img"),
         TypeError, "pipeline_class must be a diffusers pipeline class"),
    case("unknown device", lambda b: track.load_pipeline("mini", device="gpu"), ValueError, "device='gpu'"),
    case("dtype a string", lambda b: track.load_pipeline("mini", dtype="float16"), TypeError,
         "dtype must be a torch float dtype"),
    case("empty folder", lambda b: track.load_pipeline(str(b.empty)), FileNotFoundError,
         "model_index.json"),
    case("truncated MiniSD U-Net", lambda b: track.load_pipeline(str(b.pipe_truncated)), OSError,
         r"unet.diffusion_pytorch_model.safetensors is truncated or corrupt.*python -m utils.minisd train"),
    case("missing VAE weights", lambda b: track.load_pipeline(str(b.pipe_no_vae)), FileNotFoundError,
         r"vae holds no weights file.*save_pretrained"),
])
def test_load_pipeline_rejects(call, error, match, broken, monkeypatch):
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("pipeline_class an instance", lambda b: track.tiny_random_pipeline(object()), TypeError,
         "pipeline_class must be"),
    case("seed float", lambda b: track.tiny_random_pipeline(seed=0.5), TypeError, "seed must be an integer"),
])
def test_tiny_random_pipeline_rejects(call, error, match, broken):
    expect(call, error, match, broken)


def test_unreachable_hub_real_model_fails_fast_and_default_falls_back(monkeypatch, tmp_path, capsys):
    # tests/test_track_sd15.py covers HF_HUB_OFFLINE=1 and the CPU default. Here the Hub is simply
    # unreachable (nothing listens at the endpoint), and the machine has a GPU, so the automatic
    # choice really asks the Hub before it falls back to MiniSD.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"Colab.*`hf auth login`.*local folder"):
        track.load_pipeline("sd15", device="cpu", verbose=False)
    monkeypatch.setattr(track, "get_device", lambda: torch.device("cuda"))
    which, source, reason = track.choose_track()
    assert (which, source) == ("mini", str(track.MINISD_PATH)) and "Hub is unreachable" in reason


@pytest.mark.parametrize("call, error, match", [
    case("unknown", lambda b: sd15.build_sd15_component("clip"), ValueError, r"name='clip' is not one of"),
    case("not a string", lambda b: sd15.build_sd15_component(0), ValueError, r"name=0"),
    case("empty not a bool", lambda b: sd15.build_sd15_component("vae", empty="no"), TypeError,
         "empty must be True or False"),
])
def test_build_sd15_component_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("a pipeline, not a module", lambda b: sd15.count_parameters(SimpleNamespace()), TypeError,
         r"model must be a torch.nn.Module such as pipe.unet"),
])
def test_count_parameters_rejects(call, error, match, broken):
    expect(call, error, match, broken)


# --- the MNIST denoiser (utils.score) ---------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    case("unknown split", lambda b: score.mnist_tensor("val"), ValueError, r"split='val'"),
])
def test_mnist_tensor_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("not multiples of 8", lambda b: score.build_unet((12, 24)), ValueError, "channels must be"),
    case("empty", lambda b: score.build_unet(()), ValueError, "channels must be"),
    case("one int", lambda b: score.build_unet(16), ValueError, "channels must be"),
])
def test_build_unet_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("a Linear", lambda b: score.Denoiser(torch.nn.Linear(2, 2)), TypeError,
         "unet must be a diffusers UNet2DModel"),
])
def test_denoiser_init_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("method", ["forward", "denoise"])
@pytest.mark.parametrize("x, sigma, error, match", [
    pytest.param(np.zeros((1, 1, 32, 32)), 1.0, TypeError, "x must be a float tensor", id="numpy x"),
    pytest.param(torch.zeros(1, 3, 32, 32), 1.0, ValueError, r"x must be \(B, 1, H, W\)", id="RGB x"),
    pytest.param(torch.zeros(1, 32, 32), 1.0, ValueError, r"x must be \(B, 1, H, W\)", id="no channel"),
    pytest.param(torch.zeros(1, 1, 30, 30), 1.0, ValueError, "multiples of 4", id="30x30"),
    pytest.param(torch.zeros(1, 1, 32, 32, dtype=torch.uint8), 1.0, TypeError, "float tensor", id="uint8"),
    pytest.param(torch.zeros(2, 1, 32, 32), "big", TypeError, "sigma must be a number", id="sigma text"),
    pytest.param(torch.zeros(2, 1, 32, 32), 0.0, ValueError, "sigma must be one positive", id="sigma 0"),
    pytest.param(torch.zeros(2, 1, 32, 32), float("nan"), ValueError, "sigma must be one positive",
                 id="sigma nan"),
    pytest.param(torch.zeros(2, 1, 32, 32), [1.0, 2.0, 3.0], ValueError, "one per image", id="3 sigmas"),
])
def test_denoiser_forward_and_denoise_reject(broken, method, x, sigma, error, match):
    with pytest.raises(error, match=match):
        getattr(broken.denoiser, method)(x, sigma)


@pytest.mark.parametrize("call, error, match", [
    case("empty folder", lambda b: score.load_mnist_denoiser(b.empty), FileNotFoundError,
         r"config.json missing.*python -m utils.score train"),
    case("weights missing", lambda b: score.load_mnist_denoiser(b.denoiser_no_weights), FileNotFoundError,
         r"diffusion_pytorch_model.safetensors is missing.*python -m utils.score train"),
    case("weights truncated", lambda b: score.load_mnist_denoiser(b.denoiser_truncated), OSError,
         r"diffusion_pytorch_model.safetensors is truncated or corrupt.*python -m utils.score train"),
    case("config corrupt", lambda b: score.load_mnist_denoiser(b.denoiser_bad_config), OSError,
         r"config.json is corrupt.*python -m utils.score train"),
    case("path not a path", lambda b: score.load_mnist_denoiser(3), TypeError, "path must be"),
])
def test_load_mnist_denoiser_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("n float", lambda b: score.sample_sigmas(2.0), TypeError, "n must be an integer"),
    case("n negative", lambda b: score.sample_sigmas(-1), ValueError, "n must be an integer >= 0"),
    case("generator a seed", lambda b: score.sample_sigmas(2, generator=0), TypeError,
         "generator must be a torch.Generator"),
])
def test_sample_sigmas_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("denoiser not callable", lambda b: score.denoising_loss("unet", torch.zeros(2, 1, 32, 32)),
         TypeError, "denoiser must be callable"),
    case("x0 unbatched", lambda b: score.denoising_loss(ZERO, torch.zeros(1, 32, 32)), ValueError,
         r"x0 must be a batch.*\(1, 32, 32\)"),
    case("x0 numpy", lambda b: score.denoising_loss(ZERO, np.zeros((2, 1, 32, 32))), ValueError,
         "x0 must be a batch"),
])
def test_denoising_loss_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("argv, match", [
    pytest.param(["--steps", "0"], "--steps must be > 0, got 0", id="steps zero"),
    pytest.param(["--steps", "2.5"], "--steps: invalid int value", id="steps float"),
    pytest.param(["--batch-size", "-4"], "--batch-size must be > 0", id="batch negative"),
    pytest.param(["--lr", "0"], "--lr must be > 0", id="lr zero"),
    pytest.param(["--checkpoint-every", "0"], "--checkpoint-every must be > 0", id="checkpoint-every zero"),
])
def test_score_main_rejects(argv, match, tmp_path, capsys):
    with pytest.raises(SystemExit):
        score.main(["train", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), *argv])
    assert match in capsys.readouterr().err


# --- metrics --------------------------------------------------------------------------------

RGB = torch.zeros(2, 3, 32, 32)


@pytest.mark.parametrize("call, error, match", [
    case("a string", lambda b: metrics.as_images("a red seven"), TypeError, "images must be a list of PIL"),
    case("one PIL image", lambda b: metrics.as_images(Image.new("RGB", (32, 32))), TypeError,
         "images must be a list of PIL images"),
    case("empty list", lambda b: metrics.as_images([]), TypeError, "got an empty list"),
    case("mixed sizes", lambda b: metrics.as_images([Image.new("RGB", (32, 32)), Image.new("RGB", (64, 64))]),
         ValueError, r"images must all have one size"),
    case("grayscale tensor", lambda b: metrics.as_images(torch.zeros(2, 1, 32, 32)), ValueError,
         r"images must be \(B, 3, H, W\).*expand"),
    case("RGBA array", lambda b: metrics.as_images(np.zeros((2, 32, 32, 4), np.float32)), ValueError,
         r"images must be \(B, 3, H, W\)"),
    case("range -1..1", lambda b: metrics.as_images(-torch.ones(1, 3, 4, 4)), ValueError,
         r"images must be in \[0, 1\].*\(x \+ 1\) / 2"),
    case("range 0..255 floats", lambda b: metrics.as_images(np.full((1, 4, 4, 3), 255.0)), ValueError,
         r"images must be in \[0, 1\].*x / 255"),
])
def test_as_images_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("fn", [metrics.ink, metrics.ink_area, metrics.bbox_area, metrics.ink_colour,
                                metrics.spread])
@pytest.mark.parametrize("images, error, match", [
    pytest.param("digits.png", TypeError, "images must be", id="a file name"),
    pytest.param(torch.zeros(2, 1, 32, 32), ValueError, r"images must be \(B, 3, H, W\)", id="grayscale"),
    pytest.param(-torch.ones(2, 3, 8, 8), ValueError, r"images must be in \[0, 1\]", id="range -1..1"),
])
def test_image_measures_reject(fn, images, error, match):
    # ink, ink_area, bbox_area, ink_colour and spread all read images through as_images
    with pytest.raises(error, match=match):
        fn(images)


@pytest.mark.parametrize("call, error, match", [
    case("unknown colour", lambda b: metrics.ink_colour(RGB, ["red", "mauve"]), ValueError,
         r"colours must be a list of names from \['red'"),
    case("a string", lambda b: metrics.ink_colour(RGB, "red"), ValueError, "colours must be a list"),
])
def test_ink_colour_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("one image", lambda b: metrics.spread(torch.zeros(1, 3, 8, 8)), ValueError,
         "spread needs at least 2 images"),
])
def test_spread_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("steps zero", lambda b: metrics.train_classifier(steps=0), ValueError, "steps must be"),
    case("batch float", lambda b: metrics.train_classifier(batch=8.0), TypeError, "batch must be"),
    case("limit zero", lambda b: metrics.train_classifier(limit=0), ValueError, "limit must be"),
])
def test_train_classifier_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("not a classifier", lambda b: metrics.evaluate_classifier(torch.nn.Linear(2, 2)), TypeError,
         "model must be a DigitClassifier"),
])
def test_evaluate_classifier_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("not a classifier", lambda b: metrics.save_classifier(None, {}, b.root / "c.safetensors"),
         TypeError, "model must be a DigitClassifier"),
    case("facts not a dict", lambda b: metrics.save_classifier(metrics.DigitClassifier(), 0.9,
                                                               b.root / "c.safetensors"),
         TypeError, "facts must be a dict"),
    case("path not a path", lambda b: metrics.save_classifier(metrics.DigitClassifier(), {}, 5),
         TypeError, "path must be"),
])
def test_save_classifier_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("missing", lambda b: metrics.load_classifier(b.empty / "c.safetensors"), FileNotFoundError,
         r"path=.* does not exist.*train-classifier"),
    case("truncated", lambda b: metrics.load_classifier(b.classifier), OSError,
         r"classifier.safetensors is truncated or corrupt.*python -m utils.metrics train-classifier"),
    case("another network", lambda b: metrics.load_classifier(b.not_classifier), OSError,
         r"path=.* holds weights of another network.*train-classifier"),
    case("a folder", lambda b: metrics.load_classifier(b.empty), FileNotFoundError, "path="),
    case("not a path", lambda b: metrics.load_classifier(1.5), TypeError, "path must be"),
])
def test_load_classifier_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("fn", [metrics.classify, metrics.classifier_features])
@pytest.mark.parametrize("images, model, error, match", [
    pytest.param(torch.zeros(2, 3, 64, 64), None, ValueError, r"32x32 images.*\(64, 64\)", id="64x64"),
    pytest.param(torch.zeros(0, 3, 32, 32), None, ValueError, "one or more 32x32 images", id="none"),
    pytest.param(torch.zeros(2, 1, 32, 32), None, ValueError, r"images must be \(B, 3", id="grayscale"),
    pytest.param(RGB, torch.nn.Linear(2, 2), TypeError, "model must be a DigitClassifier", id="model"),
])
def test_classifier_readers_reject(fn, images, model, error, match):
    # classify and classifier_features take the same images and model
    with pytest.raises(error, match=match):
        fn(images, model or metrics.DigitClassifier())


@pytest.mark.parametrize("call, error, match", [
    case("a list", lambda b: metrics.frechet_distance([[0.0]], np.zeros((3, 1))), TypeError,
         "features_a must be a numpy array"),
    case("one row", lambda b: metrics.frechet_distance(np.zeros((3, 2)), np.zeros((1, 2))), ValueError,
         "features_b needs at least 2 rows"),
    case("widths differ", lambda b: metrics.frechet_distance(np.zeros((3, 2)), np.zeros((3, 4))),
         ValueError, r"features must be \(N, D\) and \(M, D\)"),
])
def test_frechet_distance_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("empty reference", lambda b: metrics.nearest_distance(RGB, RGB[:0]), ValueError, "reference is empty"),
    case("sizes differ", lambda b: metrics.nearest_distance(RGB, torch.zeros(2, 3, 28, 28)), ValueError,
         "reference images must have the size of images"),
    case("images -1..1", lambda b: metrics.nearest_distance(-torch.ones(1, 3, 32, 32), RGB), ValueError,
         r"images must be in \[0, 1\]"),
])
def test_nearest_distance_rejects(call, error, match, broken):
    expect(call, error, match, broken)


def test_metrics_main_rejects_zero_steps(capsys):
    with pytest.raises(SystemExit):
        metrics.main(["train-classifier", "--steps", "0"])
    assert "--steps must be > 0" in capsys.readouterr().err


# --- samplers -------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    case("steps zero", lambda b: samplers.karras_sigmas(0), ValueError, "steps must be an integer >= 1"),
    case("steps float", lambda b: samplers.karras_sigmas(10.0), TypeError, "steps must be an integer"),
    case("sigma_min zero", lambda b: samplers.karras_sigmas(5, sigma_min=0), ValueError,
         r"sigma_min must be in \(0"),
    case("sigma_max below sigma_min", lambda b: samplers.karras_sigmas(5, 1.0, 0.5), ValueError,
         r"sigma_max must be in \(1.0"),
    case("rho negative", lambda b: samplers.karras_sigmas(5, rho=-7), ValueError, "rho must be in"),
])
def test_karras_sigmas_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("not callable", lambda b: samplers.CountingModel("unet"), TypeError, "model must be callable"),
])
def test_counting_model_rejects(call, error, match, broken):
    expect(call, error, match, broken)


SAMPLER_CASES = [
    pytest.param(ZERO, SIGMAS, np.zeros((4, 2)), TypeError, "x must be a tensor", id="numpy x"),
    pytest.param("gmm", SIGMAS, X, TypeError, "model must be callable", id="model a string"),
    pytest.param(ZERO, [0.0, 1.0, 2.0], X, ValueError, "sigmas must be .* that decrease", id="increasing"),
    pytest.param(ZERO, [1.0], X, ValueError, "sigmas must be at least 2", id="one sigma"),
    pytest.param(ZERO, [1.0, -1.0], X, ValueError, "sigmas must be .* >= 0", id="negative"),
    pytest.param(ZERO, "karras", X, TypeError, "sigmas must be a 1-D list", id="sigmas a string"),
]


@pytest.mark.parametrize("sampler", list(samplers.SAMPLERS.values()), ids=list(samplers.SAMPLERS))
@pytest.mark.parametrize("model, sigmas, x, error, match", SAMPLER_CASES)
def test_samplers_reject(sampler, model, sigmas, x, error, match):
    # euler, heun, dpm_solver_pp, gradient_estimation, heavy_ball, nesterov, adam_like share the checks
    with pytest.raises(error, match=match):
        next(sampler(model, sigmas, x))


@pytest.mark.parametrize("call, error, match", [
    case("heavy ball beta", lambda b: samplers.heavy_ball(ZERO, SIGMAS, X, beta=1.5), ValueError,
         r"beta must be in \[0, 1\]"),
    case("nesterov beta", lambda b: samplers.nesterov(ZERO, SIGMAS, X, beta=-0.1), ValueError, "beta must be"),
    case("adam beta2", lambda b: samplers.adam_like(ZERO, SIGMAS, X, beta2=2), ValueError, "beta2 must be"),
    case("adam delta", lambda b: samplers.adam_like(ZERO, SIGMAS, X, delta=0), ValueError, "delta must be"),
    case("gamma text", lambda b: samplers.gradient_estimation(ZERO, SIGMAS, X, gamma="2"), TypeError,
         "gamma must be a number"),
    case("dpm order", lambda b: samplers.dpm_solver_pp(ZERO, SIGMAS, X, order=4), ValueError,
         r"order=4 is not one of 1, 2, 3"),
])
def test_sampler_options_reject(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("fn", [samplers.run, samplers.trajectory])
@pytest.mark.parametrize("sampler, match", [
    pytest.param("Heun", r"sampler must be a sampler function.*'Euler/DDIM', 'Heun'", id="a name"),
    pytest.param(None, "sampler must be a sampler function", id="None"),
])
def test_run_and_trajectory_reject(fn, sampler, match):
    with pytest.raises(TypeError, match=match):
        fn(sampler, ZERO, SIGMAS, X)
    with pytest.raises(ValueError, match="sigmas must be"):
        fn(samplers.euler, ZERO, [1.0, 2.0], X)


@pytest.mark.parametrize("call, error, match", [
    case("sampler a name", lambda b: samplers.steps_for_nfe("Heun", 4), TypeError, "sampler must be"),
    case("nfe zero", lambda b: samplers.steps_for_nfe(samplers.heun, 0), ValueError, "nfe must be"),
    case("nfe float", lambda b: samplers.steps_for_nfe(samplers.heun, 4.0), TypeError, "nfe must be"),
])
def test_steps_for_nfe_rejects(call, error, match, broken):
    expect(call, error, match, broken)


DIST = lambda x: 0.0  # noqa: E731


@pytest.mark.parametrize("call, error, match", [
    case("nfes one int", lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, 8), TypeError,
         "nfes must be a list"),
    case("nfes empty", lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, []), ValueError, "nfes is empty"),
    case("nfe zero", lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, [4, 0]), ValueError,
         "each of nfes must be"),
    case("samplers a list", lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, [4], samplers=["Heun"]),
         TypeError, "samplers must be a dict"),
    case("sampler a name", lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, [4], samplers={"h": "Heun"}),
         TypeError, "sampler must be a sampler function"),
    case("distance a number", lambda b: samplers.distance_vs_nfe(ZERO, X, 0.1, [4]), TypeError,
         "distance must be callable"),
    case("x_T numpy", lambda b: samplers.distance_vs_nfe(ZERO, np.zeros((4, 2)), DIST, [4]), TypeError,
         "x_T must be a tensor"),
    case("schedule a list", lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, [4], schedule=SIGMAS),
         TypeError, "schedule must be callable"),
])
def test_distance_vs_nfe_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("fn", [sampler_report.results_table,
                                lambda rows: sampler_tables.markdown_table(rows, 0.1),
                                lambda rows: sampler_report.findings(rows, 0.1)],
                         ids=["results_table", "markdown_table", "findings"])
@pytest.mark.parametrize("rows", [[], [{"sampler": "Heun"}], "rows"], ids=["empty", "no keys", "string"])
def test_row_readers_reject(fn, rows):
    with pytest.raises(ValueError, match="rows must be the non-empty list of dicts"):
        fn(rows)


@pytest.mark.parametrize("call, error, match", [
    case("floor text", lambda b: sampler_tables.markdown_table(ROWS, "0.1"), TypeError, "floor must be a number"),
])
def test_markdown_table_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("unknown baseline", lambda b: sampler_report.findings(ROWS, 0.1, baseline="DDPM"), ValueError,
         r"baseline='DDPM' is not one of 'Euler/DDIM'"),
    case("floor zero", lambda b: sampler_report.findings(ROWS, 0.0), ValueError, r"floor must be in \(0"),
])
def test_findings_rejects(call, error, match, broken):
    expect(call, error, match, broken)


EYE = torch.eye(2)[None]


@pytest.mark.parametrize("call, error, match", [
    case("means 1-D", lambda b: gmm.GaussianMixture([0.0, 1.0], EYE, [1.0]), ValueError,
         r"means must be \(K, D\)"),
    case("covs shape", lambda b: gmm.GaussianMixture([[0.0, 1.0]], torch.eye(2), [1.0]), ValueError,
         r"covs must be \(K, D, D\)"),
    case("covs not positive", lambda b: gmm.GaussianMixture([[0.0, 0.0]], -EYE, [1.0]), ValueError,
         "covs must be symmetric positive definite"),
    case("weights negative", lambda b: gmm.GaussianMixture([[0.0, 0.0]], EYE, [-1.0]), ValueError,
         "weights must be 1 non-negative"),
    case("weights text", lambda b: gmm.GaussianMixture([[0.0, 0.0]], EYE, "uniform"), TypeError,
         "weights must be numbers"),
    case("sample n zero", lambda b: gmm.GaussianMixture.default().sample(0), ValueError, "n must be"),
    case("sample sigma negative", lambda b: gmm.GaussianMixture.default().sample(3, sigma=-1),
         ValueError, "sigma must be"),
    case("eps x 3-D", lambda b: gmm.GaussianMixture.default().eps(torch.zeros(4, 3), 1.0), ValueError,
         r"x must be a tensor \(n, 2\)"),
    case("eps sigma text", lambda b: gmm.GaussianMixture.default()(X, "1"), TypeError,
         "sigma must be a number"),
])
def test_gaussian_mixture_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("a numpy", lambda b: gmm.mean_distance(np.zeros((3, 2))), TypeError, "a must be a tensor"),
    case("a empty", lambda b: gmm.mean_distance(torch.zeros(0, 2)), ValueError, "a must be a non-empty"),
    case("b other width", lambda b: gmm.mean_distance(X, torch.zeros(3, 5)), ValueError,
         r"b must be a non-empty tensor \(n, 2\)"),
    case("chunk zero", lambda b: gmm.mean_distance(X, chunk=0), ValueError, "chunk must be"),
])
def test_mean_distance_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("x 1-D", lambda b: gmm.energy_distance(torch.zeros(4), X), ValueError, r"x must be a non-empty"),
    case("y other width", lambda b: gmm.energy_distance(X, torch.zeros(4, 3)), ValueError,
         r"y must be a non-empty tensor \(n, 2\)"),
    case("y_self text", lambda b: gmm.energy_distance(X, X, y_self="0"), TypeError, "y_self must be"),
])
def test_energy_distance_rejects(call, error, match, broken):
    expect(call, error, match, broken)


# --- MiniSD ---------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    case("empty folder", lambda b: load_clip(b.empty), FileNotFoundError, r"has no clip/ folder"),
    case("truncated weights", lambda b: load_clip(b.pipe_truncated), OSError,
         r"clip.model.safetensors is truncated or corrupt.*python -m utils.minisd train"),
    case("not a path", lambda b: load_clip(None), TypeError, "path must be"),
])
def test_load_clip_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("digit 12", lambda b: minisd_data.caption(12), ValueError, "digit must be 0-9"),
    case("digit float", lambda b: minisd_data.caption(7.0), TypeError, "digit must be an integer"),
    case("digit a word", lambda b: minisd_data.caption("seven"), TypeError, "digit must be an integer"),
    case("unknown colour", lambda b: minisd_data.caption(3, "mauve"), ValueError, r"colour='mauve'"),
    case("unknown thickness", lambda b: minisd_data.caption(3, thickness="bold"), ValueError,
         r"thickness='bold'"),
    case("unknown size", lambda b: minisd_data.caption(3, size="huge"), ValueError, r"size='huge'"),
])
def test_caption_rejects(call, error, match, broken):
    expect(call, error, match, broken)


DIGITS = np.zeros((2, 28, 28), np.uint8)
Z2 = np.zeros(2, int)


@pytest.mark.parametrize("call, error, match", [
    case("32x32", lambda b: digits.render(np.zeros((2, 32, 32), np.uint8), Z2, Z2, Z2), ValueError,
         r"images must have shape \(N, 28, 28\)"),
    case("RGB digits", lambda b: digits.render(np.zeros((2, 28, 28, 3), np.uint8), Z2, Z2, Z2),
         ValueError, r"images must have shape \(N, 28, 28\)"),
    case("range 0..1", lambda b: digits.render(np.full((2, 28, 28), 0.5), Z2, Z2, Z2), ValueError,
         "images must be 0-255"),
    case("strings", lambda b: digits.render(np.full((2, 28, 28), "a"), Z2, Z2, Z2), TypeError,
         "images must be numbers"),
    case("colour index too big", lambda b: digits.render(DIGITS, [0, 99], Z2, Z2), ValueError,
         "colour must be 2 integer indices"),
    case("thickness too short", lambda b: digits.render(DIGITS, Z2, [0], Z2), ValueError,
         "thickness must be 2 integer indices"),
    case("size names", lambda b: digits.render(DIGITS, Z2, Z2, ["small", "large"]), ValueError,
         "size must be 2 integer indices"),
    case("shift shape", lambda b: digits.render(DIGITS, Z2, Z2, Z2, shift=[1.0, 1.0]), ValueError,
         r"shift must be \(N, 2\)"),
    case("unknown colours", lambda b: digits.render(DIGITS, Z2, Z2, Z2, colours=["mauve"]), ValueError,
         "colours must be a list of names"),
])
def test_render_rejects(call, error, match, broken):
    expect(call, error, match, broken)


RNG = np.random.default_rng(0)


@pytest.mark.parametrize("call, error, match", [
    case("labels 10", lambda b: minisd_data.random_attributes(np.array([3, 10]), RNG), ValueError,
         "labels must be a 1-D array of digits 0-9"),
    case("labels words", lambda b: minisd_data.random_attributes(["seven"], RNG), ValueError, "labels must be"),
    case("rng a seed", lambda b: minisd_data.random_attributes(np.array([3]), 0), TypeError,
         "rng must be a numpy Generator"),
])
def test_random_attributes_rejects(call, error, match, broken):
    expect(call, error, match, broken)


ATTRS = {"digit": np.array([1, 2]), "colour": Z2, "thickness": Z2, "size": Z2}


@pytest.mark.parametrize("call, error, match", [
    case("missing key", lambda b: minisd_data.random_captions({"digit": Z2}, RNG), ValueError,
         "attrs must be a dict with arrays"),
    case("lengths differ", lambda b: minisd_data.random_captions({**ATTRS, "size": np.zeros(3, int)}, RNG),
         ValueError, "attrs arrays must have one length"),
    case("rng a seed", lambda b: minisd_data.random_captions(ATTRS, 0), TypeError, "rng must be"),
])
def test_random_captions_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("variants zero", lambda b: minisd_data.training_set(0), ValueError, "variants must be"),
    case("limit float", lambda b: minisd_data.training_set(1, limit=2.5), TypeError, "limit must be"),
    case("seed negative", lambda b: minisd_data.training_set(1, seed=-1), ValueError, "seed must be"),
])
def test_training_set_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("capital letters", lambda b: tokenizer.build_tokenizer(["Red"]), ValueError, "lowercase ASCII"),
    case("one string", lambda b: tokenizer.build_tokenizer("red"), TypeError, "words must be a list"),
    case("not strings", lambda b: tokenizer.build_tokenizer([7]), TypeError, "words must be a list of strings"),
    case("max length 1", lambda b: tokenizer.build_tokenizer(model_max_length=1), ValueError,
         "model_max_length must be an integer >= 3"),
])
def test_build_tokenizer_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("with a space", lambda b: tokenizer.learn_merges(["red seven"]), ValueError, "lowercase ASCII"),
    case("a string", lambda b: tokenizer.learn_merges("red"), TypeError, "words must be a list"),
])
def test_learn_merges_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("recipe a dict", lambda b: models.build_clip({}, 100, 16, 0, 1), TypeError, "recipe must be a Recipe"),
    case("vocab zero", lambda b: models.build_clip(models.SMOKE, 0, 16, 0, 1), ValueError, "vocab_size must be"),
    case("eos past vocab", lambda b: models.build_clip(models.SMOKE, 10, 16, 0, 10), ValueError,
         "eos must be a token id below vocab_size=10"),
    case("max_length float", lambda b: models.build_clip(models.SMOKE, 10, 16.0, 0, 1), TypeError,
         "max_length must be"),
])
def test_build_clip_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("recipe a string", lambda b: models.build_vae("smoke"), TypeError, "recipe must be a Recipe"),
])
def test_build_vae_rejects(call, error, match, broken):
    expect(call, error, match, broken)


@pytest.mark.parametrize("call, error, match", [
    case("recipe None", lambda b: models.build_unet(None, 32), TypeError, "recipe must be a Recipe"),
    case("cross_attention_dim zero", lambda b: models.build_unet(models.SMOKE, 0), ValueError,
         "cross_attention_dim must be"),
])
def test_minisd_build_unet_rejects(call, error, match, broken):
    expect(call, error, match, broken)


def test_check_json_file_names_the_corrupt_file(tmp_path):
    from utils.checks import check_json_file

    (tmp_path / "config.json").write_text(json.dumps({"ok": 1})[:-1])
    with pytest.raises(OSError, match=r"config.json is corrupt.*Rebuild"):
        check_json_file(tmp_path / "config.json", "Rebuild it.")
