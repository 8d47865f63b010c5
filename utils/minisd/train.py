"""Train MiniSD from scratch, stage by stage, resumably.

Stages (each saved under the work folder, as safetensors, before the next starts):
    1. tokenizer  word-level CLIPTokenizer built from the caption words
    2. clip       CLIPModel (text + vision towers) trained contrastively on captioned digits
    3. vae        AutoencoderKL 3x32x32 <-> 4x8x8; its scaling_factor is measured (1/std of latents)
    4. latents    every training image encoded once (posterior mean and std)
    5. decoder    the VAE decoder alone trained on, encoder frozen, on digits in all nine colours
                  (purple too: the VAE is a general codec; captions, CLIP and the U-Net never see
                  purple); colours come out truer and the U-Net's latent space is unchanged
    6. unet       UNet2DConditionModel predicting noise, cross-attending to the frozen text encoder
    7. export     StableDiffusionPipeline.save_pretrained, weights stored as fp16 safetensors
A finished stage is never redone on ``--resume``; a stage that was interrupted resumes from its
last checkpoint (saved every ``recipe.checkpoint_every_s`` seconds). Every training stage runs the
course's one training loop, ``utils.training.fit``.
"""
import json
import math
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from utils.minisd.data import TRAIN_COLOURS, DIGIT_WORDS, random_captions, render, training_set
from utils.minisd.models import (Recipe, build_clip, build_sampler, build_scheduler, build_unet,
                                 build_vae)
from utils.minisd.tokenizer import build_tokenizer
from utils.record import command_line, versions
from utils.training import EMA, discard_checkpoint, fit, token_ids, warmup_cosine

STAGES = ["tokenizer", "clip", "vae", "latents", "decoder", "unet", "export"]


class Run:
    """One training run: its recipe, work folder, bookkeeping (state.json) and shared data."""

    def __init__(self, recipe: Recipe, work: Path, seed: int, minutes: dict[str, float]):
        self.recipe, self.work, self.seed, self.minutes = recipe, work, seed, minutes
        self.state_path = work / "state.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {
            "recipe": _jsonable(asdict(recipe)), "seed": seed, "stages": {}}
        if self.state["recipe"] != _jsonable(asdict(recipe)) or self.state["seed"] != seed:
            raise ValueError(f"--resume: the work folder {work} holds a run with another recipe or "
                             "seed; use the same flags, or --overwrite to start afresh.")
        self._data = None

    def done(self, stage: str) -> bool:
        return self.state["stages"].get(stage, {}).get("done", False)

    def finish(self, stage: str, seconds: float, **facts) -> None:
        self.state["stages"][stage] = {"done": True, "seconds": round(seconds, 1), **facts}
        self.save_state()

    def save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        os.replace(tmp, self.state_path)  # atomic: an interrupt never leaves half a state file

    def data(self):
        """The rendered training set (uint8 (N, 3, 32, 32), attrs), made once per process."""
        if self._data is None:
            self._data = training_set(self.recipe.variants, seed=self.seed, limit=self.recipe.limit)
        return self._data

    def rng(self, stage: str) -> np.random.Generator:
        """A generator per stage, so resuming one stage does not change another's draws."""
        return np.random.default_rng([self.seed, STAGES.index(stage)])

    def fit(self, stage: str, loss_fn, params: dict, optimizer, *, steps: int, lr: float,
            warmup: int, rng: np.random.Generator, clip: float | None = None,
            ema: EMA | None = None):
        """One stage's training: ``utils.training.fit`` with a warm-up then cosine decay to 10% of
        ``lr``, the stage's time cap (``minutes``) and a checkpoint in the work folder every
        ``checkpoint_every_s`` seconds, which an interrupted stage resumes from."""
        every = self.recipe.checkpoint_every_s
        return fit(loss_fn, params, optimizer, steps=steps,
                   schedule=lambda step, done: warmup_cosine(lr, done, step, warmup, floor=0.1),
                   clip=clip, ema=ema, checkpoint=self.work / f"{stage}-checkpoint",
                   checkpoint_seconds=every if every > 0 else None,
                   minutes=self.minutes.get(stage), generators=[rng], desc=stage)


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


