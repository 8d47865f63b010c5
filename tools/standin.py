"""Stand-ins for the Hugging Face Hub repositories the lessons read, written into a Hub cache.

    python course.py standin                    # tiny: SD 1.5's structure, small widths (seconds)
    python course.py standin --size full        # SD 1.5's published configs (a minute, 12 GB)

then, with no network at all:

    HF_HOME=build/standin-tiny HF_HUB_OFFLINE=1 COURSE_MODEL=sd15 python course.py lab

Every repository in ``utils.hub.HUB_REPOS`` is written under its real id and revision in
huggingface_hub's cache layout (``hub/models--owner--name/refs/main`` and
``snapshots/<commit>/``), so ``from_pretrained``, ``load_textual_inversion`` and
``snapshot_download`` find it offline exactly where they would find the downloaded files. SD 1.5
has its real component classes, configs and file names: the safety checker and feature extractor,
fp32 files and the fp16 variant files, and the real CLIP BPE tokenizer, rebuilt from the merges
that ship in the ``open-clip-torch`` wheel (MIT licensed). The weights are RANDOM: images are
noise, and ``load_pipeline`` says STAND-IN whenever it loads one. They exist to run the real
loading and dtype code paths where there is no GPU or no Hub, never to show results.
"""
import gzip
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

# Only the standard library at the top: `python course.py test` reads BPE_WHEEL before it has
# installed anything. numpy and torch are imported where they are used.
ROOT = Path(__file__).resolve().parents[1]
# The CLIP BPE merges SD 1.5's tokenizer is built from ship in this wheel (MIT licensed): it is
# read, never installed (it would pull in torchvision). `course.py test` and the GPU check's
# --fetch-wheels download it into WHEELS.
BPE_WHEEL = "open-clip-torch==3.3.0"
WHEELS = ROOT / "build" / "wheels"
SIZES = ("tiny", "full")
BPE_FILE = "open_clip/bpe_simple_vocab_16e6.txt.gz"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
CONCEPT = "sd-concepts-library/cat-toy"
DREAMBOOTH = "sd-dreambooth-library/mr-potato-head"
DATASETS = {"diffusers/cat_toy_example": "toy", "diffusers/dog-example": "dog"}
BUILD_VERSION = 2  # bump when what is written changes, so a cached tiny stand-in is rebuilt


EMPTY_HOME = ROOT / "build" / "empty-hf-home"  # a Hub cache with nothing in it: "never downloaded"


def default_home(size: str) -> Path:
    return ROOT / "build" / f"standin-{size}"


# ---------------------------------------------------------------- configurations
def configs(size: str) -> dict:
    """Every component's configuration: SD 1.5's published values (``full``), or the same
    structure with small widths (``tiny``: 64x64 images, same blocks, layers and vocabulary)."""
    from utils import sd15

    if size not in SIZES:
        raise ValueError(f"size={size!r} is not one of {SIZES}.")
    full = {"unet": dict(sd15.UNET_CONFIG), "vae": dict(sd15.VAE_CONFIG),
            "text_encoder": dict(sd15.TEXT_ENCODER_CONFIG),
            "vision": dict(sd15.SAFETY_CHECKER_VISION_CONFIG),
            "projection_dim": sd15.SAFETY_CHECKER_PROJECTION_DIM,
            "scheduler": dict(sd15.SCHEDULER_CONFIG), "image_size": 512}
    if size == "full":
        return full
    width = 32
    full["unet"].update(block_out_channels=(32, 32, 64, 64), norm_num_groups=8,
                        cross_attention_dim=width, attention_head_dim=4, sample_size=8)
    full["vae"].update(block_out_channels=(16, 16, 32, 32), norm_num_groups=8, sample_size=64)
    full["text_encoder"].update(hidden_size=width, intermediate_size=64, num_attention_heads=4,
                                projection_dim=width)
    full["vision"].update(hidden_size=width, intermediate_size=64, num_attention_heads=4,
                          num_hidden_layers=4)
    full["projection_dim"] = width
    full["image_size"] = 64
    return full


