"""Measure generated digits against real ones: what digit, what colour, how thick, how big, how
varied, how close to a training image, and a Frechet distance on a digit classifier's features.

Images everywhere here are float tensors ``(B, 3, 32, 32)`` in [0, 1] with a black background
(what ``utils.digits.render`` makes); ``as_images`` converts pipeline outputs (PIL images or
``output_type="np"`` arrays) to that.

The digit classifier is trained on the real MNIST train split only (never on generated images):
    python -m utils.metrics train-classifier          # writes assets/mnist_classifier.safetensors
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from utils.checks import check_path, check_safetensors
from utils.digits import PALETTE, SIZES, THICKNESS, TRAIN_COLOURS, render

CLASSIFIER_PATH = Path(__file__).resolve().parents[1] / "assets" / "mnist_classifier.safetensors"
INK_THRESHOLD = 0.3  # a pixel is ink when its brightest channel exceeds this


def as_images(images) -> torch.Tensor:
    """PIL images, a numpy array (B, H, W, 3) in [0, 1] or a tensor (B, 3, H, W) -> (B, 3, H, W)."""
    if isinstance(images, torch.Tensor):
        x = images.float()
    elif isinstance(images, np.ndarray):
        x = torch.as_tensor(images, dtype=torch.float32)
        if x.ndim == 4 and x.shape[-1] == 3:
            x = x.permute(0, 3, 1, 2)
        if images.dtype == np.uint8:
            x = x / 255.0
    elif isinstance(images, (list, tuple)) and images and all(hasattr(im, "convert") for im in images):
        sizes = sorted({im.size for im in images})
        if len(sizes) > 1:
            raise ValueError(f"images must all have one size, got sizes {sizes}.")
        x = torch.as_tensor(np.stack([np.asarray(im.convert("RGB")) for im in images]),
                            dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    else:
        what = "an empty list" if isinstance(images, (list, tuple)) and not images else type(images)
        raise TypeError(f"images must be a list of PIL images, a numpy array (B, H, W, 3) or a tensor "
                        f"(B, 3, H, W), got {what}.")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W) or (B, H, W, 3), got {tuple(x.shape)} "
                         "(grayscale (B, 1, H, W): x.expand(-1, 3, -1, -1)).")
    if x.numel() and (x.min() < -0.01 or x.max() > 1.01):  # ink thresholds assume [0, 1]
        raise ValueError(f"images must be in [0, 1], got values from {x.min():.3g} to {x.max():.3g} "
                         "(from [-1, 1]: (x + 1) / 2; from 0-255: x / 255).")
    return x


def ink(images) -> torch.Tensor:
    """Ink intensity, whatever the colour: the brightest channel. (B, 1, H, W) in [0, 1]."""
    return as_images(images).amax(1, keepdim=True)


def ink_area(images) -> torch.Tensor:
    """Number of ink pixels per image, (B,): thick strokes and large digits have more."""
    return (ink(images) > INK_THRESHOLD).flatten(1).sum(1).float()


def bbox_area(images) -> torch.Tensor:
    """Area in pixels of the box around the ink, (B,) (0 for an image with no ink)."""
    mask = (ink(images) > INK_THRESHOLD)[:, 0]  # (B, H, W)
    rows, cols = mask.any(2), mask.any(1)

    def extent(m):  # first to last True, +1; 0 when none
        idx = torch.arange(m.shape[1]).expand_as(m)
        first = torch.where(m, idx, m.shape[1]).amin(1)
        last = torch.where(m, idx, -1).amax(1)
        return (last - first + 1).clamp(min=0)

    return (extent(rows) * extent(cols)).float()


def ink_colour(images, colours: list[str] | None = None) -> list[str]:
    """The palette colour nearest to each image's ink (None when there is no ink).

    The mean colour of clearly inked pixels is divided by its brightest channel, so a dim stroke
    edge and a bright stroke centre give the same hue; the same is done to the palette.
    """
    colours = list(PALETTE) if colours is None else colours
    if not isinstance(colours, (list, tuple)) or not colours or any(c not in PALETTE for c in colours):
        raise ValueError(f"colours must be a list of names from {list(PALETTE)}, got {colours!r}.")
    x = as_images(images)
    bright = x.amax(1, keepdim=True)  # (B, 1, H, W)
    mask = (bright > 0.5).float()
    mean = (x * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1)  # (B, 3)
    hue = mean / mean.amax(1, keepdim=True).clamp_min(1e-6)
    palette = torch.tensor([PALETTE[c] for c in colours])
    palette = palette / palette.amax(1, keepdim=True)
    nearest = torch.cdist(hue, palette).argmin(1)
    has_ink = mask.flatten(1).sum(1) > 0
    return [colours[i] if ok else None for i, ok in zip(nearest.tolist(), has_ink.tolist())]


class DigitClassifier(nn.Module):
    """A small CNN on ink intensity (B, 1, 32, 32) -> logits (B, 10); ``features`` gives (B, 128),
    the vector the Frechet distance compares."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (B, 16, 16, 16)
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 8, 8)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, 4, 4)
            nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(),          # (B, 128): where, not just what
        )
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _random_render(digits: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Digits with random colour, thickness, size and a small shift: (B, 3, 32, 32)."""
    n = len(digits)
    return render(digits, rng.integers(0, len(TRAIN_COLOURS), n), rng.integers(0, len(THICKNESS), n),
                  rng.integers(0, len(SIZES), n), rng.uniform(-1.5, 1.5, (n, 2)))


def train_classifier(steps: int = 1500, batch: int = 64, seed: int = 0,
                     limit: int | None = None) -> tuple[DigitClassifier, dict]:
    """Train the digit classifier on the real MNIST train split only (coloured, thick/thin and
    small/large at random, like MiniSD's data, so it can read any of them).

    Returns:
        (model, facts): facts hold ``test_accuracy`` on the 500 held-out digits as drawn and
        ``test_accuracy_rendered`` on them with random attributes.
    """
    from utils.data import load_mnist

    digits, labels = load_mnist(split="train")
    if limit is not None:
        digits, labels = digits[:limit], labels[:limit]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = DigitClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    for _ in range(steps):
        idx = rng.integers(0, len(digits), batch)
        x = ink(_random_render(digits[idx], rng))
        x = x * torch.empty(len(idx), 1, 1, 1).uniform_(0.6, 1.0)  # generated ink is not always full
        loss = F.cross_entropy(model(x), torch.as_tensor(labels[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return model, evaluate_classifier(model)


@torch.no_grad()
def evaluate_classifier(model: DigitClassifier) -> dict:
    """Accuracy on the held-out test split: as drawn, and rendered with random attributes."""
    from utils.data import load_mnist

    digits, labels = load_mnist(split="test")
    n = len(labels)
    plain = render(digits, np.zeros(n, int), np.zeros(n, int), np.zeros(n, int))
    rendered = _random_render(digits, np.random.default_rng(99))
    acc = {name: float((model(ink(x)).argmax(1).numpy() == labels).mean())
           for name, x in [("test_accuracy", plain), ("test_accuracy_rendered", rendered)]}
    return {**acc, "test_count": n}


def save_classifier(model: DigitClassifier, facts: dict, path: Path = CLASSIFIER_PATH) -> None:
    """Weights as safetensors; the facts (accuracies, command) go in its metadata and beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {k: json.dumps(v) for k, v in facts.items()}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path, metadata=metadata)
    path.with_suffix(".json").write_text(json.dumps(facts, indent=2))


def load_classifier(path: str | Path = CLASSIFIER_PATH) -> DigitClassifier:
    """The shipped digit classifier (eval mode)."""
    path = check_path("path", path)
    if not path.is_file():
        raise FileNotFoundError(f"path={str(path)!r} does not exist; train it with "
                                "`python -m utils.metrics train-classifier`.")
    rebuild = f"Train it again with `python -m utils.metrics train-classifier --out {path}`."
    model = DigitClassifier()
    try:
        model.load_state_dict(load_file(check_safetensors(path, rebuild)))
    except RuntimeError:  # load_state_dict: missing, extra or differently shaped weights
        raise OSError(f"path={str(path)!r} holds weights of another network, not the digit "
                      f"classifier. {rebuild}") from None
    return model.eval()


def _check_model(model) -> None:
    if not isinstance(model, DigitClassifier):
        raise TypeError(f"model must be a DigitClassifier (load_classifier()), got {type(model).__name__}.")


def _classifier_input(images) -> torch.Tensor:
    """``ink(images)`` checked for the classifier: at least one image, 32x32 pixels."""
    x = ink(images)
    if len(x) == 0 or x.shape[-2:] != (32, 32):
        raise ValueError(f"images must be one or more 32x32 images for the digit classifier, got "
                         f"{len(x)} of {tuple(x.shape[-2:])} (resize with F.interpolate(x, size=32)).")
    return x


@torch.no_grad()
def classify(images, model: DigitClassifier | None = None) -> np.ndarray:
    """Predicted digit per image, int64 (B,)."""
    model = model or load_classifier()
    _check_model(model)
    return model(_classifier_input(images)).argmax(1).numpy()


@torch.no_grad()
def classifier_features(images, model: DigitClassifier | None = None) -> np.ndarray:
    """The classifier's penultimate features, float64 (B, 128)."""
    model = model or load_classifier()
    _check_model(model)
    _classifier_input(images[:1])
    return torch.cat([model.features(_classifier_input(images[i:i + 256]))
                      for i in range(0, len(images), 256)]).double().numpy()


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D) and (M, D):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), the formula behind FID."""
    for name, f in (("features_a", features_a), ("features_b", features_b)):
        if not isinstance(f, np.ndarray):
            raise TypeError(f"{name} must be a numpy array (N, D) such as classifier_features(...) "
                            f"gives, got {type(f).__name__}.")
        if f.ndim == 2 and len(f) < 2:
            raise ValueError(f"{name} needs at least 2 rows for a covariance, got {len(f)}.")
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {features_a.shape} and "
                         f"{features_b.shape}.")
    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    # tr((S_a S_b)^(1/2)) = sum of sqrt of eigenvalues of S_a^(1/2) S_b S_a^(1/2) (symmetric PSD)
    vals, vecs = np.linalg.eigh(cov_a)
    sqrt_a = (vecs * np.sqrt(vals.clip(min=0))) @ vecs.T
    inner = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    trace_sqrt = np.sqrt(inner.clip(min=0)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def spread(images) -> float:
    """Diversity: mean pairwise Euclidean distance between images' ink, (B, 1, 32, 32) flattened."""
    x = ink(images).flatten(1)
    d = torch.cdist(x, x)
    return float(d.sum() / (len(x) * (len(x) - 1)))


