"""The model track: real Stable Diffusion 1.5 on a GPU (from the Hub or the local cache), or
MiniSD on any CPU offline.

``load_pipeline()`` is the one place a lesson gets its pipeline. Same diffusers classes, same
``from_pretrained`` code on both tracks; only the folder or hub id differs.
"""
import json
import os
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

from .checks import check_json_file, check_safetensors
from .device import _as_device, attention_slicing_advice, get_device, get_dtype
from .minisd import MINISD_PATH  # defined once, beside the package that trains it
from .hub import (SD15_ID, TOKEN_HOW, cached_folder, download_command, hub_problem,  # noqa: F401
                  hub_reachable, revision, unreachable_why, what_to_do)
from .settings import SETTINGS

STAND_IN_MARK = "course_stand_in"  # set in a stand-in's text-encoder config: what it stands in for
REPO_ROOT = Path(__file__).resolve().parent.parent
_ALIASES = {"mini": "mini", "minisd": "mini", "sd15": SD15_ID, "sd": SD15_ID}


def choose_track(model: str | None = None) -> tuple[str, str, str]:
    """Decide which model to load, without loading it.

    Args:
        model: ``"mini"``, ``"sd15"``, a hub id or a local folder; None reads ``COURSE_MODEL``
            and otherwise chooses real SD on a GPU (CUDA or Apple MPS) when SD 1.5 is in the local
            cache or the Hub is reachable, else MiniSD.

    Returns:
        ``(track, source, reason)``: track is ``"sd"`` or ``"mini"``; source the hub id or folder.
    """
    if model is not None and not isinstance(model, str):
        raise TypeError(f"model must be a string such as 'mini' or 'sd15', got {type(model).__name__}.")
    if model is not None and not model.strip():
        raise ValueError("model is empty: pass 'mini', 'sd15', a Hub id, a local folder, or None to "
                         "choose automatically.")
    explicit = model or SETTINGS.model
    if explicit:
        how = "asked for" if model else "COURSE_MODEL"
        source = _ALIASES.get(explicit.strip().lower(), explicit.strip())
        if source == "mini":
            return "mini", str(MINISD_PATH), f"{how} MiniSD"
        folder = Path(source).expanduser()
        if folder.is_dir():
            if not (folder / "model_index.json").exists():
                raise FileNotFoundError(
                    f"model={explicit!r} is a folder but holds no model_index.json, so it is not a "
                    "saved pipeline. Pass a folder written by pipe.save_pretrained(...), 'mini' or "
                    "'sd15'.")
            track = "mini" if _is_minisd_folder(folder) else "sd"
            return track, str(folder), f"{how} the local folder {folder}"
        # A Hub id is "owner/name"; anything else with a path's shape is a missing folder.
        if source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source:
            raise FileNotFoundError(
                f"model={explicit!r} looks like a folder but does not exist. Pass an existing "
                "folder saved with save_pretrained, a Hub id such as "
                f"{SD15_ID!r}, 'mini' or 'sd15'.")
        if "/" not in source:  # not an alias, not a folder, and a Hub id always has an owner
            raise ValueError(
                f"{'model' if model else 'COURSE_MODEL'}={explicit!r} is not a known name "
                f"({', '.join(map(repr, _ALIASES))}), an existing folder or a Hub id 'owner/name' "
                f"such as {SD15_ID!r}.")
        return "sd", source, f"{how} {source}"
    device = get_device()
    if device.type == "cpu":
        return "mini", str(MINISD_PATH), "no GPU found, so the CPU-sized MiniSD"
    if cached_folder(SD15_ID) is not None:  # loads with no network at all
        return "sd", SD15_ID, f"{device.type} GPU found and SD 1.5 is in the local cache"
    if hub_reachable():
        return "sd", SD15_ID, f"{device.type} GPU and the Hugging Face Hub are available"
    why = unreachable_why()
    return "mini", str(MINISD_PATH), (f"{device.type} GPU found but {why} and SD 1.5 is not in the "
                                      "local cache")


def sd_model() -> str:
    """The Stable Diffusion model for cells that need real SD whatever the lesson's track: the
    model ``COURSE_MODEL`` names when it is an SD one (a Hub id or a local SD folder), else SD 1.5."""
    if SETTINGS.model:
        track, source, _ = choose_track(SETTINGS.model)
        if track == "sd":
            return source
    return SD15_ID