def _images_for(images: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
    return images[torch.as_tensor(idx)].float() / 127.5 - 1.0  # (B, 3, 32, 32) in [-1, 1]


def _named_captions(attrs: dict, idx: np.ndarray, rng: np.random.Generator):
    """Captions for CLIP: random drops as for the U-Net, but never empty (nothing to match)."""
    sub = {k: v[idx] for k, v in attrs.items()}
    texts, kept = random_captions(sub, rng)
    empty = ~kept.any(1)
    if empty.any():  # name the digit instead of saying nothing
        kept[empty, 0] = True
        for i in np.flatnonzero(empty):
            texts[i] = f"a {DIGIT_WORDS[sub['digit'][i]]}"
    return texts, kept, sub


def stage_tokenizer(run: Run) -> dict:
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(run.work / "tokenizer")
    return {"vocab_size": len(tokenizer)}


def _tokenizer(run: Run):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(run.work / "tokenizer")


def stage_clip(run: Run) -> dict:
    r, rng = run.recipe, run.rng("clip")
    tokenizer = _tokenizer(run)
    torch.manual_seed(run.seed)
    clip = build_clip(r, len(tokenizer), tokenizer.model_max_length, tokenizer.bos_token_id,
                      tokenizer.eos_token_id)
    images, attrs = run.data()
    params = dict(clip.named_parameters())
    names = ["digit", "colour", "thickness", "size"]

    def loss_fn(share):
        idx = rng.integers(0, len(images), r.clip_batch)
        texts, kept, sub = _named_captions(attrs, idx, rng)
        # A caption matches every image whose attributes agree with all it names: many positives.
        match = np.ones((len(idx), len(idx)), dtype=bool)  # [image i, caption j]
        for a, name in enumerate(names):
            same = sub[name][:, None] == sub[name][None, :]
            match &= same | ~kept[None, :, a]
        match = torch.as_tensor(match, dtype=torch.float32)
        out = clip(input_ids=token_ids(tokenizer, texts), pixel_values=_images_for(images, idx))
        loss_img = -(match / match.sum(1, keepdim=True) * out.logits_per_image.log_softmax(1))
        loss_txt = -(match.T / match.T.sum(1, keepdim=True) * out.logits_per_text.log_softmax(1))
        return (loss_img.sum(1).mean() + loss_txt.sum(1).mean()) / 2

    fitted = run.fit("clip", loss_fn, params,
                     torch.optim.AdamW(params.values(), lr=r.clip_lr, weight_decay=0.05),
                     steps=r.clip_steps, lr=r.clip_lr, warmup=min(100, r.clip_steps // 10), rng=rng)
    clip.eval()
    clip.save_pretrained(run.work / "clip")
    scores = zero_shot(clip, tokenizer, limit=r.limit)
    if r.limit is None and scores["zero_shot_digit"] < 0.5:
        # The U-Net reads the digit only through this text encoder: if CLIP cannot tell digits
        # apart, neither can MiniSD. Say so now rather than after an hour of U-Net training.
        print(f"WARNING: CLIP's zero-shot digit accuracy is {scores['zero_shot_digit']:.0%} "
              "(chance 10%). Its digit words are near-identical vectors, so MiniSD will not draw "
              "the digit asked for. Give the clip stage more steps or time (--clip-minutes).",
              flush=True)
    return {"final_loss": round(fitted.losses[-1], 4), **_facts(fitted), **scores}


@torch.no_grad()
def zero_shot(clip, tokenizer, limit: int | None = None) -> dict:
    """Zero-shot accuracy of CLIP on held-out test digits (evaluation only, never trained on):
    the caption "a {colour} digit" for colour and "a {digit}" for the digit, highest similarity."""
    from utils.data import load_mnist

    digits, labels = load_mnist(split="test")
    if limit is not None:
        digits, labels = digits[:limit], labels[:limit]
    rng = np.random.default_rng(1234)
    colour = rng.integers(0, len(TRAIN_COLOURS), len(labels))
    thick, size = rng.integers(0, 3, len(labels)), rng.integers(0, 3, len(labels))
    pixels = render(digits, colour, thick, size) * 2 - 1
    image_emb = F.normalize(clip.get_image_features(pixel_values=pixels).pooler_output, dim=-1)

    def accuracy(prompts, truth):
        text_emb = F.normalize(clip.get_text_features(input_ids=token_ids(tokenizer, prompts)).pooler_output,
                               dim=-1)
        return float(((image_emb @ text_emb.T).argmax(1).numpy() == truth).mean())

    return {"zero_shot_colour": round(accuracy([f"a {c} digit" for c in TRAIN_COLOURS], colour), 3),
            "zero_shot_digit": round(accuracy([f"a {w}" for w in DIGIT_WORDS], labels), 3)}


def stage_vae(run: Run) -> dict:
    r, rng = run.recipe, run.rng("vae")
    torch.manual_seed(run.seed)
    vae = build_vae(r)
    images, _ = run.data()
    params = dict(vae.named_parameters())

    def loss_fn(share):
        x = _images_for(images, rng.integers(0, len(images), r.vae_batch))
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        # L1 keeps strokes crisp; the small KL keeps latents near unit scale, as in SD's VAE.
        return F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x) + r.vae_kl * posterior.kl().mean()

    fitted = run.fit("vae", loss_fn, params,
                     torch.optim.AdamW(params.values(), lr=r.vae_lr, weight_decay=0.0),
                     steps=r.vae_steps, lr=r.vae_lr, warmup=min(100, r.vae_steps // 10), rng=rng)
    vae.eval()
    latents, recon_mse = _encode_all(vae, images, sample=True, measure=2048)
    std = latents.std().item()
    vae.register_to_config(scaling_factor=round(1.0 / std, 5))  # SD's convention: unit-variance latents
    vae.save_pretrained(run.work / "vae")
    psnr = 10 * math.log10(4.0 / recon_mse)  # pixels span [-1, 1]: peak-to-peak 2, squared 4
    return {**_facts(fitted), "latent_std": round(std, 4), "latent_mean": round(latents.mean().item(), 4),
            "scaling_factor": vae.config.scaling_factor, "psnr_db": round(psnr, 2)}


@torch.no_grad()
def _encode_all(vae, images: torch.Tensor, sample: bool, measure: int | None = None):
    """Encode images in chunks. Returns latents (N, 4, 8, 8) (or (mean, std) when not sampling)
    and, with ``measure``, the reconstruction MSE on the first ``measure`` images."""
    n = len(images) if measure is None else min(measure, len(images))
    means, stds, sq = [], [], 0.0
    for start in range(0, n, 256):
        x = _images_for(images, np.arange(start, min(start + 256, n)))
        posterior = vae.encode(x).latent_dist
        means.append(posterior.mean)
        stds.append(posterior.std)
        if measure is not None:
            sq += F.mse_loss(vae.decode(posterior.mean).sample, x, reduction="sum").item()
    mean, std = torch.cat(means), torch.cat(stds)
    if sample:
        latents = mean + std * torch.randn_like(mean)
        return latents, sq / (n * 3 * 32 * 32)
    return mean, std


def stage_latents(run: Run) -> dict:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(run.work / "vae").eval()
    images, _ = run.data()
    mean, std = _encode_all(vae, images, sample=False)
    save_file({"mean": mean.contiguous(), "std": std.contiguous()}, run.work / "latents.safetensors")
    return {"count": len(mean)}


def stage_decoder(run: Run) -> dict:
    """Fine-tune the VAE decoder, encoder frozen, on digits in all nine colours.

    The VAE is the one part trained on purple too: like SD's VAE, it is a general image codec,
    while captions, CLIP and the U-Net never see purple. Without this, no text embedding could
    make MiniSD draw purple (lesson 08's textual inversion), because the decoder could not. The
    encoder is frozen, so the latents the U-Net learns are unchanged.
    """
    from diffusers import AutoencoderKL

    from utils.data import load_mnist
    from utils.minisd.data import PALETTE

    r, rng = run.recipe, run.rng("decoder")
    torch.manual_seed(run.seed)
    vae = AutoencoderKL.from_pretrained(run.work / "vae")
    vae.requires_grad_(False)
    params = {f"decoder.{name}": p for name, p in vae.decoder.named_parameters()}
    params |= {f"post_quant_conv.{name}": p for name, p in vae.post_quant_conv.named_parameters()}
    for p in params.values():
        p.requires_grad_(True)
    digits, _ = load_mnist(split="train")
    if r.limit is not None:
        digits = digits[:r.limit]
    every_colour = list(PALETTE)

    def loss_fn(share):
        idx = rng.integers(0, len(digits), r.vae_batch)
        n = len(idx)
        x = render(digits[idx], rng.integers(0, len(every_colour), n), rng.integers(0, 3, n),
                   rng.integers(0, 3, n), rng.uniform(-1.0, 1.0, (n, 2)), colours=every_colour) * 2 - 1
        with torch.no_grad():
            posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        return F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x)

    fitted = run.fit("decoder", loss_fn, params,
                     torch.optim.AdamW(params.values(), lr=r.decoder_lr, weight_decay=0.0),
                     steps=r.vae_steps, lr=r.decoder_lr, warmup=min(100, r.vae_steps // 10), rng=rng)
    vae.eval()
    images, _ = run.data()
    _, recon_mse = _encode_all(vae, images, sample=True, measure=2048)
    vae.save_pretrained(run.work / "vae")  # same encoder and scaling_factor, better decoder
    return {**_facts(fitted), "psnr_db": round(10 * math.log10(4.0 / recon_mse), 2),
            "colours": len(every_colour)}


def stage_unet(run: Run) -> dict:
    from diffusers import DDPMScheduler

    r, work = run.recipe, run.work
    tokenizer = _tokenizer(run)
    text_encoder = _text_encoder(run).eval().requires_grad_(False)
    scaling = json.loads((work / "vae" / "config.json").read_text())["scaling_factor"]
    lat = load_file(work / "latents.safetensors")
    _, attrs = run.data()
    noise_scheduler = DDPMScheduler.from_config(build_scheduler().config)
    alphas_cumprod = noise_scheduler.alphas_cumprod  # (1000,)
    torch.manual_seed(run.seed)
    unet = build_unet(r, text_encoder.config.hidden_size)
    averaged = build_unet(r, text_encoder.config.hidden_size)  # what is shipped: the EMA's weights
    params = dict(unet.named_parameters())
    ema = EMA(params, r.ema_decay, warmup=True)
    rng = run.rng("unet")

    def loss_fn(share):
        idx = rng.integers(0, len(lat["mean"]), r.unet_batch)
        mean, std = lat["mean"][idx], lat["std"][idx]
        latents = (mean + std * torch.randn_like(mean)) * scaling  # (B, 4, 8, 8)
        texts, _ = random_captions({k: v[idx] for k, v in attrs.items()}, rng)
        with torch.no_grad():
            text_embeddings = text_encoder(token_ids(tokenizer, texts))[0]  # (B, 16, 64)
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(idx),))
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        noise_pred = unet(noisy, timesteps, text_embeddings).sample
        # Min-SNR weighting (Hang et al. 2023): stop easy, low-noise steps dominating the loss.
        snr = alphas_cumprod[timesteps] / (1 - alphas_cumprod[timesteps])
        weight = snr.clamp(max=r.min_snr_gamma) / snr
        return (weight * (noise_pred - noise).pow(2).mean((1, 2, 3))).mean()

    fitted = run.fit("unet", loss_fn, params,
                     torch.optim.AdamW(params.values(), lr=r.unet_lr, weight_decay=0.01),
                     steps=r.unet_steps, lr=r.unet_lr, warmup=r.unet_warmup, rng=rng, clip=1.0,
                     ema=ema)
    ema.copy_to(averaged)  # smoother, better samples than the last step's weights
    averaged.save_pretrained(work / "unet")
    return {**_facts(fitted), "final_loss": round(float(np.mean(fitted.losses[-50:])), 4),
            "train_minutes": round(fitted.seconds / 60, 1)}


def _text_encoder(run: Run):
    """The CLIP text tower as the standalone CLIPTextModel the pipeline uses (same weights)."""
    from transformers import CLIPModel, CLIPTextModel

    clip = CLIPModel.from_pretrained(run.work / "clip")
    text_encoder = CLIPTextModel(clip.config.text_config)
    missing, unexpected = text_encoder.load_state_dict(clip.text_model.state_dict(), strict=False)
    if missing or unexpected:
        # The key layout differs between transformers versions; retry with the prefix added.
        prefixed = {f"text_model.{k}": v for k, v in clip.text_model.state_dict().items()}
        text_encoder.load_state_dict(prefixed, strict=True)
    return text_encoder


def _facts(fitted) -> dict:
    return {"steps": fitted.step, "stopped_by": fitted.stopped_by}


def stage_export(run: Run, out: Path, overwrite: bool, command: str) -> dict:
    """Assemble the pipeline, save it with fp16 weights, and record how it was made."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPModel

    work = run.work
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(work / "vae"), text_encoder=_text_encoder(run),
        tokenizer=_tokenizer(run), unet=UNet2DConditionModel.from_pretrained(work / "unet"),
        scheduler=build_sampler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    CLIPModel.from_pretrained(work / "clip").save_pretrained(tmp / "clip")  # text + vision towers
    for file in tmp.rglob("*.safetensors"):
        _to_fp16(file)
    record = {"command": command, "seed": run.seed, "stage_minute_caps": run.minutes,
              "invocations": run.state.get("invocations", []), "recipe": run.state["recipe"],
              "stages": {k: v for k, v in run.state["stages"].items()},
              "versions": versions()}
    (tmp / "TRAINING.json").write_text(json.dumps(record, indent=2))
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"--out {out} exists; pass --overwrite to replace it.")
        shutil.rmtree(out)
    os.replace(tmp, out)
    return {"megabytes": round(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6, 2)}


def _to_fp16(file: Path) -> None:
    """Store float weights as fp16 (half the size); configs stay float32, so they load as fp32."""
    tensors = load_file(file)
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(tensors, file, metadata={"format": "pt"})


TRAINING_STAGES = {"tokenizer": stage_tokenizer, "clip": stage_clip, "vae": stage_vae,
                   "latents": stage_latents, "decoder": stage_decoder, "unet": stage_unet}


def train(out: Path, work: Path, recipe: Recipe, seed: int = 0, resume: bool = False,
          overwrite: bool = False, minutes: dict[str, float] | None = None,
          command: str | None = None) -> Path:
    """Run every stage not yet done; returns the exported pipeline folder ``out``.

    Args:
        out: where the pipeline goes. An existing folder is only replaced with ``overwrite``.
        work: checkpoints and finished stages (an ignored folder such as build/minisd-train).
        recipe: sizes and step counts (``FULL`` or ``SMOKE`` from utils.minisd.models).
        seed: seeds every random draw of every stage (default 0).
        resume: continue the run in ``work``; without it a non-empty ``work`` is an error.
        overwrite: replace ``out`` and start ``work`` afresh.
        minutes: optional wall-time caps per stage, e.g. ``{"clip": 6, "vae": 12, "unet": 55}``:
            a capped stage stops at its step count or its cap, whichever comes first, and its
            learning-rate schedule follows the same progress; the steps done are recorded.
    """
    out, work = Path(out), Path(work)
    if out.exists() and not overwrite:
        raise FileExistsError(f"--out {out} already exists; pass --overwrite to replace it.")
    if work.exists() and any(work.iterdir()) and not resume:
        if not overwrite:
            raise FileExistsError(f"--work {work} holds an earlier run; pass --resume to continue "
                                  "it or --overwrite to start afresh.")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    command = command or command_line("python -m utils.minisd")
    minutes = dict(minutes or {})
    run = Run(recipe, work, seed, minutes)
    # Every invocation that worked on this run (first command, then any --resume) is recorded.
    run.state.setdefault("invocations", []).append({"command": command, "stage_minute_caps": minutes,
                                                     "started": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                              time.gmtime())})
    run.save_state()
    for stage in STAGES:
        if run.done(stage):
            print(f"{stage}: done earlier ({run.state['stages'][stage]['seconds']} s), skipped")
            continue
        start = time.time()
        if stage == "export":
            facts = stage_export(run, out, overwrite, command)
        else:
            facts = TRAINING_STAGES[stage](run)
        run.finish(stage, time.time() - start, **facts)
        discard_checkpoint(work / f"{stage}-checkpoint")  # the stage's result is saved
        if stage == "export":  # the record in `out` was written before export's own time was known
            record = json.loads((out / "TRAINING.json").read_text())
            record["stages"]["export"] = run.state["stages"]["export"]
            record["total_minutes"] = round(sum(s["seconds"] for s in run.state["stages"].values())
                                            / 60, 1)
            (out / "TRAINING.json").write_text(json.dumps(record, indent=2))
        print(f"{stage}: {run.state['stages'][stage]}", flush=True)
    return out
