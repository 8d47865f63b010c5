"""Bad input at the learner's boundary gets a short error that names the argument or the file.

Only two kinds of check are tested here, because only they exist: arguments of what a notebook
calls (a learner types them), and what a learner's files or network can break (a truncated
download, a missing weights file, a Hub that does not answer). Functions that only other code in
utils, bench/ or tools/ calls take their arguments unchecked. ``CASES`` is one table of
``(name, call, error, match)``: ``call`` takes the ``broken`` fixture (folders with missing or
corrupt weights) and ``match`` is what the message must say. The command lines' own argument
checks are the small table ``COMMAND_LINES``.
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

from utils import (data, device, digits, finetune, gmm, lessons, metrics, plotting,  # noqa: E402
                   sampler_report, samplers, score, sd15, track)
from utils.minisd import __main__ as minisd_main  # noqa: E402
from utils.minisd import data as minisd_data  # noqa: E402
from utils.minisd import load_clip  # noqa: E402
from utils.settings import Settings  # noqa: E402

IMAGE = torch.zeros(3, 8, 8)
X = torch.zeros(4, 2, dtype=torch.float64)
SIGMAS = [2.0, 1.0, 0.0]
ZERO = lambda x, sigma: torch.zeros_like(x)  # noqa: E731  an eps model
DIST = lambda x: 0.0  # noqa: E731
ROWS = [{"sampler": "Euler/DDIM", "budget": 4, "nfe": 4, "distance": 0.5}]
RGB = torch.zeros(2, 3, 32, 32)
EYE = torch.eye(2)[None]
DIGITS = np.zeros((2, 28, 28), np.uint8)
Z2 = np.zeros(2, int)
SD = SimpleNamespace(course_track="sd")


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
    save_file({k: v.contiguous() for k, v in metrics.DigitClassifier().state_dict().items()},
              b.classifier)
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
    # pipelines: a MiniSD-shaped folder (it has clip/) with a truncated U-Net, and one without
    # VAE weights
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


def case(name, call, error, match):
    return pytest.param(call, error, match, id=name)


# Denoiser.forward and .denoise check x and sigma alike; every sampler checks model, sigmas and x
# alike (as a generator: on its first step); ink_area and ink_colour read images through as_images.
DENOISER_INPUTS = [
    ("numpy x", np.zeros((1, 1, 32, 32)), 1.0, TypeError, "x must be a float tensor"),
    ("RGB x", torch.zeros(1, 3, 32, 32), 1.0, ValueError, r"x must be \(B, 1, H, W\)"),
    ("no channel", torch.zeros(1, 32, 32), 1.0, ValueError, r"x must be \(B, 1, H, W\)"),
    ("30x30", torch.zeros(1, 1, 30, 30), 1.0, ValueError, "multiples of 4"),
    ("uint8", torch.zeros(1, 1, 32, 32, dtype=torch.uint8), 1.0, TypeError, "float tensor"),
    ("sigma text", torch.zeros(2, 1, 32, 32), "big", TypeError, "sigma must be a number"),
    ("sigma 0", torch.zeros(2, 1, 32, 32), 0.0, ValueError, "sigma must be one positive"),
    ("sigma nan", torch.zeros(2, 1, 32, 32), float("nan"), ValueError, "sigma must be one positive"),
    ("3 sigmas", torch.zeros(2, 1, 32, 32), [1.0, 2.0, 3.0], ValueError, "one per image"),
]
SAMPLER_INPUTS = [
    ("numpy x", ZERO, SIGMAS, np.zeros((4, 2)), TypeError, "x must be a tensor"),
    ("model a string", "gmm", SIGMAS, X, TypeError, "model must be callable"),
    ("increasing", ZERO, [0.0, 1.0, 2.0], X, ValueError, "sigmas must be .* that decrease"),
    ("one sigma", ZERO, [1.0], X, ValueError, "sigmas must be at least 2"),
    ("negative", ZERO, [1.0, -1.0], X, ValueError, "sigmas must be .* >= 0"),
    ("sigmas a string", ZERO, "karras", X, TypeError, "sigmas must be a 1-D list"),
]
IMAGE_INPUTS = [
    ("a file name", "digits.png", TypeError, "images must be"),
    ("grayscale", torch.zeros(2, 1, 32, 32), ValueError, r"images must be \(B, 3, H, W\)"),
    ("range -1..1", -torch.ones(2, 3, 8, 8), ValueError, r"images must be in \[0, 1\]"),
]
CLASSIFIER_INPUTS = [
    ("64x64", torch.zeros(2, 3, 64, 64), None, ValueError, r"32x32 images.*\(64, 64\)"),
    ("none", torch.zeros(0, 3, 32, 32), None, ValueError, "one or more 32x32 images"),
    ("grayscale", torch.zeros(2, 1, 32, 32), None, ValueError, r"images must be \(B, 3"),
    ("model", RGB, torch.nn.Linear(2, 2), TypeError, "model must be a DigitClassifier"),
]

CASES = [
    # --- device, data ---------------------------------------------------------------------------
    case("get_device unknown", lambda b: device.get_device("tpu"), ValueError,
         r"prefer='tpu' is not one of"),
    case("get_device not a string", lambda b: device.get_device(0), ValueError, r"prefer=0"),
    case("get_dtype unknown device", lambda b: device.get_dtype("tpu"), ValueError,
         r"device='tpu' is not a device"),
    case("get_dtype wrong type", lambda b: device.get_dtype(3.5), ValueError, r"device=3.5"),
    case("describe_hardware unknown device", lambda b: device.describe_hardware("gpu"), ValueError,
         r"device='gpu'"),
    case("needs_gpu empty", lambda b: device.needs_gpu(""), ValueError, "needs a reason"),
    case("needs_gpu not a string", lambda b: device.needs_gpu(None), ValueError, "needs a reason"),
    case("tolerance int dtype", lambda b: device.tolerance(torch.int8), ValueError, "has no tolerance"),
    case("load_mnist unknown split", lambda b: data.load_mnist("validation"), ValueError,
         r"split='validation' is not one of 'train', 'test', 'all'"),
    case("load_mnist split not a string", lambda b: data.load_mnist(1), ValueError, r"split=1"),
    case("load_mnist full not a bool", lambda b: data.load_mnist("train", full="yes"), TypeError,
         "full must be"),
    # --- show_images (and to_pil, which reads each image for it) --------------------------------
    case("show_images one PIL image", lambda b: plotting.show_images(Image.new("RGB", (4, 4))),
         TypeError, r"images must be a list.*show_images\(\[image\]\)"),
    case("show_images not images", lambda b: plotting.show_images(3), TypeError, "images must be a list"),
    case("show_images a file name", lambda b: plotting.show_images([IMAGE, "x.png"]), TypeError,
         r"images\[1\]: cannot show a str"),
    case("show_images a batch in the list", lambda b: plotting.show_images([torch.zeros(2, 3, 8, 8)]),
         ValueError, r"images\[0\]: a tensor image must be \(C, H, W\).*image\[0\]"),
    case("show_images channels last tensor", lambda b: plotting.show_images([torch.zeros(8, 8, 3)]),
         ValueError, r"images\[0\]: .*C = 1, 3 or 4.*\(8, 8, 3\)"),
    case("show_images five channels", lambda b: plotting.show_images([np.zeros((4, 4, 5))]),
         ValueError, r"images\[0\]: an array image must be \(H, W\) or \(H, W, C\)"),
    case("show_images 1-D array", lambda b: plotting.show_images([np.zeros(8)]), ValueError,
         r"images\[0\]: .*got shape \(8,\)"),
    case("show_images empty array", lambda b: plotting.show_images([np.zeros((0, 8))]), ValueError,
         r"images\[0\]: .*shape \(0, 8\)"),
    case("show_images strings", lambda b: plotting.show_images([np.array([["a"]])]), ValueError,
         r"images\[0\]: .*dtype <U1"),
    case("show_images empty", lambda b: plotting.show_images([]), ValueError, "show_images got no images"),
    case("show_images too few titles", lambda b: plotting.show_images([IMAGE] * 3, titles=["a"]),
         ValueError, "1 titles for 3 images"),
    case("show_images titles a number", lambda b: plotting.show_images([IMAGE], titles=7), TypeError,
         "titles must be a list"),
    case("show_images cols zero", lambda b: plotting.show_images([IMAGE], cols=0), ValueError,
         "cols must be"),
    case("show_images cols float", lambda b: plotting.show_images([IMAGE], cols=1.5), TypeError,
         "cols must be"),
    case("show_images size negative", lambda b: plotting.show_images([IMAGE], size=-1), ValueError,
         "size must be"),
    # --- lessons --------------------------------------------------------------------------------
    case("held_out_digits n zero", lambda b: lessons.held_out_digits(0), ValueError,
         "n must be between 1 and 500"),
    case("held_out_digits n too big", lambda b: lessons.held_out_digits(501), ValueError,
         "n must be between 1 and 500"),
    case("held_out_digits n float", lambda b: lessons.held_out_digits(2.5), TypeError,
         "n must be an integer"),
    case("held_out_digits seed negative", lambda b: lessons.held_out_digits(2, seed=-1), ValueError,
         "seed must be"),
    case("lesson_images not a course pipeline", lambda b: lessons.lesson_images("mini"), TypeError,
         r"pipe must be a pipeline from utils.load_pipeline\(\)"),
    case("lesson_images steps zero", lambda b: lessons.lesson_images(SD, steps=0), ValueError,
         "steps must be an integer >= 1"),
    case("lesson_images steps float", lambda b: lessons.lesson_images(SD, steps=2.5), TypeError,
         "steps must be an integer"),
    case("lesson_images n zero", lambda b: lessons.lesson_images(SimpleNamespace(course_track="mini"), n=0),
         ValueError, "n must be"),
    case("load_sketch unknown track", lambda b: lessons.load_sketch("sd14"), ValueError,
         "track must be one of"),
    case("load_sketch not a string", lambda b: lessons.load_sketch(None), ValueError,
         "track must be one of"),
    # --- the track, pipelines and SD 1.5's sizes ------------------------------------------------
    case("choose_track not a string", lambda b: track.choose_track(15), TypeError,
         "model must be a string"),
    case("choose_track empty", lambda b: track.choose_track("  "), ValueError, "model is empty"),
    case("choose_track unknown name", lambda b: track.choose_track("sd14"), ValueError,
         r"model='sd14' is not a known name \('mini', 'minisd', 'sd15', 'sd'\)"),
    case("choose_track missing folder", lambda b: track.choose_track("./no/such/folder"),
         FileNotFoundError, "model='./no/such/folder' looks like a folder but does not exist"),
    case("choose_track folder without a pipeline", lambda b: track.choose_track(str(b.empty)),
         FileNotFoundError, "holds no model_index.json"),
    case("load_pipeline unknown model", lambda b: track.load_pipeline("minisd2"), ValueError,
         "model='minisd2'"),
    case("load_pipeline pipeline_class a string",
         lambda b: track.load_pipeline("mini", pipeline_class="img2img"), TypeError,
         "pipeline_class must be a diffusers pipeline class"),
    case("load_pipeline unknown device", lambda b: track.load_pipeline("mini", device="gpu"),
         ValueError, "device='gpu'"),
    case("load_pipeline dtype a string", lambda b: track.load_pipeline("mini", dtype="float16"),
         TypeError, "dtype must be a torch float dtype"),
    case("load_pipeline empty folder", lambda b: track.load_pipeline(str(b.empty)), FileNotFoundError,
         "model_index.json"),
    case("load_pipeline truncated MiniSD U-Net", lambda b: track.load_pipeline(str(b.pipe_truncated)),
         OSError, r"unet.diffusion_pytorch_model.safetensors is truncated or corrupt"
                  r".*python -m utils.minisd train"),
    case("load_pipeline missing VAE weights", lambda b: track.load_pipeline(str(b.pipe_no_vae)),
         FileNotFoundError, r"vae holds no weights file.*save_pretrained"),
    case("build_sd15_component unknown", lambda b: sd15.build_sd15_component("clip"), ValueError,
         r"name='clip' is not one of"),
    case("build_sd15_component not a string", lambda b: sd15.build_sd15_component(0), ValueError,
         r"name=0"),
    case("build_sd15_component empty not a bool",
         lambda b: sd15.build_sd15_component("vae", empty="no"), TypeError,
         "empty must be True or False"),
    case("count_parameters a pipeline", lambda b: sd15.count_parameters(SimpleNamespace()), TypeError,
         r"model must be a torch.nn.Module such as pipe.unet"),
    # --- the MNIST denoiser (utils.score) -------------------------------------------------------
    case("mnist_tensor unknown split", lambda b: score.mnist_tensor("val"), ValueError, r"split='val'"),
    case("build_unet not multiples of 8", lambda b: score.build_unet((12, 24)), ValueError,
         "channels must be"),
    case("build_unet empty", lambda b: score.build_unet(()), ValueError, "channels must be"),
    case("build_unet one int", lambda b: score.build_unet(16), ValueError, "channels must be"),
    case("Denoiser a Linear", lambda b: score.Denoiser(torch.nn.Linear(2, 2)), TypeError,
         "unet must be a diffusers UNet2DModel"),
    *[case(f"Denoiser.{method} {name}", lambda b, m=method, x=x, s=sigma: getattr(b.denoiser, m)(x, s),
           error, match)
      for method in ("forward", "denoise") for name, x, sigma, error, match in DENOISER_INPUTS],
    case("load_mnist_denoiser empty folder", lambda b: score.load_mnist_denoiser(b.empty),
         FileNotFoundError, r"config.json missing.*python -m utils.score train"),
    case("load_mnist_denoiser weights missing", lambda b: score.load_mnist_denoiser(b.denoiser_no_weights),
         FileNotFoundError, r"diffusion_pytorch_model.safetensors is missing.*python -m utils.score train"),
    case("load_mnist_denoiser weights truncated", lambda b: score.load_mnist_denoiser(b.denoiser_truncated),
         OSError, r"diffusion_pytorch_model.safetensors is truncated or corrupt"
                  r".*python -m utils.score train"),
    case("load_mnist_denoiser config corrupt", lambda b: score.load_mnist_denoiser(b.denoiser_bad_config),
         OSError, r"config.json is corrupt.*python -m utils.score train"),
    case("load_mnist_denoiser path a number", lambda b: score.load_mnist_denoiser(3), TypeError,
         "path must be"),
    case("denoising_loss denoiser not callable",
         lambda b: score.denoising_loss("unet", torch.zeros(2, 1, 32, 32)), TypeError,
         "denoiser must be callable"),
    case("denoising_loss x0 unbatched", lambda b: score.denoising_loss(ZERO, torch.zeros(1, 32, 32)),
         ValueError, r"x0 must be a batch.*\(1, 32, 32\)"),
    case("denoising_loss x0 numpy", lambda b: score.denoising_loss(ZERO, np.zeros((2, 1, 32, 32))),
         ValueError, "x0 must be a batch"),
    case("denoising_loss generator a seed",
         lambda b: score.denoising_loss(ZERO, torch.zeros(2, 1, 32, 32), generator=0), TypeError,
         "generator must be a torch.Generator"),
    # --- metrics --------------------------------------------------------------------------------
    case("as_images a string", lambda b: metrics.as_images("a red seven"), TypeError,
         "images must be a list of PIL"),
    case("as_images one PIL image", lambda b: metrics.as_images(Image.new("RGB", (32, 32))), TypeError,
         "images must be a list of PIL images"),
    case("as_images empty list", lambda b: metrics.as_images([]), TypeError, "got an empty list"),
    case("as_images mixed sizes",
         lambda b: metrics.as_images([Image.new("RGB", (32, 32)), Image.new("RGB", (64, 64))]),
         ValueError, r"images must all have one size"),
    case("as_images grayscale tensor", lambda b: metrics.as_images(torch.zeros(2, 1, 32, 32)),
         ValueError, r"images must be \(B, 3, H, W\).*expand"),
    case("as_images RGBA array", lambda b: metrics.as_images(np.zeros((2, 32, 32, 4), np.float32)),
         ValueError, r"images must be \(B, 3, H, W\)"),
    case("as_images range -1..1", lambda b: metrics.as_images(-torch.ones(1, 3, 4, 4)), ValueError,
         r"images must be in \[0, 1\].*\(x \+ 1\) / 2"),
    case("as_images range 0..255 floats", lambda b: metrics.as_images(np.full((1, 4, 4, 3), 255.0)),
         ValueError, r"images must be in \[0, 1\].*x / 255"),
    *[case(f"{fn.__name__} {name}", lambda b, fn=fn, images=images: fn(images), error, match)
      for fn in (metrics.ink_area, metrics.ink_colour) for name, images, error, match in IMAGE_INPUTS],
    case("ink_colour unknown colour", lambda b: metrics.ink_colour(RGB, ["red", "mauve"]), ValueError,
         r"colours must be a list of names from \['red'"),
    case("ink_colour colours a string", lambda b: metrics.ink_colour(RGB, "red"), ValueError,
         "colours must be a list"),
    case("load_classifier missing", lambda b: metrics.load_classifier(b.empty / "c.safetensors"),
         FileNotFoundError, r"path=.* does not exist.*train-classifier"),
    case("load_classifier truncated", lambda b: metrics.load_classifier(b.classifier), OSError,
         r"classifier.safetensors is truncated or corrupt.*python -m utils.metrics train-classifier"),
    case("load_classifier another network", lambda b: metrics.load_classifier(b.not_classifier),
         OSError, r"path=.* holds weights of another network.*train-classifier"),
    case("load_classifier a folder", lambda b: metrics.load_classifier(b.empty), FileNotFoundError,
         "path="),
    case("load_classifier path a number", lambda b: metrics.load_classifier(1.5), TypeError,
         "path must be"),
    *[case(f"{fn.__name__} {name}",
           lambda b, fn=fn, images=images, model=model: fn(images, model or metrics.DigitClassifier()),
           error, match)
      for fn in (metrics.classify, metrics.classifier_features)
      for name, images, model, error, match in CLASSIFIER_INPUTS],
    case("frechet_distance a list", lambda b: metrics.frechet_distance([[0.0]], np.zeros((3, 1))),
         TypeError, "features_a must be a numpy array"),
    case("frechet_distance one row", lambda b: metrics.frechet_distance(np.zeros((3, 2)), np.zeros((1, 2))),
         ValueError, "features_b needs at least 2 rows"),
    case("frechet_distance widths differ",
         lambda b: metrics.frechet_distance(np.zeros((3, 2)), np.zeros((3, 4))), ValueError,
         r"features must be \(N, D\) and \(M, D\)"),
    case("nearest_distance empty reference", lambda b: metrics.nearest_distance(RGB, RGB[:0]),
         ValueError, "reference is empty"),
    case("nearest_distance sizes differ",
         lambda b: metrics.nearest_distance(RGB, torch.zeros(2, 3, 28, 28)), ValueError,
         "reference images must have the size of images"),
    case("nearest_distance images -1..1", lambda b: metrics.nearest_distance(-torch.ones(1, 3, 32, 32), RGB),
         ValueError, r"images must be in \[0, 1\]"),
    # --- samplers and the report on their rows --------------------------------------------------
    case("karras_sigmas steps zero", lambda b: samplers.karras_sigmas(0), ValueError,
         "steps must be an integer >= 1"),
    case("karras_sigmas steps float", lambda b: samplers.karras_sigmas(10.0), TypeError,
         "steps must be an integer"),
    case("karras_sigmas sigma_min zero", lambda b: samplers.karras_sigmas(5, sigma_min=0), ValueError,
         r"sigma_min must be in \(0"),
    case("karras_sigmas sigma_max below sigma_min", lambda b: samplers.karras_sigmas(5, 1.0, 0.5),
         ValueError, r"sigma_max must be in \(1.0"),
    case("karras_sigmas rho negative", lambda b: samplers.karras_sigmas(5, rho=-7), ValueError,
         "rho must be in"),
    *[case(f"{label} {name}", lambda b, s=sampler, m=model, sig=sigmas, x=x: s(m, sig, x), error, match)
      for label, sampler in samplers.SAMPLERS.items()
      for name, model, sigmas, x, error, match in SAMPLER_INPUTS],
    case("heavy_ball beta", lambda b: samplers.heavy_ball(ZERO, SIGMAS, X, beta=1.5), ValueError,
         r"beta must be in \[0, 1\]"),
    case("nesterov beta", lambda b: samplers.nesterov(ZERO, SIGMAS, X, beta=-0.1), ValueError,
         "beta must be"),
    case("adam_like beta2", lambda b: samplers.adam_like(ZERO, SIGMAS, X, beta2=2), ValueError,
         "beta2 must be"),
    case("adam_like delta", lambda b: samplers.adam_like(ZERO, SIGMAS, X, delta=0), ValueError,
         "delta must be"),
    case("gradient_estimation gamma text",
         lambda b: samplers.gradient_estimation(ZERO, SIGMAS, X, gamma="2"), TypeError,
         "gamma must be a number"),
    case("dpm_solver_pp order", lambda b: samplers.dpm_solver_pp(ZERO, SIGMAS, X, order=4), ValueError,
         r"order=4 is not one of 1, 2, 3"),
    case("run sampler a name", lambda b: samplers.run("Heun", ZERO, SIGMAS, X), TypeError,
         r"sampler must be a sampler function.*'Euler/DDIM', 'Heun'"),
    case("run sampler None", lambda b: samplers.run(None, ZERO, SIGMAS, X), TypeError,
         "sampler must be a sampler function"),
    case("run model a string", lambda b: samplers.run(samplers.euler, "gmm", SIGMAS, X), TypeError,
         "model must be callable"),
    case("run increasing sigmas", lambda b: samplers.run(samplers.euler, ZERO, [1.0, 2.0], X),
         ValueError, "sigmas must be"),
    case("trajectory sampler a name", lambda b: samplers.trajectory("Heun", ZERO, SIGMAS, X), TypeError,
         r"sampler must be a sampler function.*'Euler/DDIM', 'Heun'"),
    case("trajectory sampler None", lambda b: samplers.trajectory(None, ZERO, SIGMAS, X), TypeError,
         "sampler must be a sampler function"),
    case("trajectory increasing sigmas",
         lambda b: samplers.trajectory(samplers.euler, ZERO, [1.0, 2.0], X), ValueError, "sigmas must be"),
    case("steps_for_nfe sampler a name", lambda b: samplers.steps_for_nfe("Heun", 4), TypeError,
         "sampler must be"),
    case("steps_for_nfe nfe zero", lambda b: samplers.steps_for_nfe(samplers.heun, 0), ValueError,
         "nfe must be"),
    case("steps_for_nfe nfe float", lambda b: samplers.steps_for_nfe(samplers.heun, 4.0), TypeError,
         "nfe must be"),
    case("distance_vs_nfe nfes one int", lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, 8),
         TypeError, "nfes must be a list"),
    case("distance_vs_nfe nfes empty", lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, []),
         ValueError, "nfes is empty"),
    case("distance_vs_nfe nfe zero", lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, [4, 0]),
         ValueError, "each of nfes must be"),
    case("distance_vs_nfe samplers a list",
         lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, [4], samplers=["Heun"]), TypeError,
         "samplers must be a dict"),
    case("distance_vs_nfe sampler a name",
         lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, [4], samplers={"h": "Heun"}), TypeError,
         "sampler must be a sampler function"),
    case("distance_vs_nfe distance a number", lambda b: samplers.distance_vs_nfe(ZERO, X, 0.1, [4]),
         TypeError, "distance must be callable"),
    case("distance_vs_nfe x_T numpy",
         lambda b: samplers.distance_vs_nfe(ZERO, np.zeros((4, 2)), DIST, [4]), TypeError,
         "x_T must be a tensor"),
    case("distance_vs_nfe schedule a list",
         lambda b: samplers.distance_vs_nfe(ZERO, X, DIST, [4], schedule=SIGMAS), TypeError,
         "schedule must be callable"),
    *[case(f"{label} rows {name}", lambda b, fn=fn, rows=rows: fn(rows), ValueError,
           "rows must be the non-empty list of dicts")
      for label, fn in (("results_table", sampler_report.results_table),
                        ("findings", lambda rows: sampler_report.findings(rows, 0.1)))
      for name, rows in (("empty", []), ("no keys", [{"sampler": "Heun"}]), ("a string", "rows"))],
    case("findings unknown baseline", lambda b: sampler_report.findings(ROWS, 0.1, baseline="DDPM"),
         ValueError, r"baseline='DDPM' is not one of 'Euler/DDIM'"),
    case("findings floor zero", lambda b: sampler_report.findings(ROWS, 0.0), ValueError,
         r"floor must be in \(0"),
    # --- lesson 07's Gaussian mixture and energy distance ---------------------------------------
    case("GaussianMixture means 1-D", lambda b: gmm.GaussianMixture([0.0, 1.0], EYE, [1.0]), ValueError,
         r"means must be \(K, D\)"),
    case("GaussianMixture covs shape", lambda b: gmm.GaussianMixture([[0.0, 1.0]], torch.eye(2), [1.0]),
         ValueError, r"covs must be \(K, D, D\)"),
    case("GaussianMixture covs not positive", lambda b: gmm.GaussianMixture([[0.0, 0.0]], -EYE, [1.0]),
         ValueError, "covs must be symmetric positive definite"),
    case("GaussianMixture weights negative", lambda b: gmm.GaussianMixture([[0.0, 0.0]], EYE, [-1.0]),
         ValueError, "weights must be 1 non-negative"),
    case("GaussianMixture weights text", lambda b: gmm.GaussianMixture([[0.0, 0.0]], EYE, "uniform"),
         TypeError, "weights must be numbers"),
    case("GaussianMixture.sample n zero", lambda b: gmm.GaussianMixture.default().sample(0), ValueError,
         "n must be"),
    case("GaussianMixture.sample sigma negative",
         lambda b: gmm.GaussianMixture.default().sample(3, sigma=-1), ValueError, "sigma must be"),
    case("GaussianMixture.eps x 3-D", lambda b: gmm.GaussianMixture.default().eps(torch.zeros(4, 3), 1.0),
         ValueError, r"x must be a tensor \(n, 2\)"),
    case("GaussianMixture() sigma text", lambda b: gmm.GaussianMixture.default()(X, "1"), TypeError,
         "sigma must be a number"),
    case("mean_distance a numpy", lambda b: gmm.mean_distance(np.zeros((3, 2))), TypeError,
         "a must be a tensor"),
    case("mean_distance a empty", lambda b: gmm.mean_distance(torch.zeros(0, 2)), ValueError,
         "a must be a non-empty"),
    case("mean_distance b other width", lambda b: gmm.mean_distance(X, torch.zeros(3, 5)), ValueError,
         r"b must be a non-empty tensor \(n, 2\)"),
    case("mean_distance chunk zero", lambda b: gmm.mean_distance(X, chunk=0), ValueError,
         "chunk must be"),
    case("energy_distance x 1-D", lambda b: gmm.energy_distance(torch.zeros(4), X), ValueError,
         r"x must be a non-empty"),
    case("energy_distance y other width", lambda b: gmm.energy_distance(X, torch.zeros(4, 3)),
         ValueError, r"y must be a non-empty tensor \(n, 2\)"),
    case("energy_distance y_self text", lambda b: gmm.energy_distance(X, X, y_self="0"), TypeError,
         "y_self must be"),
    # --- MiniSD ---------------------------------------------------------------------------------
    case("load_clip empty folder", lambda b: load_clip(b.empty), FileNotFoundError,
         r"has no clip/ folder"),
    case("load_clip truncated weights", lambda b: load_clip(b.pipe_truncated), OSError,
         r"clip.model.safetensors is truncated or corrupt.*python -m utils.minisd train"),
    case("load_clip path None", lambda b: load_clip(None), TypeError, "path must be"),
    case("caption digit 12", lambda b: minisd_data.caption(12), ValueError, "digit must be 0-9"),
    case("caption digit float", lambda b: minisd_data.caption(7.0), TypeError,
         "digit must be an integer"),
    case("caption digit a word", lambda b: minisd_data.caption("seven"), TypeError,
         "digit must be an integer"),
    case("caption unknown colour", lambda b: minisd_data.caption(3, "mauve"), ValueError,
         r"colour='mauve'"),
    case("caption unknown thickness", lambda b: minisd_data.caption(3, thickness="bold"), ValueError,
         r"thickness='bold'"),
    case("caption unknown size", lambda b: minisd_data.caption(3, size="huge"), ValueError,
         r"size='huge'"),
    case("render 32x32", lambda b: digits.render(np.zeros((2, 32, 32), np.uint8), Z2, Z2, Z2),
         ValueError, r"images must have shape \(N, 28, 28\)"),
    case("render RGB digits", lambda b: digits.render(np.zeros((2, 28, 28, 3), np.uint8), Z2, Z2, Z2),
         ValueError, r"images must have shape \(N, 28, 28\)"),
    case("render range 0..1", lambda b: digits.render(np.full((2, 28, 28), 0.5), Z2, Z2, Z2),
         ValueError, "images must be 0-255"),
    case("render strings", lambda b: digits.render(np.full((2, 28, 28), "a"), Z2, Z2, Z2), TypeError,
         "images must be numbers"),
    case("render colour index too big", lambda b: digits.render(DIGITS, [0, 99], Z2, Z2), ValueError,
         "colour must be 2 integer indices"),
    case("render thickness too short", lambda b: digits.render(DIGITS, Z2, [0], Z2), ValueError,
         "thickness must be 2 integer indices"),
    case("render size names", lambda b: digits.render(DIGITS, Z2, Z2, ["small", "large"]), ValueError,
         "size must be 2 integer indices"),
    case("render shift shape", lambda b: digits.render(DIGITS, Z2, Z2, Z2, shift=[1.0, 1.0]),
         ValueError, r"shift must be \(N, 2\)"),
    case("render unknown colours", lambda b: digits.render(DIGITS, Z2, Z2, Z2, colours=["mauve"]),
         ValueError, "colours must be a list of names"),
]


@pytest.mark.parametrize("call, error, match", CASES)
def test_bad_input_gets_a_clear_error(call, error, match, broken, monkeypatch):
    monkeypatch.delenv("COURSE_MODEL", raising=False)  # choose_track and load_pipeline read it
    with pytest.raises(error, match=match):
        result = call(broken)
        if hasattr(result, "__next__"):  # samplers are generators: they check on the first step
            next(result)


# {tmp} is the test's temporary folder, so that an argument list that passed would write nothing
# into the course's own folders.
COMMAND_LINES = [
    pytest.param(score.main, ["train", "--out", "{tmp}/out", "--work", "{tmp}/work", *extra], match,
                 id=f"utils.score {' '.join(extra)}")
    for extra, match in ((["--steps", "0"], "--steps must be > 0, got 0"),
                         (["--steps", "2.5"], "--steps: invalid int value"),
                         (["--batch-size", "-4"], "--batch-size must be > 0"),
                         (["--lr", "0"], "--lr must be > 0"),
                         (["--checkpoint-every", "0"], "--checkpoint-every must be > 0"))
] + [
    pytest.param(metrics.main, ["train-classifier", "--out", "{tmp}/c.safetensors", "--steps", "0"],
                 "--steps must be > 0", id="utils.metrics --steps 0"),
    pytest.param(minisd_main.main, ["train", "--smoke", "--out", "{tmp}/out", "--unet-minutes", "0"],
                 "--unet-minutes must be > 0", id="utils.minisd --unet-minutes 0"),
    pytest.param(finetune.main, ["textual-inversion", "--images", "{tmp}/images", "--out", "{tmp}/out",
                                 "--token", "<t>", "--init-word", "red", "--steps", "0"],
                 "--steps must be >= 1", id="utils.finetune --steps 0"),
]


@pytest.mark.parametrize("main, argv, match", COMMAND_LINES)
def test_command_line_rejects_bad_arguments(main, argv, match, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert match in capsys.readouterr().err


def test_settings_reject_unclear_flags(monkeypatch):
    for name in ("COURSE_SMOKE", "COURSE_STRICT_WARNINGS"):
        monkeypatch.setenv(name, "maybe")
        with pytest.raises(ValueError, match=f"{name}='maybe'"):
            Settings.from_env()
        monkeypatch.delenv(name)


def test_unreachable_hub_real_model_fails_fast_and_default_falls_back(monkeypatch, tmp_path):
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


def test_check_json_file_names_the_corrupt_file(tmp_path):
    from utils.checks import check_json_file

    (tmp_path / "config.json").write_text(json.dumps({"ok": 1})[:-1])
    with pytest.raises(OSError, match=r"config.json is corrupt.*Rebuild"):
        check_json_file(tmp_path / "config.json", "Rebuild it.")