def _is_minisd_folder(folder: Path) -> bool:
    """MiniSD keeps its whole CLIP beside the pipeline; a copy saved with ``save_pretrained`` (a
    fine-tune) does not, but its text encoder has MiniSD's width."""
    if (folder / "clip" / "config.json").exists():
        return True
    try:
        width = json.loads((folder / "text_encoder" / "config.json").read_text())["hidden_size"]
        mini = json.loads((MINISD_PATH / "text_encoder" / "config.json").read_text())["hidden_size"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return width == mini


# Pipeline parts without weights; every other part needs a config.json and a weights file.
_NO_WEIGHTS = ("scheduler", "tokenizer", "tokenizer_2", "feature_extractor")


def _check_pipeline_folder(folder: Path, track: str) -> None:
    """Fail early, naming the file, when a saved pipeline folder lacks a part or holds a broken one."""
    if track == "mini":
        rebuild = (f"Rebuild it with `python -m utils.minisd train --out {folder} --overwrite` (the "
                   "shipped run's exact command is in its TRAINING.json), or restore the shipped "
                   "files with `git checkout -- assets/minisd`.")
    else:
        rebuild = ("Save the pipeline there again with pipe.save_pretrained(folder), or load "
                   "'sd15' from the Hub instead.")
    index = check_json_file(folder / "model_index.json", rebuild)
    for part, spec in index.items():
        if part.startswith("_") or not isinstance(spec, list) or None in spec:
            continue  # settings such as requires_safety_checker, and parts saved as None
        if not (folder / part).is_dir():
            raise FileNotFoundError(f"{folder / part} is missing (model_index.json lists {part}). "
                                    f"{rebuild}")
        if part in _NO_WEIGHTS:
            continue
        check_json_file(folder / part / "config.json", rebuild)
        weights = sorted((folder / part).glob("*.safetensors"))
        if not weights and not list((folder / part).glob("*.bin")):
            raise FileNotFoundError(f"{folder / part} holds no weights file (*.safetensors). {rebuild}")
        for file in weights:
            check_safetensors(file, rebuild)


class HubUnavailable(RuntimeError):
    """A model that is not in the local cache could not be had from the Hub: it is unreachable,
    refused (rate limit) or did not answer in time. ``why`` says which, in a few words."""

    def __init__(self, message: str, why: str):
        super().__init__(message)
        self.why = why


def _load_sd(source: str, pipeline_class, dtype: torch.dtype, components: dict):
    kwargs = {"dtype": dtype, **components}
    if Path(source).exists():
        _check_pipeline_folder(Path(source), "sd")
        return pipeline_class.from_pretrained(source, **kwargs)
    kwargs["revision"] = revision(source)  # None unless utils.hub pins it
    if source == SD15_ID and dtype in (torch.float16, torch.bfloat16):
        kwargs["variant"] = "fp16"  # half the download (bf16 is cast from it)
    variant = kwargs.get("variant")
    try:  # weights already in the local cache load with no network at all
        return pipeline_class.from_pretrained(source, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        pass
    if not hub_reachable():
        why = unreachable_why()
        raise HubUnavailable(
            f"Cannot load {source!r}: it is not in the local cache and {why}. Run this lesson on "
            "Colab (Runtime > Change runtime type > GPU), or download it once where you have "
            f"internet (`{download_command(source, variant)}`; a Hugging Face token is optional "
            f"and lifts the anonymous rate limit: {TOKEN_HOW}) or pass a local folder; or use "
            "model='mini' for MiniSD.", why=f"it is not in the local cache and {why}")
    try:
        return pipeline_class.from_pretrained(source, **kwargs)
    except Exception as err:  # a rate limit or a slow Hub: one clear message, not an HTTP trace
        problem = hub_problem(err)
        if problem is None:
            raise
        raise HubUnavailable(f"Cannot download {source!r}: {problem}. "
                             f"{what_to_do(source, variant)} Or use model='mini' for MiniSD, "
                             "which needs no download.",
                             why=f"{problem} (run the cell again later, or add an HF_TOKEN)"
                             ) from err


def _load_mini(source: str, pipeline_class, dtype: torch.dtype, components: dict):
    """MiniSD from its folder (or a tiny random pipeline before it is shipped), and what it is."""
    if (Path(source) / "model_index.json").exists():
        _check_pipeline_folder(Path(source), "mini")
        pipe = pipeline_class.from_pretrained(source, dtype=dtype, **components)
        return pipe, f"MiniSD ({os.path.relpath(source, REPO_ROOT)})"
    pipe = tiny_random_pipeline(pipeline_class)
    if dtype != torch.float32:
        pipe = pipe.to(dtype=dtype)
    return pipe, ("a TINY RANDOMLY INITIALISED pipeline (MiniSD is not shipped yet, so images are "
                  "noise-like; the code path is the real one)")


def load_pipeline(model: str | None = None, pipeline_class=StableDiffusionPipeline,
                  device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                  verbose: bool = True, **components):
    """Load the lesson's pipeline on the chosen track and print one line saying which and why.

    Args:
        model: see ``choose_track`` (None: ``COURSE_MODEL`` or automatic).
        pipeline_class: e.g. ``StableDiffusionImg2ImgPipeline``; default text-to-image.
        device, dtype: default ``get_device()`` and ``get_dtype()``: fp16 on GPUs, fp32 on the CPU.
            SD on Apple MPS with less than 64 GiB of memory computes attention in slices, as
            diffusers advises (``attention_slicing_advice``); the printed line says so.
        components: parts to use instead of loading them, as ``from_pretrained`` takes them:
            ``vae=other.vae`` shares a part already in memory (and skips its download).

    Returns:
        The pipeline, moved to ``device``, with a ``course_track`` attribute: ``"sd"`` or ``"mini"``.
        When the track was chosen automatically and the Hub refuses or does not answer, it is
        MiniSD, and the printed line says why; a model asked for by name raises instead.
    """
    _check_pipeline_class(pipeline_class)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a torch float dtype such as torch.float16 or torch.float32, "
                        f"got {dtype!r}.")
    device = _as_device(device)
    track, source, reason = choose_track(model)
    dtype = dtype or get_dtype(device)
    if track == "sd":
        try:
            pipe, what = _load_sd(source, pipeline_class, dtype, components), source
        except HubUnavailable as err:
            if model is not None or SETTINGS.model:
                raise  # a model asked for by name: say why it is missing, never swap it
            track, source = "mini", str(MINISD_PATH)
            reason = (f"{get_device().type} GPU found, but SD 1.5 could not be loaded: {err.why}; "
                      "so MiniSD instead, and model='sd15' shows the whole message")
    if track == "mini":
        pipe, what = _load_mini(source, pipeline_class, dtype, components)
    if stand_in(pipe):
        what = (f"a STAND-IN for {stand_in(pipe)} with RANDOM weights (not the model: its "
                "images are noise)")
    # diffusers warns that fp16 "cannot run" on a CPU: it runs (slowly), and the line below says
    # which device and dtype were chosen.
    pipe = pipe.to(device, silence_dtype_warnings=True)
    slicing = attention_slicing_advice(device) if track == "sd" else None
    if slicing:
        pipe.enable_attention_slicing()
        reason += f"; attention slicing on: {slicing}, as diffusers advises"
    pipe.set_progress_bar_config(disable=SETTINGS.smoke)
    pipe.course_track = track
    if verbose:
        print(f"Model track: {what} on {device.type}, {str(dtype).replace('torch.', '')} ({reason}).")
    return pipe


def stand_in(pipe) -> str | None:
    """What a random stand-in pipeline stands in for (``python course.py standin`` marks its text
    encoder's config), or None for a real model."""
    config = getattr(getattr(pipe, "text_encoder", None), "config", None)
    return getattr(config, STAND_IN_MARK, None)


def check_claim(pipe, claim: str, holds) -> None:
    """A lesson's check of what trained weights do ("the VAE beats plain resizing"): print that it
    holds, or raise an AssertionError naming the claim. On a random stand-in (``stand_in(pipe)``)
    no such claim can hold, so it is printed as not checked instead."""
    if stand_in(pipe):
        print(f"Not checked (random STAND-IN weights): {claim}")
        return
    if not bool(holds):
        raise AssertionError(f"This should hold for {pipe.name_or_path or 'the model'} and did "
                             f"not: {claim}")
    print(f"Checked: {claim}")


def _check_pipeline_class(pipeline_class) -> None:
    if not (isinstance(pipeline_class, type) and hasattr(pipeline_class, "from_pretrained")
            and hasattr(pipeline_class, "components")):
        raise TypeError("pipeline_class must be a diffusers pipeline class such as "
                        f"StableDiffusionImg2ImgPipeline, got {pipeline_class!r}.")


def tiny_random_pipeline(pipeline_class=StableDiffusionPipeline, seed: int = 0):
    """A Stable Diffusion pipeline of the real classes with tiny random weights (for tests)."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    # A character-level CLIP tokenizer: no merges, so every letter is a token (MiniSD has words).
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    vocab.update({piece: i + 2 for i, piece in enumerate([*letters, *(c + "</w>" for c in letters)])})
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_attention_heads=2,
        num_hidden_layers=1, max_position_embeddings=32, bos_token_id=0, eos_token_id=1,
        pad_token_id=1))
    vae = AutoencoderKL(block_out_channels=(16, 16, 16), layers_per_block=1, norm_num_groups=8,
                        down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, latent_channels=4, sample_size=32)
    unet = UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=4)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    return pipeline_class(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                          requires_safety_checker=False)

