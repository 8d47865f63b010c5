"""Teaching a Stable Diffusion pipeline something new from a few images (lesson 08).

    train_textual_inversion(pipe, images, prompts, token, ...)   learn one new token's embedding
    train_dreambooth(pipe, images, prompt, ...)                  fine-tune the U-Net (or LoRA) on one subject
    save_embedding(pipe, token, path) / load_embedding(pipe, path)   diffusers' textual-inversion file
    output_root()                                                where runs go (COURSE_OUTPUT_DIR)
    new_output_dir(name)                                         a fresh folder: a rerun never overwrites
    recipe_dir(name, recipe)                                     a folder per recipe: reruns go on
    draw_class_images(pipe, prompt, count, folder)               class images, drawn once, kept
    encode_images(pipe, images), diffusion_loss(...)             the pieces every step is made of

Both trainers work on any ``StableDiffusionPipeline`` (MiniSD on a CPU, SD 1.5 on a GPU), in any
dtype: trained weights are kept in fp32 while they learn and given back in the pipeline's dtype, and
``accelerate`` runs the steps in the pipeline's precision (fp16 mixed precision on a GPU). They keep
a resumable checkpoint in ``out_dir/checkpoint`` (safetensors and JSON, no pickle): call the same
function again after an interruption and it goes on from there. A folder that holds a finished run
is never overwritten unless ``overwrite=True``: called again with the same recipe, a trainer loads
that run's result into the pipeline instead of training again; with another recipe it refuses.
"""
import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .training import differences, discard_checkpoint, fit, get_accelerator
from .training import token_ids as _token_ids

LOCAL_OUTPUTS = Path(__file__).resolve().parents[1] / "build" / "outputs"
DRIVE = Path("/content/drive/MyDrive")  # where Google Drive appears on Colab once mounted
DRIVE_OUTPUTS = "diffusion-course/outputs"  # the course's folder in it
EMBEDDING_FILE = "learned_embeds.safetensors"  # the name diffusers' training script uses
LORA_FILE = "pytorch_lora_weights.safetensors"
# What some text encoders' token embeddings measure, to name the model a wrong-sized file is for.
KNOWN_WIDTHS = {768: "SD 1.x (CLIP ViT-L/14)", 1024: "SD 2.x (OpenCLIP ViT-H/14)",
                1280: "SDXL's second text encoder", 64: "MiniSD"}

__all__ = ["TrainResult", "output_root", "new_output_dir", "recipe_dir", "encode_images",
           "diffusion_loss", "add_token", "train_textual_inversion", "save_embedding",
           "load_embedding", "check_embedding_file", "draw_class_images", "train_dreambooth"]


@dataclass
class TrainResult:
    """What a training call did: every step's loss (resumed runs include the earlier steps)."""
    out_dir: Path
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0      # the step a checkpoint was found at (0: a fresh start)
    seconds: float = 0.0       # wall time of this call
    final: Path | None = None  # the finished artefact: an embedding file, a U-Net or LoRA folder
    reused: bool = False       # True: a finished run of the same recipe was loaded, not trained
    finished: bool = True      # False: paused at ``stop_at``; the same call again goes on


def output_root() -> Path:
    """Where training runs are saved, decided at each call (so mounting Drive in a running notebook
    counts): ``COURSE_OUTPUT_DIR`` if set; else, with Google Drive mounted on Colab,
    ``MyDrive/diffusion-course/outputs``, which outlives the Colab machine; else ``build/outputs``
    in the course folder."""
    from .settings import Settings

    chosen = Settings.from_env().output_dir
    if chosen:
        return Path(chosen).expanduser().absolute()
    if DRIVE.is_dir():
        return DRIVE / DRIVE_OUTPUTS
    return LOCAL_OUTPUTS


