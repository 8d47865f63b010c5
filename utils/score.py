"""A small denoiser for MNIST digits: it predicts the noise in ``x + sigma * noise``.

Predicting the noise is learning the score: for the noisy data density ``p_sigma``,
``eps(x, sigma) = -sigma * grad log p_sigma(x)`` (Tweedie). Lessons 06 and 07 use it, so it lives
here, with the command that trains the shipped copy in ``assets/mnist_denoiser``:

    python -m utils.score train --out assets/mnist_denoiser          # the shipped weights
    python -m utils.score train --out build/tiny --steps 20 --smoke  # the same code, in seconds

Conventions: images are ``(B, 1, 32, 32)`` in [-1, 1] (MNIST's 28x28 padded by 2); ``sigma`` is the
noise standard deviation in those units (variance exploding: no scaling of ``x``), from
``SIGMA_MIN`` to ``SIGMA_MAX``.
"""
import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .checks import check_int, check_json_file, check_number, check_path, check_safetensors
from .data import load_mnist

REPO_ROOT = Path(__file__).resolve().parent.parent
DENOISER_PATH = REPO_ROOT / "assets" / "mnist_denoiser"
SIGMA_MIN, SIGMA_MAX = 0.02, 20.0
SIGMA_DATA = 0.5  # the std of MNIST pixels in [-1, 1] is about 0.6; EDM's value is close enough


