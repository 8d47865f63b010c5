"""Coloured 32x32 MNIST with captions built from attributes you can measure in the pixels.

Every image has four attributes, each chosen at random:
    digit      0-9 (from the MNIST label)
    colour     one of ``TRAIN_COLOURS`` (``HELD_OUT_COLOUR``, purple, never appears in a caption
               or in CLIP's or the U-Net's training; only the VAE decoder sees purple pixels)
    thickness  ``"thin"`` (erosion), ``None`` (as drawn) or ``"thick"`` (dilation)
    size       ``"small"``, ``None`` (as drawn) or ``"large"``
A caption names some of them ("a thick red seven", "a blue 3", "a small digit", or ""), so the
model also learns partial captions and, from the ~10% empty ones, the unconditional branch that
classifier-free guidance needs. The drawing itself (palette, thickness, size, ``render``) is
``utils.digits``; its names are importable from here too.
"""
import numbers

import numpy as np
import torch

from utils.digits import HELD_OUT_COLOUR, PALETTE, SIZES, THICKNESS, TRAIN_COLOURS, render

__all__ = ["DIGIT_WORDS", "DROP_P", "EMPTY_P", "NUMERAL_P", "random_attributes", "caption",
           "random_captions", "training_set",
           # from utils.digits
           "PALETTE", "HELD_OUT_COLOUR", "TRAIN_COLOURS", "THICKNESS", "SIZES", "render"]

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

# How often each attribute is left out of a caption. Independent drops give ~10% empty captions
# once the digit and colour are both dropped and the image is plain (see caption()).
DROP_P = {"digit": 0.3, "colour": 0.35, "thickness": 0.3, "size": 0.3}
EMPTY_P = 0.07  # extra empty captions on top of the ones the drops give, to total ~10%
NUMERAL_P = 0.3  # how often the digit is written as a numeral ("a red 7") instead of a word


def random_attributes(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw colour, thickness and size indices for each label; returns int64 arrays (N,)."""
    n = len(labels)
    return {"digit": np.asarray(labels, dtype=np.int64),
            "colour": rng.integers(0, len(TRAIN_COLOURS), n),
            "thickness": rng.integers(0, len(THICKNESS), n),
            "size": rng.integers(0, len(SIZES), n)}


def caption(digit: int, colour: str | None = None, thickness: str | None = None,
            size: str | None = None, numeral: bool = False) -> str:
    """The caption for the given attributes, e.g. ``caption(7, "red", "thick") == "a thick red seven"``.

    Missing attributes are left out; with no attribute at all the caption is ``""``. ``digit`` may
    be None (then "digit" stands in when some other attribute is named: "a small red digit").
    """
    if digit is not None and (isinstance(digit, bool) or not isinstance(digit, numbers.Integral)):
        raise TypeError(f"digit must be an integer 0-9 or None, got {digit!r}.")
    if digit is not None and digit not in range(10):
        raise ValueError(f"digit must be 0-9 or None, got {digit!r}.")
    if colour is not None and colour not in PALETTE:
        raise ValueError(f"colour={colour!r} is not one of {list(PALETTE)}.")
    if thickness not in THICKNESS:
        raise ValueError(f"thickness={thickness!r} is not one of {THICKNESS}.")
    if size not in SIZES:
        raise ValueError(f"size={size!r} is not one of {SIZES}.")
    words = [w for w in (thickness, size, colour) if w is not None]
    if digit is not None:
        words.append(str(digit) if numeral else DIGIT_WORDS[digit])
    elif words:
        words.append("digit")
    return " ".join(["a"] + words) if words else ""


def random_captions(attrs: dict[str, np.ndarray], rng: np.random.Generator,
                    colours: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Captions with attributes dropped at random (a fresh draw every call).

    Returns:
        (captions, kept): list of N strings, and bool (N, 4) saying which of digit, colour,
        thickness, size the caption names (thickness/size "as drawn" are never named).
    """
    colours = TRAIN_COLOURS if colours is None else colours
    n = len(attrs["digit"])
    kept = np.stack([rng.random(n) >= DROP_P[k] for k in ("digit", "colour", "thickness", "size")], 1)
    kept[rng.random(n) < EMPTY_P] = False
    kept[:, 2] &= attrs["thickness"] != 0
    kept[:, 3] &= attrs["size"] != 0
    numeral = rng.random(n) < NUMERAL_P
    texts = [caption(int(attrs["digit"][i]) if kept[i, 0] else None,
                     colours[attrs["colour"][i]] if kept[i, 1] else None,
                     THICKNESS[attrs["thickness"][i]] if kept[i, 2] else None,
                     SIZES[attrs["size"][i]] if kept[i, 3] else None,
                     bool(numeral[i])) for i in range(n)]
    return texts, kept


def training_set(variants: int = 8, seed: int = 0, limit: int | None = None):
    """The fixed rendered training set: every train-split digit in ``variants`` random renderings.

    Only ``load_mnist(split="train")`` is used; the test split never reaches a training step.

    Returns:
        (images, attrs): uint8 (N*variants, 3, 32, 32) and a dict of int64 arrays (N*variants,).
    """
    from utils.data import load_mnist

    digits, labels = load_mnist(split="train")
    if limit is not None:
        digits, labels = digits[:limit], labels[:limit]
    rng = np.random.default_rng(seed)
    digits = np.concatenate([digits] * variants)
    attrs = random_attributes(np.concatenate([labels] * variants), rng)
    shift = rng.uniform(-1.0, 1.0, (len(digits), 2))
    images = []
    for start in range(0, len(digits), 2048):  # chunks keep the 64x64 working copy small
        part = slice(start, start + 2048)
        images.append(render(digits[part], attrs["colour"][part], attrs["thickness"][part],
                             attrs["size"][part], shift[part]))
    images = (torch.cat(images) * 255).round().to(torch.uint8)
    return images, attrs