def new_output_dir(name: str, root: str | Path | None = None) -> Path:
    """A new empty folder ``root/name-1`` (or ``-2``, ``-3``, ... if taken): nothing is overwritten.
    ``root`` defaults to ``output_root()``."""
    root = Path(root or output_root())
    root.mkdir(parents=True, exist_ok=True)
    for i in count(1):
        path = root / f"{name}-{i}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def recipe_dir(name: str, recipe: dict, root: str | Path | None = None) -> Path:
    """The folder of one recipe, ``root/name-<hash of the recipe>`` (``root`` defaults to
    ``output_root()``): the same recipe always gives the same folder, so running the same cells
    again (after a disconnect, or a kernel restart) resumes an interrupted training run there and
    loads a finished one; a changed recipe gives another folder. Prints one line saying whether the
    folder is new or what the earlier run left in it. ``recipe``: a dict of JSON-able settings."""
    text = json.dumps(recipe, sort_keys=True, default=str)
    path = Path(root or output_root()) / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    if not path.exists():
        path.mkdir(parents=True)
        (path / "recipe.json").write_text(json.dumps(recipe, indent=1, sort_keys=True, default=str))
        print(f"New folder for this recipe: {path}")
        return path
    runs = []
    for run in sorted(p for p in path.iterdir() if p.is_dir()):
        if (run / "training.json").exists():
            steps = json.loads((run / "training.json").read_text())["steps"]
            runs.append(f"{run.name} finished ({steps} steps)")
        elif (run / "checkpoint" / "state.json").exists():
            step = json.loads((run / "checkpoint" / "state.json").read_text())["step"]
            runs.append(f"{run.name} interrupted at step {step}")
    print(f"Continuing this recipe's earlier run in {path}: "
          f"{'; '.join(runs) or 'nothing trained in it yet'}")
    return path