def mnist_tensor(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST as ``(N, 1, 32, 32)`` float32 in [-1, 1] (padded from 28x28) and labels ``(N,)``."""
    images, labels = load_mnist(split)
    x = torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)
    return F.pad(x, (2, 2, 2, 2), value=-1.0), torch.from_numpy(labels)


def build_unet(channels: tuple[int, ...] = (16, 32, 64)) -> UNet2DModel:
    """A small ``UNet2DModel``: about 0.64 M parameters at the default widths.

    No attention layers: for 32x32 digits they add little, and on a CPU their backward pass
    costs almost as much as all the convolutions together.
    """
    if (not isinstance(channels, (tuple, list)) or not channels
            or not all(isinstance(c, int) and c > 0 and c % 8 == 0 for c in channels)):
        raise ValueError(f"channels must be a tuple of widths that are multiples of 8, one per level, "
                         f"such as (16, 32, 64); got {channels!r}.")
    levels = len(channels)
    return UNet2DModel(
        sample_size=32, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=channels, norm_num_groups=8,
        down_block_types=("DownBlock2D",) * levels, up_block_types=("UpBlock2D",) * levels,
    )


class Denoiser(torch.nn.Module):
    """``eps = denoiser(x_noisy, sigma)``: the noise estimate for images at noise level ``sigma``.

    The U-Net sees the input scaled to unit variance (EDM's ``c_in``) and ``log(sigma)`` as its
    timestep, so one network serves every noise level.
    """

    def __init__(self, unet: UNet2DModel):
        super().__init__()
        if not isinstance(unet, UNet2DModel):
            raise TypeError(f"unet must be a diffusers UNet2DModel (see build_unet), got "
                            f"{type(unet).__name__}.")
        self.unet = unet

    def _check(self, x, sigma) -> torch.Tensor:
        """Check ``x`` and return ``sigma`` as one value per image, (B,)."""
        channels = self.unet.config.in_channels
        factor = 2 ** (len(self.unet.config.block_out_channels) - 1)  # the U-Net halves H, W this often
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a float tensor (B, {channels}, 32, 32), got {type(x).__name__}.")
        if x.ndim != 4 or x.shape[1] != channels or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"x must be (B, {channels}, H, W) with H and W multiples of {factor}, such "
                             f"as (B, {channels}, 32, 32); got {tuple(x.shape)}.")
        try:
            sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"sigma must be a number or a tensor of one per image, got {sigma!r}.") from None
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape[0] != x.shape[0] or not (sigma > 0).all() or not sigma.isfinite().all():
            raise ValueError(f"sigma must be one positive number or one per image; got {tuple(sigma.shape)} "
                             f"for {x.shape[0]} images.")
        return sigma

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        sigma = self._check(x, sigma)
        c_in = (sigma**2 + SIGMA_DATA**2).rsqrt().view(-1, 1, 1, 1)
        return self.unet(x * c_in, 100 * sigma.log()).sample

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The estimate of the clean image: ``x - sigma * eps``."""
        sigma = self._check(x, sigma)
        return x - sigma.view(-1, 1, 1, 1) * self(x, sigma)


def load_mnist_denoiser(path: str | Path = DENOISER_PATH) -> Denoiser:
    """The shipped denoiser (``python -m utils.score train`` made it), in eval mode, fp32."""
    path = check_path("path", path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no trained denoiser (config.json missing). Train one with "
                                f"`python -m utils.score train --out {path}`.")
    rebuild = (f"Train it again with `python -m utils.score train --out {path} --overwrite` (the "
               "shipped run's exact command is in its TRAINING.json).")
    check_json_file(path / "config.json", rebuild)
    check_safetensors(path / "diffusion_pytorch_model.safetensors", rebuild)
    return Denoiser(UNet2DModel.from_pretrained(path)).eval()


def sample_sigmas(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training noise levels: log-normal (EDM), clipped to [SIGMA_MIN, SIGMA_MAX]."""
    check_int("n", n, minimum=0)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}.")
    log_sigma = torch.randn(n, generator=generator) * 1.4 - 0.6
    return log_sigma.exp().clamp(SIGMA_MIN, SIGMA_MAX)


def denoising_loss(denoiser: Denoiser, x0: torch.Tensor, generator=None) -> torch.Tensor:
    """Denoising score matching: mean squared error between predicted and added noise."""
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as denoiser(x, sigma), got {type(denoiser).__name__}.")
    if not isinstance(x0, torch.Tensor) or x0.ndim != 4:
        raise ValueError(f"x0 must be a batch of clean images, a tensor (B, 1, 32, 32), got "
                         f"{tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}.")
    sigma = sample_sigmas(x0.shape[0], generator).to(x0)
    noise = torch.randn(x0.shape, generator=generator).to(x0)
    return F.mse_loss(denoiser(x0 + sigma.view(-1, 1, 1, 1) * noise, sigma), noise)


def train_denoiser(denoiser: Denoiser, steps: int, batch_size: int = 128, lr: float = 2e-3,
                   seed: int = 0, ema_decay: float = 0.999, start_step: int = 0, ema=None,
                   optimizer=None, on_step=None, progress: bool = True):
    """Train ``denoiser`` in place on the MNIST train split; returns ``(losses, ema_state)``.

    ``on_step(step, losses, ema_state, optimizer)`` is called after every step (checkpoints).
    """
    from tqdm.auto import tqdm

    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"denoiser must be a Denoiser, got {type(denoiser).__name__}.")
    check_int("steps", steps)
    check_int("batch_size", batch_size)
    check_int("start_step", start_step, minimum=0)
    check_number("lr", lr, 0, strict=True)
    check_number("ema_decay", ema_decay, 0, 1)
    x_train, _ = mnist_tensor("train")
    generator = torch.Generator().manual_seed(seed + start_step)
    optimizer = optimizer or torch.optim.AdamW(denoiser.parameters(), lr=lr, weight_decay=0.0)
    ema = ema or {k: v.detach().clone() for k, v in denoiser.state_dict().items()}
    total = start_step + steps
    losses = []
    denoiser.train()
    for step in tqdm(range(start_step, total), disable=not progress, desc="denoiser"):
        for group in optimizer.param_groups:  # warm up, then cosine decay to 5% of lr
            warm = min(1.0, (step + 1) / 100)
            group["lr"] = lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / total)))
        batch = x_train[torch.randint(len(x_train), (batch_size,), generator=generator)]
        loss = denoising_loss(denoiser, batch, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            for k, v in denoiser.state_dict().items():
                ema[k].lerp_(v, 1 - ema_decay) if v.dtype.is_floating_point else ema[k].copy_(v)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, losses, ema, optimizer)
    denoiser.eval()
    return losses, ema


def _train_command(args) -> None:
    out, work = Path(args.out), Path(args.work)
    if (out / "config.json").exists() and not args.overwrite:
        sys.exit(f"{out} already holds a trained denoiser; pass --overwrite to replace it.")
    torch.manual_seed(args.seed)
    channels = (8, 16, 16) if args.smoke else (16, 32, 64)
    denoiser = Denoiser(build_unet(channels))
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=args.lr)
    work.mkdir(parents=True, exist_ok=True)
    checkpoint, start, ema, elapsed = work / "checkpoint.safetensors", 0, None, 0.0
    if checkpoint.exists() and not (args.resume or args.overwrite):
        sys.exit(f"{work} holds the checkpoint of an earlier run; pass --resume to continue it, or "
                 "--overwrite to start again (its progress is then lost), or choose another --work.")
    if args.resume and checkpoint.exists():
        try:
            again = f"Delete {work} and train again without --resume."
            state = load_file(check_safetensors(checkpoint, again))
            meta = check_json_file(work / "checkpoint.json", again)
            with safe_open(checkpoint, "pt") as f:
                saved_step = (f.metadata() or {}).get("step")
            if saved_step is not None and int(saved_step) != meta["step"]:
                raise OSError(f"{checkpoint} (step {saved_step}) and checkpoint.json (step "
                              f"{meta['step']}) disagree: saving was interrupted. {again}")
            denoiser.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
            if not (work / "optimizer.pt").is_file():
                raise FileNotFoundError(f"{work / 'optimizer.pt'} is missing. {again}")
        except OSError as err:
            sys.exit(f"--resume: {err}")
        except RuntimeError:  # the state dict belongs to another network size
            sys.exit(f"--resume: {checkpoint} holds a network of another size; resume with the same "
                     "flags it was started with (--smoke or not), or use another --work.")
        ema = {k[4:]: v for k, v in state.items() if k.startswith("ema.")}
        optimizer.load_state_dict(torch.load(work / "optimizer.pt", weights_only=True))
        start, elapsed = meta["step"], meta["seconds"]
        print(f"resuming from step {start} ({checkpoint})")
    began = time.perf_counter()

    def save(step, losses, ema_state, opt, force=False):
        if step % args.checkpoint_every and not force:
            return
        tensors = {f"model.{k}": v.contiguous() for k, v in denoiser.state_dict().items()}
        tensors.update({f"ema.{k}": v.contiguous() for k, v in ema_state.items()})
        # Each file is written beside its old self and then swapped in, the step record last, so
        # an interrupt while saving leaves the previous checkpoint whole.
        partial = {name: work / f"{name}.partial" for name in
                   ("checkpoint.safetensors", "optimizer.pt", "checkpoint.json")}
        save_file(tensors, partial["checkpoint.safetensors"], metadata={"step": str(step)})
        torch.save(opt.state_dict(), partial["optimizer.pt"])
        partial["checkpoint.json"].write_text(json.dumps(
            {"step": step, "seconds": elapsed + time.perf_counter() - began}))
        for name, path in partial.items():
            os.replace(path, work / name)

    remaining = args.steps - start
    if remaining > 0:
        losses, ema = train_denoiser(denoiser, remaining, args.batch_size, args.lr, args.seed,
                                     start_step=start, ema=ema, optimizer=optimizer, on_step=save)
        save(args.steps, losses, ema, optimizer, force=True)
    seconds = json.loads((work / "checkpoint.json").read_text())["seconds"]
    denoiser.load_state_dict(ema)  # ship the exponential moving average: smoother, better samples
    denoiser.unet.save_pretrained(out)
    record = {
        "command": "python -m utils.score " + " ".join(sys.argv[1:] if args.argv is None else args.argv),
        "seed": args.seed, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "train_seconds": round(seconds, 1), "parameters": sum(p.numel() for p in denoiser.parameters()),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "diffusers": __import__("diffusers").__version__, "numpy": np.__version__},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
    }
    (out / "TRAINING.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {out} after {seconds / 60:.1f} min of training")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m utils.score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the MNIST denoiser (resumable)")
    train.add_argument("--out", default=str(DENOISER_PATH))
    train.add_argument("--work", default=str(REPO_ROOT / "build" / "score-train"),
                       help="checkpoint folder (resume from here)")
    train.add_argument("--steps", type=int, default=4000)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--checkpoint-every", type=int, default=200,
                       help="save a resumable checkpoint every this many steps")
    train.add_argument("--resume", action="store_true")
    train.add_argument("--overwrite", action="store_true")
    train.add_argument("--smoke", action="store_true", help="a tiny network, for tests")
    args = parser.parse_args(argv)
    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size), ("--lr", args.lr),
                        ("--checkpoint-every", args.checkpoint_every)):
        if value <= 0:
            parser.error(f"{flag} must be > 0, got {value}.")
    args.argv = argv
    _train_command(args)


if __name__ == "__main__":
    main()
