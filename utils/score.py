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
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from safetensors.torch import load_file, save_file

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
        self.unet = unet

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape[0] != x.shape[0] or (sigma <= 0).any():
            raise ValueError(f"sigma must be one positive number or one per image; got {tuple(sigma.shape)} "
                             f"for {x.shape[0]} images.")
        c_in = (sigma**2 + SIGMA_DATA**2).rsqrt().view(-1, 1, 1, 1)
        return self.unet(x * c_in, 100 * sigma.log()).sample

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The estimate of the clean image: ``x - sigma * eps``."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        return x - sigma * self(x, sigma.reshape(-1))


def load_mnist_denoiser(path: str | Path = DENOISER_PATH) -> Denoiser:
    """The shipped denoiser (``python -m utils.score train`` made it), in eval mode, fp32."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no trained denoiser (config.json missing). Train one with "
                                f"`python -m utils.score train --out {path}`.")
    return Denoiser(UNet2DModel.from_pretrained(path)).eval()


def sample_sigmas(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training noise levels: log-normal (EDM), clipped to [SIGMA_MIN, SIGMA_MAX]."""
    log_sigma = torch.randn(n, generator=generator) * 1.4 - 0.6
    return log_sigma.exp().clamp(SIGMA_MIN, SIGMA_MAX)


def denoising_loss(denoiser: Denoiser, x0: torch.Tensor, generator=None) -> torch.Tensor:
    """Denoising score matching: mean squared error between predicted and added noise."""
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

    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
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
    if args.resume and checkpoint.exists():
        state = load_file(checkpoint)
        meta = json.loads((work / "checkpoint.json").read_text())
        denoiser.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        ema = {k[4:]: v for k, v in state.items() if k.startswith("ema.")}
        optimizer.load_state_dict(torch.load(work / "optimizer.pt", weights_only=True))
        start, elapsed = meta["step"], meta["seconds"]
        print(f"resuming from step {start} ({checkpoint})")
    began = time.perf_counter()

    def save(step, losses, ema_state, opt, force=False):
        if step % 200 and not force:
            return
        tensors = {f"model.{k}": v.contiguous() for k, v in denoiser.state_dict().items()}
        tensors.update({f"ema.{k}": v.contiguous() for k, v in ema_state.items()})
        save_file(tensors, checkpoint)
        torch.save(opt.state_dict(), work / "optimizer.pt")
        (work / "checkpoint.json").write_text(json.dumps(
            {"step": step, "seconds": elapsed + time.perf_counter() - began}))

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
    train.add_argument("--resume", action="store_true")
    train.add_argument("--overwrite", action="store_true")
    train.add_argument("--smoke", action="store_true", help="a tiny network, for tests")
    args = parser.parse_args(argv)
    args.argv = argv
    _train_command(args)


if __name__ == "__main__":
    main()