# ---------------------------------------------------------------- the pieces of one training step
@torch.no_grad()
def encode_images(pipe, images, size: int | None = None,
                  batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode training images once with the (frozen) VAE, ``batch_size`` at a time.

    Args:
        images: PIL images, or a float tensor (B, 3, H, W) in [0, 1].
        size: square side in pixels (default the U-Net's ``sample_size`` x the VAE's factor).

    Returns:
        ``(mean, std)`` of the latent distribution, each (B, C, h, w), float32 on the pipe's device;
        a training latent is ``(mean + std * noise) * vae.config.scaling_factor``.
    """
    size = size or pipe.unet.config.sample_size * pipe.vae_scale_factor
    x = pipe.image_processor.preprocess(images, height=size, width=size, resize_mode="crop")
    means, stds = [], []
    for chunk in x.split(batch_size):  # a few at a time: 50 images at 512x512 at once need ~15 GB
        posterior = pipe.vae.encode(chunk.to(pipe.device, pipe.vae.dtype)).latent_dist
        means.append(posterior.mean.float())
        stds.append(posterior.std.float())
    return torch.cat(means), torch.cat(stds)


def _sample_latents(pipe, mean, std, idx, generator) -> torch.Tensor:
    noise = torch.randn(mean[idx].shape, generator=generator).to(mean.device)
    return (mean[idx] + std[idx] * noise) * pipe.vae.config.scaling_factor


def token_ids(pipe, prompts: list[str]) -> torch.Tensor:
    """Token ids (B, model_max_length) on the pipeline's device, padded exactly as the pipeline
    pads them (``utils.training.token_ids`` with ``pipe.tokenizer``)."""
    return _token_ids(pipe.tokenizer, prompts, pipe.device)


def _noise_scheduler(pipe):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(pipe.scheduler.config)  # cheap: a 1,000-entry schedule


def diffusion_loss(pipe, latents: torch.Tensor, text_embeddings: torch.Tensor,
                   generator: torch.Generator, share=None) -> torch.Tensor:
    """The loss Stable Diffusion is trained with: noise the latents to a random timestep and score
    the U-Net's noise prediction. Returns the mean squared error per image, (B,).

    ``share`` (from ``utils.training.fit``, when several processes train): the noise and timesteps
    are drawn for the whole batch, so every process draws the same, and the U-Net sees only this
    process's share of it; ``text_embeddings`` are then that share's already."""
    # A DDPM scheduler on the pipeline's own noise schedule, as diffusers' training scripts use:
    # its add_noise is exact for any timestep, whatever sampler the pipeline holds (DPM-Solver's
    # and Euler's map a timestep onto their current sampling schedule instead).
    scheduler = _noise_scheduler(pipe)
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)  # (B, C, h, w)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(latents),),
                              generator=generator).to(latents.device)
    if share is not None:
        latents, noise, timesteps = share(latents), share(noise), share(timesteps)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    noise_pred = pipe.unet(noisy, timesteps, text_embeddings).sample
    if scheduler.config.get("prediction_type", "epsilon") == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    return F.mse_loss(noise_pred.float(), target.float(), reduction="none").mean((1, 2, 3))


# ---------------------------------------------------------------- output folders and checkpoints
def _start(out_dir: Path, final: Path, recipe: dict, overwrite: bool, accelerator) -> dict | None:
    """Make ``out_dir`` ready to train into (or to resume in), and return None; or, when it holds a
    finished run of this same recipe, return that run's record (training.json) to load instead."""
    record_file = out_dir / "training.json"
    if final.exists() or record_file.exists():
        if not overwrite:
            record = json.loads(record_file.read_text()) if record_file.exists() else None
            if record is None:
                what = f"({final.name}) with no record of its settings (training.json)"
            elif changed := differences(record["recipe"], recipe):
                what = f"made with other settings ({changed})"
            elif not final.exists():
                what = f"whose result {final.name} is missing"
            else:
                return record
            raise FileExistsError(
                f"{out_dir} already holds a finished run {what}. Pass overwrite=True to replace "
                "it, or train into another folder (utils.finetune.recipe_dir or new_output_dir).")
        if accelerator.is_main_process:
            shutil.rmtree(out_dir)
    elif overwrite and accelerator.is_main_process:
        discard_checkpoint(out_dir / "checkpoint")  # overwrite=True also means: do not resume
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()  # several processes: the main one prepared the folder
    return None


def _reused(out_dir: Path, final: Path, record: dict) -> TrainResult:
    print(f"Already trained in {out_dir}: loaded its result; pass overwrite=True to train again.")
    return TrainResult(out_dir, record["losses"], resumed_from=record["resumed_from"],
                       final=final, reused=True)


def precision_for(pipe) -> str:
    """accelerate's mixed precision for training on ``pipe``: its own half dtype ("fp16" or
    "bf16") when it was loaded in one, "fp16" for an fp32 pipeline on a GPU, else "no"."""
    dtype = pipe.unet.dtype
    if dtype in (torch.float16, torch.bfloat16):
        return "fp16" if dtype == torch.float16 else "bf16"
    return "fp16" if pipe.device.type == "cuda" else "no"


def _accelerator(pipe, mixed_precision: str | None):
    """This process's ``Accelerator`` (``utils.training.get_accelerator``) for training ``pipe``."""
    return get_accelerator(mixed_precision or precision_for(pipe), cpu=pipe.device.type != "cuda")


def _autocast(accelerator, pipe):
    """A context factory for the forward pass's precision: accelerate's autocast where it has one
    (fp16 on a GPU); on a CPU with a half-precision pipeline, torch's own autocast, so fp32 trained
    weights meet fp16 activations there exactly as they do on a GPU. Call it before the trained
    weights are made fp32: it reads the pipeline's dtype."""
    dtype, device = pipe.unet.dtype, pipe.device.type
    if accelerator.native_amp:
        return accelerator.autocast
    if dtype in (torch.float16, torch.bfloat16):
        return lambda: torch.autocast(device, dtype=dtype)
    return contextlib.nullcontext


def _capped(pipe, steps: int) -> int:
    """``steps``, or the cap ``COURSE_SD_TRAIN_STEPS`` puts on SD-track runs (the GPU check)."""
    from .settings import SETTINGS

    cap = SETTINGS.sd_train_steps
    if cap and getattr(pipe, "course_track", None) == "sd" and steps > cap:
        print(f"Training {cap} steps instead of {steps} (COURSE_SD_TRAIN_STEPS={cap}).")
        return cap
    return steps


@contextlib.contextmanager
def _trained_in_fp32(params: dict):
    """Trained weights learn in fp32 (an fp16 weight cannot take a small step); afterwards they go
    back to the dtype the pipeline holds, so it generates as before."""
    dtypes = {name: p.dtype for name, p in params.items()}
    for p in params.values():
        p.data = p.data.float()
    try:
        yield
    finally:
        for name, p in params.items():
            p.data = p.data.to(dtypes[name])


def _fit(step_loss, params: dict, *, steps: int, lr: float, weight_decay: float, out_dir: Path,
         recipe: dict, generator: torch.Generator, accelerator, autocast, checkpoint_every: int,
         progress: bool, callback, desc: str, stop_at: int | None = None) -> TrainResult:
    """Both trainers' loop: ``utils.training.fit`` with AdamW on ``params``, gradients clipped to
    norm 1, a checkpoint in ``out_dir/checkpoint`` every ``checkpoint_every`` steps and on
    KeyboardInterrupt, resumed from when there is one."""
    fitted = fit(step_loss, params, torch.optim.AdamW(list(params.values()), lr=lr,
                                                      weight_decay=weight_decay),
                 steps=steps, accelerator=accelerator, autocast=autocast, clip=1.0,
                 checkpoint=out_dir / "checkpoint", checkpoint_every=checkpoint_every,
                 generators=[generator], recipe=recipe, stop_at=stop_at, progress=progress,
                 callback=callback, desc=desc)
    return TrainResult(out_dir, fitted.losses, resumed_from=fitted.resumed_from,
                       seconds=fitted.seconds, finished=fitted.finished)


def _finish(result: TrainResult, final: Path, recipe: dict, accelerator) -> TrainResult:
    if accelerator.is_main_process:
        record = {"recipe": recipe, "steps": len(result.losses), "losses": result.losses,
                  "resumed_from": result.resumed_from, "final": final.name}
        (result.out_dir / "training.json").write_text(json.dumps(record, indent=1))
        discard_checkpoint(result.out_dir / "checkpoint")  # the result is saved now
    accelerator.wait_for_everyone()
    result.final = final
    return result


# ---------------------------------------------------------------- textual inversion
def add_token(pipe, token: str, init_word: str) -> int:
    """Add ``token`` to the tokenizer, give it a row in the embedding matrix that starts as a copy
    of ``init_word``'s row, and return its id. A token added before (an earlier, interrupted call)
    is reused; a word the tokenizer already knows is refused."""
    tokenizer, text_encoder = pipe.tokenizer, pipe.text_encoder
    if token in tokenizer.get_added_vocab():
        return tokenizer.convert_tokens_to_ids(token)
    if token in tokenizer.get_vocab() or len(tokenizer.tokenize(token)) == 1:
        raise ValueError(f"token={token!r} is already a token of this tokenizer; pick a new "
                         "string that is not a word, such as '<my-concept>'.")
    init = tokenizer.encode(init_word, add_special_tokens=False)
    if len(init) != 1:
        raise ValueError(f"init_word={init_word!r} is {len(init)} tokens; pick a single-token word.")
    tokenizer.add_tokens(token)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    new_id = tokenizer.convert_tokens_to_ids(token)
    weight = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[new_id] = weight[init[0]]
    return new_id


def _text_checkpointing(text_encoder, action: str):
    """transformers' ``activation_checkpointing_enable``/``_disable`` (``gradient_checkpointing_*``
    before the rename, deprecated since)."""
    renamed = getattr(text_encoder, f"activation_checkpointing_{action}", None)
    return renamed or getattr(text_encoder, f"gradient_checkpointing_{action}")


class NewTokenVector(nn.Module):
    """The one trainable vector. A forward hook on the token-embedding layer puts it wherever the
    new token's id appears, so the embedding matrix itself is never written during training."""

    def __init__(self, token_id: int, init: torch.Tensor):
        super().__init__()
        self.token_id = token_id
        self.vector = nn.Parameter(init.detach().float().clone())  # (D,)

    def hook(self, module, args, output):  # output: (B, T, D) rows looked up for input_ids (B, T)
        is_new = (args[0] == self.token_id)[..., None]
        return torch.where(is_new, self.vector.to(output.dtype), output)


def train_textual_inversion(pipe, images, prompts: list[str], token: str, init_word: str,
                            out_dir: str | Path, steps: int = 500, lr: float = 5e-3,
                            batch_size: int = 8, seed: int = 0, checkpoint_every: int = 100,
                            mixed_precision: str | None = None, gradient_checkpointing: bool = False,
                            overwrite: bool = False, progress: bool = True,
                            callback=None, stop_at: int | None = None) -> TrainResult:
    """Learn one new token's embedding from a few captioned images; nothing else changes.

    Args:
        images: the examples, PIL images or a float tensor (N, 3, H, W) in [0, 1].
        prompts: N captions that contain ``token``, e.g. "a <purple> three".
        token, init_word: the new token, and the word whose embedding it starts from.
        out_dir: where the checkpoint and the final ``learned_embeds.safetensors`` go. A folder
            with a finished run of the same recipe is loaded, not trained again; one with another
            recipe raises ``FileExistsError``. ``overwrite=True`` trains afresh in either case.
        steps, lr, batch_size, seed: the recipe (AdamW, no weight decay, constant rate).
        checkpoint_every: steps between checkpoints (one is also saved on KeyboardInterrupt).
        mixed_precision: accelerate's setting; default ``precision_for(pipe)``: the pipeline's
            half dtype, or "fp16" for an fp32 pipeline on CUDA, else "no".
        gradient_checkpointing: recompute activations in backward (less memory, ~30% slower).
        callback: called as ``callback(step, loss)`` after every step.
        stop_at: pause after this step with a checkpoint (``TrainResult.finished`` is False), for
            a session that must end; the same call again goes on from there.

    Several processes (``accelerate launch``, see ``python -m utils.finetune --help``): each
    computes its share of every batch; the result is the one a single process gets.

    Returns:
        A ``TrainResult``; afterwards the pipeline knows ``token`` (its row holds the result).
    """
    if len(images) != len(prompts) or not all(token in p for p in prompts):
        raise ValueError(f"give one prompt per image, each containing {token!r}; got "
                         f"{len(images)} images and prompts {prompts[:3]}...")
    steps = _capped(pipe, steps)
    recipe = {"kind": "textual_inversion", "token": token, "init_word": init_word,
              "steps": steps, "lr": lr, "batch_size": batch_size, "seed": seed,
              "images": len(images), "prompts": list(prompts)}
    out_dir = Path(out_dir)
    accelerator = _accelerator(pipe, mixed_precision)
    done = _start(out_dir, out_dir / EMBEDDING_FILE, recipe, overwrite, accelerator)
    token_id = add_token(pipe, token, init_word)
    embedding = pipe.text_encoder.get_input_embeddings()
    if done:  # the token's row from the saved file, as training left it
        vector = load_file(out_dir / EMBEDDING_FILE)[token][0]  # (D,)
        with torch.no_grad():
            embedding.weight[token_id] = vector.to(embedding.weight.device, embedding.weight.dtype)
        return _reused(out_dir, out_dir / EMBEDDING_FILE, done)
    new = NewTokenVector(token_id, embedding.weight[token_id]).to(pipe.device)

    pipe.unet.requires_grad_(False)
    pipe.vae.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    if gradient_checkpointing:  # diffusers and transformers only recompute in train mode
        pipe.unet.enable_gradient_checkpointing()
        _text_checkpointing(pipe.text_encoder, "enable")({"use_reentrant": False})
        pipe.unet.train()
        pipe.text_encoder.train()
    mean, std = encode_images(pipe, images)
    ids = token_ids(pipe, list(prompts))
    generator = torch.Generator().manual_seed(seed)

    def step_loss(share):  # the whole batch is drawn; this process computes its share
        idx = torch.randint(0, len(ids), (batch_size,), generator=generator)
        latents = _sample_latents(pipe, mean, std, idx, generator)
        text_embeddings = pipe.text_encoder(share(ids[idx]))[0]  # (B, T, D), the new row from `new`
        return diffusion_loss(pipe, latents, text_embeddings, generator, share).mean()

    handle = embedding.register_forward_hook(new.hook)
    try:
        result = _fit(step_loss, {"vector": new.vector}, steps=steps, lr=lr, weight_decay=0.0,
                      out_dir=out_dir, recipe=recipe, generator=generator, accelerator=accelerator,
                      autocast=_autocast(accelerator, pipe),
                      checkpoint_every=checkpoint_every, progress=progress, callback=callback,
                      desc=f"textual inversion {token}", stop_at=stop_at)
    finally:
        handle.remove()
        pipe.unet.eval()
        pipe.text_encoder.eval()
        if gradient_checkpointing:
            pipe.unet.disable_gradient_checkpointing()
            _text_checkpointing(pipe.text_encoder, "disable")()
    with torch.no_grad():  # the only write to the embedding matrix: the new token's own row
        embedding.weight[token_id] = new.vector.to(embedding.weight.dtype)
    if not result.finished:
        return result
    if accelerator.is_main_process:
        save_embedding(pipe, token, out_dir / EMBEDDING_FILE)
    return _finish(result, out_dir / EMBEDDING_FILE, recipe, accelerator)


def save_embedding(pipe, token: str, path: str | Path, overwrite: bool = False) -> Path:
    """Save ``token``'s embedding as diffusers saves it: a safetensors file ``{token: (1, D)}``,
    loadable with ``pipe.load_textual_inversion(path)``. An existing file is kept unless
    ``overwrite=True``."""
    token_id = pipe.tokenizer.convert_tokens_to_ids(token)
    if token not in pipe.tokenizer.get_added_vocab():
        raise ValueError(f"token={token!r} was not added to this pipeline's tokenizer.")
    vector = pipe.text_encoder.get_input_embeddings().weight[token_id].detach()
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({token: vector[None].float().cpu().contiguous()}, path, metadata={"format": "pt"})
    return path


def check_embedding_file(pipe, path: str | Path) -> dict[str, torch.Tensor]:
    """Read a textual-inversion safetensors file and check it fits this pipeline's text encoder.

    Raises a ``ValueError`` naming the file, the width it holds and the width expected (diffusers'
    own message for this case does not say either)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path.name}: only .safetensors embedding files are read here (no pickle).")
    tensors = load_file(path)
    expected = pipe.text_encoder.get_input_embeddings().weight.shape[-1]
    for name, tensor in tensors.items():
        width = tensor.shape[-1]
        if width != expected:
            given = KNOWN_WIDTHS.get(width, "another model")
            wanted = KNOWN_WIDTHS.get(expected, "this model")
            raise ValueError(
                f"{path.name} holds an embedding of width {width} for {name!r} (shape "
                f"{tuple(tensor.shape)}; {width} is {given}), but this pipeline's text encoder "
                f"expects width {expected} ({wanted}). Load an embedding trained for this model.")
    return tensors


def load_embedding(pipe, path: str | Path, token: str | None = None) -> None:
    """Check the file (``check_embedding_file``), then ``pipe.load_textual_inversion(path)``."""
    check_embedding_file(pipe, path)
    pipe.load_textual_inversion(str(path), token=token)


# ---------------------------------------------------------------- Dreambooth
def draw_class_images(pipe, prompt: str, count: int, folder: str | Path, *, seed: int = 1000,
                      batch_size: int = 5, **kwargs) -> list:
    """Prior-preservation images: what ``pipe`` draws for ``prompt``, image i from seed
    ``seed + i``, saved as PNG files in ``folder`` (one folder per prompt and model). Images already
    there are read back, not drawn again, so a rerun after an interruption trains on the same ones.
    ``kwargs`` go to the pipeline call (``num_inference_steps``, ...)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:04d}.png" for i in range(count)]
    missing = [i for i, path in enumerate(paths) if not path.exists()]
    if len(missing) < count:
        print(f"{count - len(missing)} of {count} class images were drawn before, in {folder}.")
    for start in range(0, len(missing), batch_size):  # a few at a time: memory stays small
        batch = missing[start:start + batch_size]
        images = pipe([prompt] * len(batch), **kwargs,
                      generator=[torch.Generator().manual_seed(seed + i) for i in batch]).images
        for i, image in zip(batch, images):
            image.save(paths[i])
    return [Image.open(path).convert("RGB") for path in paths]