# ---------------------------------------------------------------- the real CLIP tokenizer
def find_bpe() -> bytes:
    """The gzipped CLIP BPE merges of ``open-clip-torch``: from an installed ``open_clip`` (found,
    not imported: it imports torchvision) or from its wheel in ``WHEELS`` (build/wheels)."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            file = Path(folder) / Path(BPE_FILE).name
            if file.is_file():
                return file.read_bytes()
    for wheel in sorted(WHEELS.glob("open_clip_torch-*.whl"), reverse=True):
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(BPE_FILE)
    raise FileNotFoundError(
        "The CLIP BPE merges that SD's tokenizer is built from were not found. Fetch the "
        f"open-clip-torch wheel (no need to install it): `pip download --no-deps "
        f"{BPE_WHEEL} -d {WHEELS.relative_to(ROOT)}`.")


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible map from bytes to printable characters."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars)))


def write_tokenizer(folder: Path, bpe_gz: bytes) -> None:
    """SD 1.5's ``tokenizer/`` folder (vocab.json, merges.txt and two small JSON files), built the
    way open_clip builds CLIP's vocabulary: 256 bytes, 256 word ends, 48,894 merges, 2 specials."""
    lines = gzip.decompress(bpe_gz).decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    vocab = list(_bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(merge.split()) for merge in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)},
                                                  ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {**special, "add_prefix_space": False, "do_lower_case": True, "errors": "replace",
         "model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}, indent=2))


# ---------------------------------------------------------------- writing weights
def _save(folder: Path, stem: str, state: dict, fp16: bool) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    save_file(tensors, folder / f"{stem}.safetensors", metadata={"format": "pt"})
    if fp16:  # the fp16 variant files SD 1.5 ships beside the fp32 ones
        half = {k: (v.half() if v.is_floating_point() else v) for k, v in tensors.items()}
        save_file(half, folder / f"{stem}.fp16.safetensors", metadata={"format": "pt"})


def _diffusers_part(model, folder: Path, fp16: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_config(folder)
    _save(folder, "diffusion_pytorch_model", model.state_dict(), fp16)


def _transformers_part(model, folder: Path, fp16: bool, prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    # SD 1.5's files name the text encoder's weights "text_model.*", as transformers did when they
    # were written; transformers reads both spellings, and the stand-in keeps the real one.
    _save(folder, "model", {prefix + k: v for k, v in model.state_dict().items()}, fp16)


def write_pipeline(folder: Path, size: str, seed: int, what: str, fp16: bool = True,
                   share: Path | None = None) -> None:
    """A Stable Diffusion 1.x pipeline folder with random weights, laid out as SD 1.5's repository.

    ``share``: a pipeline folder already written whose VAE, safety checker and feature extractor
    are linked instead of rebuilt (SD 1.4 and 1.5 have the same ones).
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    from utils.sd15 import safety_checker_config
    from utils.track import STAND_IN_MARK  # load_pipeline reads it and says STAND-IN

    cfg = configs(size)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    text_config = CLIPTextConfig(**cfg["text_encoder"])
    setattr(text_config, STAND_IN_MARK, what)
    _transformers_part(CLIPTextModel(text_config).eval(), folder / "text_encoder", fp16,
                       prefix="text_model.")
    _diffusers_part(UNet2DConditionModel(**cfg["unet"]), folder / "unet", fp16)
    if share is not None:
        skip = None if fp16 else shutil.ignore_patterns("*.fp16.*")
        for part in ("vae", "safety_checker", "feature_extractor", "tokenizer"):
            shutil.copytree(share / part, folder / part, copy_function=_link, ignore=skip)
    else:
        _diffusers_part(AutoencoderKL(**cfg["vae"]), folder / "vae", fp16)
        checker = StableDiffusionSafetyChecker(
            safety_checker_config(cfg["vision"], cfg["projection_dim"])).eval()
        _transformers_part(checker, folder / "safety_checker", fp16)
        CLIPImageProcessor(crop_size=224, size=224, resample=3, do_center_crop=True,
                           do_convert_rgb=True, do_normalize=True, do_resize=True,
                           image_mean=[0.48145466, 0.4578275, 0.40821073],
                           image_std=[0.26862954, 0.26130258, 0.27577711]
                           ).save_pretrained(folder / "feature_extractor")
        write_tokenizer(folder / "tokenizer", find_bpe())
    (folder / "scheduler").mkdir(exist_ok=True)  # as SD 1.5's file: with DDIM's clip_sample too
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", **cfg["scheduler"],
         "trained_betas": None}, indent=2))
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
             "feature_extractor": ["transformers", "CLIPImageProcessor"],
             "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
             "scheduler": ["diffusers", "PNDMScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    (folder / "README.md").write_text(f"# STAND-IN for {what}\n\nRandom weights, written by "
                                      "`python course.py standin`. Not a model: images are noise.\n")


def _link(source, target) -> None:
    try:
        Path(target).hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)


def write_concept(folder: Path, size: str, token: str = "<cat-toy>") -> None:
    """A textual-inversion concept in diffusers' format: ``{token: (1, width)}``."""
    import torch
    from safetensors.torch import save_file

    width = configs(size)["text_encoder"]["hidden_size"]
    folder.mkdir(parents=True, exist_ok=True)
    vector = torch.randn(1, width, generator=torch.Generator().manual_seed(7)) * 0.02
    save_file({token: vector}, folder / "learned_embeds.safetensors", metadata={"format": "pt"})
    (folder / "token_identifier.txt").write_text(token)
    (folder / "type_of_concept.txt").write_text("object")


def write_photos(folder: Path, size: str, subject: str, n: int = 5) -> None:
    """``n`` JPEG pictures, drawn: a coloured blob (the subject) on a plain background."""
    import numpy as np
    from PIL import Image, ImageDraw

    side = configs(size)["image_size"]
    rng = np.random.default_rng(sum(map(ord, subject)))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = Image.new("RGB", (side, side), tuple(int(c) for c in rng.integers(150, 250, 3)))
        draw = ImageDraw.Draw(image)
        box = (rng.uniform(0.1, 0.3, 2) * side).tolist() + (rng.uniform(0.7, 0.9, 2) * side).tolist()
        draw.ellipse(box, fill=(200, 120, 60) if subject == "dog" else (90, 90, 200))
        image.save(folder / f"{subject}_{i}.jpeg", quality=90)


# ---------------------------------------------------------------- the Hub cache layout
def _commit(repo: str) -> str:
    from utils.hub import revision

    return revision(repo) or hashlib.sha1(f"stand-in:{repo}".encode()).hexdigest()


def cache_folder(home: Path, repo: str, kind: str = "model") -> Path:
    """Where ``repo`` lives in the Hub cache under ``home`` (HF_HOME), as huggingface_hub keeps it."""
    return home / "hub" / f"{kind}s--{repo.replace('/', '--')}"


def snapshot_folder(home: Path, repo: str, kind: str = "model") -> Path:
    """The snapshot of ``repo`` that the cache's default branch points at (a pipeline folder)."""
    cache = cache_folder(home, repo, kind)
    return cache / "snapshots" / (cache / "refs" / "main").read_text()


def snapshot(home: Path, repo: str, kind: str) -> Path:
    """An empty snapshot folder for ``repo`` in the cache under ``home`` (HF_HOME), with the refs
    that point the default branch at it."""
    cache = cache_folder(home, repo, kind)
    commit = _commit(repo)
    shutil.rmtree(cache, ignore_errors=True)
    (cache / "refs").mkdir(parents=True)
    (cache / "refs" / "main").write_text(commit)
    folder = cache / "snapshots" / commit
    folder.mkdir(parents=True)
    return folder


def build(size: str = "tiny", home: Path | None = None, force: bool = False) -> Path:
    """Write every stand-in into the Hub cache ``home`` (default ``build/standin-<size>``) and
    return ``home``. A complete tiny build of the same version is reused unless ``force``."""
    home = Path(home or default_home(size))
    stamp = home / "STAND-IN.json"
    record = {"size": size, "version": BUILD_VERSION,  # a newly pinned commit rebuilds it too
              "repos": {repo: _commit(repo) for repo in [SD15, CONCEPT, DREAMBOOTH, *DATASETS]}}
    if not force and stamp.exists():
        try:
            if json.loads(stamp.read_text()) == record:
                return home
        except ValueError:
            pass
    home.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)  # written last: a half-written cache is never taken as complete
    sd = snapshot(home, SD15, "model")
    write_pipeline(sd, size, seed=0, what=SD15)
    # The real Dreambooth repository holds fp32 files only; its VAE and safety checker are SD's.
    write_pipeline(snapshot(home, DREAMBOOTH, "model"), size, seed=1, what=DREAMBOOTH, fp16=False,
                   share=sd)
    write_concept(snapshot(home, CONCEPT, "model"), size)
    for repo, subject in DATASETS.items():
        write_photos(snapshot(home, repo, "dataset"), size, subject)
    stamp.write_text(json.dumps(record, indent=1))
    return home


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python course.py standin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="tiny")
    parser.add_argument("--hf-home", help="the cache folder to write (default build/standin-SIZE)")
    parser.add_argument("--force", action="store_true", help="rebuild even if it is up to date")
    args = parser.parse_args(argv)
    home = build(args.size, Path(args.hf_home) if args.hf_home else None, force=args.force)
    print(f"Stand-ins ({args.size}, RANDOM weights) in {home}. Use them with no network:\n"
          f"  HF_HOME={home} HF_HUB_OFFLINE=1 COURSE_MODEL=sd15 python course.py lab")
    return 0