def nearest_distance(images, reference) -> np.ndarray:
    """For each image, the Euclidean distance of its ink to the nearest reference image's ink.
    (B,) float; the reference may be large (it is processed in chunks)."""
    x = ink(images).flatten(1)
    if len(reference) == 0:
        raise ValueError("reference is empty: give one or more images to compare with.")
    if ink(reference[:1]).flatten(1).shape[1] != x.shape[1]:
        raise ValueError(f"reference images must have the size of images ({x.shape[1]} pixels each), "
                         f"got {ink(reference[:1]).shape[-2:]}.")
    best = torch.full((len(x),), math.inf)
    for start in range(0, len(reference), 4096):
        ref = ink(reference[start:start + 4096]).flatten(1)
        best = torch.minimum(best, torch.cdist(x, ref).amin(1))
    return best.numpy()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m utils.metrics")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-classifier", help="train the digit classifier on real MNIST train")
    p.add_argument("--out", type=Path, default=CLASSIFIER_PATH)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.steps <= 0:
        parser.error(f"--steps must be > 0, got {args.steps}.")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, facts = train_classifier(steps=args.steps, seed=args.seed)
    facts |= {"command": "python -m utils.metrics " + " ".join(argv or __import__("sys").argv[1:]),
              "seed": args.seed, "steps": args.steps, "trained_on": "utils.data.load_mnist('train')"}
    save_classifier(model, facts, args.out)
    print(json.dumps(facts, indent=2))


if __name__ == "__main__":
    main()