def train_dreambooth(pipe, images, prompt: str, out_dir: str | Path, *, class_images=None,
                     class_prompt: str | None = None, prior_weight: float = 1.0,
                     steps: int = 400, lr: float = 1e-4, batch_size: int = 4, seed: int = 0,
                     lora_rank: int | None = None, checkpoint_every: int = 100,
                     mixed_precision: str | None = None, gradient_checkpointing: bool = False,
                     overwrite: bool = False, progress: bool = True, callback=None,
                     stop_at: int | None = None) -> TrainResult:
    """Fine-tune ``pipe.unet`` on a few images of one subject, all captioned ``prompt``.

    Args:
        images: 3-8 images of the subject (PIL, or a tensor (N, 3, H, W) in [0, 1]).
        prompt: the instance prompt with a rare token, e.g. "a sks seven".
        class_images, class_prompt: prior preservation: images the *original* model made for the
            class prompt ("a seven"); each step also trains on them, weighted by ``prior_weight``,
            so the class keeps its old meaning. None: no prior preservation.
        lora_rank: None trains every U-Net weight; a rank trains LoRA adapters (peft) on the
            attention projections instead, and saves only those.
        The rest as in ``train_textual_inversion``.

    Returns:
        A ``TrainResult``; ``final`` is ``out_dir/unet`` (a ``save_pretrained`` folder) or the LoRA
        file ``out_dir/pytorch_lora_weights.safetensors``. The pipeline holds the trained weights
        (or, for a finished run of the same recipe found in ``out_dir``, the loaded ones).
    """
    if (class_images is None) != (class_prompt is None):
        raise ValueError("prior preservation needs both class_images and class_prompt (or neither).")
    steps = _capped(pipe, steps)
    recipe = {"kind": "dreambooth", "prompt": prompt, "class_prompt": class_prompt,
              "prior_weight": prior_weight if class_prompt else None, "steps": steps, "lr": lr,
              "batch_size": batch_size, "seed": seed, "lora_rank": lora_rank,
              "images": len(images), "class_images": len(class_images) if class_prompt else 0}
    out_dir = Path(out_dir)
    final = out_dir / (LORA_FILE if lora_rank else "unet")
    accelerator = _accelerator(pipe, mixed_precision)
    done = _start(out_dir, final, recipe, overwrite, accelerator)
    if done:
        if lora_rank:
            pipe.load_lora_weights(out_dir, weight_name=LORA_FILE)  # as training left them
        else:  # every U-Net weight, copied into the dtype and onto the device the pipeline has
            weights = {}
            for file in sorted(final.glob("*.safetensors")):  # one file, or a large model's shards
                weights.update(load_file(file))
            pipe.unet.load_state_dict(weights)
        return _reused(out_dir, final, done)
    unet = pipe.unet
    pipe.vae.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    if lora_rank:
        from peft import LoraConfig

        unet.requires_grad_(False)
        unet.add_adapter(LoraConfig(r=lora_rank, lora_alpha=lora_rank, init_lora_weights="gaussian",
                                    target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    else:
        unet.requires_grad_(True)
    params = {name: p for name, p in unet.named_parameters() if p.requires_grad}
    if gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()

    mean, std = encode_images(pipe, images)
    with torch.no_grad():  # the text encoder is frozen: encode each prompt once
        instance_text = pipe.text_encoder(token_ids(pipe, [prompt]))[0]  # (1, T, D)
        if class_prompt:
            class_mean, class_std = encode_images(pipe, class_images)
            class_text = pipe.text_encoder(token_ids(pipe, [class_prompt]))[0]
    generator = torch.Generator().manual_seed(seed)
    autocast = _autocast(accelerator, pipe)

    def step_loss(share):  # the whole batch is drawn; this process computes its share
        idx = torch.randint(0, len(mean), (batch_size,), generator=generator)
        latents = _sample_latents(pipe, mean, std, idx, generator)
        loss = diffusion_loss(pipe, latents, share(instance_text.expand(batch_size, -1, -1)),
                              generator, share).mean()
        if class_prompt:
            idx = torch.randint(0, len(class_mean), (batch_size,), generator=generator)
            latents = _sample_latents(pipe, class_mean, class_std, idx, generator)
            prior = diffusion_loss(pipe, latents, share(class_text.expand(batch_size, -1, -1)),
                                   generator, share)
            loss = loss + prior_weight * prior.mean()
        return loss

    with _trained_in_fp32(params):
        try:
            result = _fit(step_loss, params, steps=steps, lr=lr, weight_decay=1e-2,
                          out_dir=out_dir, recipe=recipe, generator=generator,
                          accelerator=accelerator, autocast=autocast,
                          checkpoint_every=checkpoint_every, progress=progress,
                          callback=callback, desc="dreambooth" + (" + prior" if class_prompt else ""),
                          stop_at=stop_at)
        finally:
            unet.eval()
            if gradient_checkpointing:
                unet.disable_gradient_checkpointing()
        unet.requires_grad_(False)
        if not result.finished:
            return result
        if lora_rank and accelerator.is_main_process:  # saved in fp32, as they were trained
            from diffusers import StableDiffusionPipeline
            from diffusers.utils import convert_state_dict_to_diffusers
            from peft.utils import get_peft_model_state_dict

            layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
            StableDiffusionPipeline.save_lora_weights(out_dir, unet_lora_layers=layers,
                                                      safe_serialization=True)
        elif accelerator.is_main_process:
            unet.save_pretrained(out_dir / "unet", safe_serialization=True)
    return _finish(result, final, recipe, accelerator)


# ---------------------------------------------------------------- the same recipes as scripts
COMMAND = "python -m utils.finetune"
LAUNCH_HELP = """Run on several GPUs (or CPU processes) by changing the launch command only:

    accelerate launch --multi_gpu --num_processes 4 -m utils.finetune dreambooth ...
    torchrun --nproc_per_node 4 -m utils.finetune dreambooth ...

Every process loads the pipeline onto its own device and computes its share of each batch
(--batch-size is the whole batch: a multiple of the number of processes); the result equals a
single process's. An interrupted run resumes when the same command is run again."""


def _read_images(folder: str | Path) -> list:
    from PIL import Image

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg",
                                                                         ".webp"))
    if not files:
        raise SystemExit(f"{folder} holds no .png, .jpg or .webp images to train on.")
    return [Image.open(p).convert("RGB") for p in files]


