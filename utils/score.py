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
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

from .checks import check_json_file, check_path, check_safetensors
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
    log_sigma = torch.randn(n, generator=generator) * 1.4 - 0.6
    return log_sigma.exp().clamp(SIGMA_MIN, SIGMA_MAX)


def denoising_loss(denoiser: Denoiser, x0: torch.Tensor, generator=None) -> torch.Tensor:
    """Denoising score matching: mean squared error between predicted and added noise."""
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as denoiser(x, sigma), got {type(denoiser).__name__}.")
    if not isinstance(x0, torch.Tensor) or x0.ndim != 4:
        raise ValueError(f"x0 must be a batch of clean images, a tensor (B, 1, 32, 32), got "
                         f"{tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}.")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}.")
    sigma = sample_sigmas(x0.shape[0], generator).to(x0)
    noise = torch.randn(x0.shape, generator=generator).to(x0)
    return F.mse_loss(denoiser(x0 + sigma.view(-1, 1, 1, 1) * noise, sigma), noise)


def train_denoiser(denoiser: Denoiser, steps: int, batch_size: int = 128, lr: float = 2e-3,
                   seed: int = 0, ema_decay: float = 0.999, checkpoint: str | Path | None = None,
                   checkpoint_every: int | None = None, progress: bool = True):
    """Train ``denoiser`` in place on the MNIST train split with the course's training loop
    (``utils.training.fit``): AdamW (weight decay 0.01), a 100-step warm-up then cosine decay to 5% of ``lr``,
    gradients clipped to norm 1, an EMA of the weights. With a ``checkpoint`` folder it resumes
    from there and saves every ``checkpoint_every`` steps. Returns ``(fitted, ema)``."""
    from .training import EMA, fit, warmup_cosine

    x_train, _ = mnist_tensor("train")
    generator = torch.Generator().manual_seed(seed)
    params = dict(denoiser.named_parameters())
    ema = EMA(params, ema_decay)

    def loss_fn(share):  # one process or several: each draws the whole batch (see utils.training)
        batch = x_train[torch.randint(len(x_train), (batch_size,), generator=generator)]
        return denoising_loss(denoiser, batch, generator)

    denoiser.train()
    fitted = fit(loss_fn, params, torch.optim.AdamW(params.values(), lr=lr, weight_decay=0.01),
                 steps=steps, schedule=lambda step, done: warmup_cosine(lr, done, step, 100, 0.05),
                 clip=1.0, ema=ema, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                 generators=[generator], progress=progress, desc="denoiser",
                 recipe={"batch_size": batch_size, "lr": lr, "seed": seed, "ema_decay": ema_decay,
                         "channels": list(denoiser.unet.config.block_out_channels)})
    denoiser.eval()
    return fitted, ema


def _train_command(args) -> None:
    from .record import command_line, versions
    from .training import discard_checkpoint, find_checkpoint

    out, work = Path(args.out), Path(args.work)
    checkpoint = work / "checkpoint"
    if (out / "config.json").exists() and not args.overwrite:
        sys.exit(f"{out} already holds a trained denoiser; pass --overwrite to replace it.")
    if find_checkpoint(checkpoint) and not args.resume:
        if not args.overwrite:
            sys.exit(f"{work} holds the checkpoint of an earlier run; pass --resume to continue it, "
                     "or --overwrite to start again (its progress is then lost), or choose another "
                     "--work.")
        discard_checkpoint(checkpoint)
    torch.manual_seed(args.seed)
    denoiser = Denoiser(build_unet((8, 16, 16) if args.smoke else (16, 32, 64)))
    try:
        fitted, ema = train_denoiser(denoiser, args.steps, args.batch_size, args.lr, args.seed,
                                     checkpoint=checkpoint, checkpoint_every=args.checkpoint_every)
    except ValueError as err:  # a checkpoint of other settings, or a damaged one
        sys.exit(f"--resume: {err}")
    ema.copy_to(denoiser)  # ship the exponential moving average: smoother, better samples
    denoiser.unet.save_pretrained(out)
    record = {"command": command_line("python -m utils.score", args.argv),
              "seed": args.seed, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
              "train_seconds": round(fitted.seconds, 1),
              "parameters": sum(p.numel() for p in denoiser.parameters()), "versions": versions()}
    (out / "TRAINING.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {out} after {fitted.seconds / 60:.1f} min of training")


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