def _arguments(argv):
    import argparse

    parser = argparse.ArgumentParser(
        prog=COMMAND, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Textual inversion and Dreambooth, as lesson 08 trains them, on any "
                    "StableDiffusionPipeline.", epilog=LAUNCH_HELP)
    sub = parser.add_subparsers(dest="recipe", required=True)
    ti = sub.add_parser("textual-inversion", help="learn one new token's embedding",
                        epilog=LAUNCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    db = sub.add_parser("dreambooth", help="fine-tune the U-Net (or LoRA adapters) on a subject",
                        epilog=LAUNCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    for p, steps, lr, batch in ((ti, 500, 5e-3, 8), (db, 400, 1e-4, 4)):
        p.add_argument("--model", default="sd15",
                       help="'sd15', 'mini', a Hub id or a saved pipeline folder (default sd15)")
        p.add_argument("--images", required=True, help="a folder of the training images")
        p.add_argument("--out", required=True, help="the run's folder (checkpoint and result)")
        p.add_argument("--steps", type=int, default=steps)
        p.add_argument("--lr", type=float, default=lr)
        p.add_argument("--batch-size", type=int, default=batch,
                       help="the whole batch, shared by the processes")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--checkpoint-every", type=int, default=100)
        p.add_argument("--stop-at", type=int, default=None,
                       help="pause after this step with a checkpoint (run again to go on)")
        p.add_argument("--gradient-checkpointing", action="store_true")
        p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    ti.add_argument("--token", required=True, help="the new token, such as '<my-cat>'")
    ti.add_argument("--init-word", required=True, help="a one-token word it starts from")
    ti.add_argument("--template", default="a photo of {}",
                    help="the caption of every image; {} is replaced by the token")
    db.add_argument("--prompt", required=True, help="the instance prompt, such as 'a sks dog'")
    db.add_argument("--class-prompt", default=None,
                    help="prior preservation: the class prompt, such as 'a dog'")
    db.add_argument("--class-images", default=None,
                    help="the class images' folder (default --out/class-images); missing ones "
                         "are drawn with the model before training")
    db.add_argument("--num-class-images", type=int, default=100)
    db.add_argument("--prior-weight", type=float, default=1.0)
    db.add_argument("--lora-rank", type=int, default=None,
                    help="train LoRA adapters of this rank instead of every U-Net weight")
    args = parser.parse_args(argv)
    for flag in ("steps", "batch_size", "checkpoint_every"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1.")
    if args.lr <= 0:
        parser.error("--lr must be > 0.")
    return args


def main(argv: list[str] | None = None) -> TrainResult:
    """``python -m utils.finetune {textual-inversion,dreambooth} ...``; see ``--help``."""
    from PIL import Image

    from .device import get_dtype
    from .track import load_pipeline

    args = _arguments(argv)
    cpu = not torch.cuda.is_available()
    dtype = get_dtype(torch.device("cpu" if cpu else "cuda"))
    half = {torch.float16: "fp16", torch.bfloat16: "bf16"}
    accelerator = get_accelerator(half.get(dtype, "fp16" if not cpu else "no"), cpu=cpu)
    if args.batch_size % accelerator.num_processes:
        raise SystemExit(f"A batch of {args.batch_size} cannot be shared equally by "
                         f"{accelerator.num_processes} processes; choose a --batch-size that is a "
                         f"multiple of {accelerator.num_processes}.")
    pipe = load_pipeline(args.model, device=accelerator.device, dtype=dtype,
                         verbose=accelerator.is_main_process)
    pipe.set_progress_bar_config(disable=True)
    if accelerator.is_main_process:
        print(f"{accelerator.num_processes} process(es) on {accelerator.device.type}, "
              f"mixed precision {accelerator.mixed_precision!r}; each computes "
              f"{args.batch_size // accelerator.num_processes} of every batch of {args.batch_size}.")
    images = _read_images(args.images)
    common = dict(out_dir=args.out, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                  seed=args.seed, checkpoint_every=args.checkpoint_every, stop_at=args.stop_at,
                  gradient_checkpointing=args.gradient_checkpointing, overwrite=args.overwrite)
    if args.recipe == "textual-inversion":
        prompts = [args.template.format(args.token)] * len(images)
        result = train_textual_inversion(pipe, images, prompts, args.token, args.init_word, **common)
        use = f"pipe.load_textual_inversion({str(result.final)!r})"
    else:
        class_images = None
        if args.class_prompt:
            folder = Path(args.class_images or Path(args.out) / "class-images")
            if accelerator.is_main_process:  # drawn once, by one process; the others read them
                class_images = draw_class_images(pipe, args.class_prompt, args.num_class_images,
                                                 folder, seed=1000 + args.seed)
            accelerator.wait_for_everyone()
            if not accelerator.is_main_process:
                class_images = [Image.open(folder / f"{i:04d}.png").convert("RGB")
                                for i in range(args.num_class_images)]
        result = train_dreambooth(pipe, images, args.prompt, class_images=class_images,
                                  class_prompt=args.class_prompt, prior_weight=args.prior_weight,
                                  lora_rank=args.lora_rank, **common)
        use = (f"pipe.load_lora_weights({str(args.out)!r})" if args.lora_rank else
               f"UNet2DConditionModel.from_pretrained({str(result.final)!r}) as the pipeline's unet")
    if accelerator.is_main_process:
        if result.finished:
            print(f"Done: {result.final} ({len(result.losses)} steps, final loss "
                  f"{result.losses[-1]:.4f}). Use it with {use}.")
        else:
            print(f"Paused at step {len(result.losses)} with a checkpoint in {args.out}; run the "
                  "same command again (without --stop-at) to go on.")
    return result


if __name__ == "__main__":
    main()
