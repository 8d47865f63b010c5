"""Example inputs shared by the lessons.

    held_out_digits(n)       coloured MNIST test digits (never trained on) with their labels
    lesson_images(pipe, n)   images to feed the VAE on the pipeline's track, with their captions
    load_sketch(track)       the rough sketch in assets/sketches that lesson 01 starts image to image from
    load_photos(n, size)     real photos (assets/photos, public domain or CC0) for the real-SD track
    draw_sketches(folder)    the PIL code that drew those sketches (``python -m utils.lessons`` redraws them)
"""
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from utils.checks import check_int
from utils.data import SUBSET_TEST_PER_CLASS, load_mnist
from utils.digits import TRAIN_COLOURS, render
from utils.minisd.data import caption
from utils.plotting import to_pil

__all__ = ["held_out_digits", "lesson_images", "SD_PROMPTS", "SKETCHES", "load_sketch",
           "draw_sketches", "PHOTOS", "load_photos"]

SKETCH_PATH = Path(__file__).resolve().parents[1] / "assets" / "sketches"
# Per track: the sketch's file, and a prompt that says what the sketch is meant to become.
SKETCHES = {"sd": ("cottage.png", "a cottage on a green hill under a blue sky, oil painting"),
            "mini": ("three.png", "a red seven")}

# Real photos for the real-SD track, each with a caption, in the order lessons take them.
# Public domain or CC0, from scikit-image's sample data: assets/photos/README.md says whose,
# and `python -m tools.photos` remakes them.
PHOTO_PATH = Path(__file__).resolve().parents[1] / "assets" / "photos"
PHOTOS = {"chelsea.jpg": "a tabby cat", "coffee.jpg": "a cup of espresso",
          "astronaut.jpg": "an astronaut", "rocket.jpg": "a rocket at night"}

# What the real-SD track draws when a lesson needs pictures (it has no data set at hand).
SD_PROMPTS = ["a photo of an otter on a rock by a river", "a red fox in the snow, photograph",
              "a bowl of lemons on a blue table, still life", "a lighthouse at sunset, oil painting"]


def held_out_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """``n`` MNIST test-split digits rendered in random training colours, as drawn.

    The first ten are ten different digits (then the next ten, and so on), so small figures
    show variety. Test digits are never used to train MiniSD or the digit classifier.

    Returns:
        ``(images, digits, colours)``: float32 (n, 3, 32, 32) in [0, 1] with a black
        background, int64 (n,), and n colour names from ``TRAIN_COLOURS``.
    """
    n, seed = check_int("n", n, minimum=None), check_int("seed", seed, minimum=0)
    if not 0 < n <= 10 * SUBSET_TEST_PER_CLASS:  # the size of the test split, checked before loading it
        raise ValueError(f"n must be between 1 and {10 * SUBSET_TEST_PER_CLASS}, got {n}.")
    pixels, labels = load_mnist(split="test")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    rank = np.empty(len(labels), dtype=np.int64)  # how many of the same digit came before it
    for digit in range(10):
        here = order[labels[order] == digit]
        rank[here] = np.arange(len(here))
    pick = order[np.lexsort((np.arange(len(order)), rank[order]))][:n]  # round-robin over digits
    colour = rng.integers(0, len(TRAIN_COLOURS), n)
    images = render(pixels[pick], colour, np.zeros(n, int), np.zeros(n, int))
    return images, labels[pick], [TRAIN_COLOURS[c] for c in colour]


def lesson_images(pipe, n: int = 2, seed: int = 0, steps: int = 25) -> tuple[list, list[str]]:
    """``n`` pictures for a lesson to encode, and a caption for each.

    On the MiniSD track (``pipe.course_track == "mini"``) they are real held-out digits
    (``held_out_digits``) captioned like MiniSD's training data ("a red seven"). On the real-SD
    track there is no data set at hand, so SD draws them itself from ``SD_PROMPTS`` (``steps``
    denoising steps, seeds ``seed``, ``seed + 1``, ...).

    Returns:
        ``(images, captions)``: n RGB PIL images at the pipeline's size, n strings.
    """
    if getattr(pipe, "course_track", None) not in ("sd", "mini"):
        raise TypeError("pipe must be a pipeline from utils.load_pipeline() (its course_track is "
                        f"'sd' or 'mini'), got {type(pipe).__name__}.")
    n, seed, steps = check_int("n", n), check_int("seed", seed, minimum=0), check_int("steps", steps)
    if pipe.course_track == "mini":
        images, digits, colours = held_out_digits(n, seed)
        return [to_pil(im) for im in images], [caption(int(d), c) for d, c in zip(digits, colours)]
    from diffusers import StableDiffusionPipeline

    # The same weights, as a text-to-image pipeline even if `pipe` is another kind.
    text_to_image = StableDiffusionPipeline(**pipe.components, requires_safety_checker=False)
    text_to_image.set_progress_bar_config(disable=True)
    prompts = [SD_PROMPTS[i % len(SD_PROMPTS)] for i in range(n)]
    generators = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    images = text_to_image(prompts, num_inference_steps=steps, generator=generators).images
    return images, prompts


def _draw_cottage(size: int = 512) -> Image.Image:
    """A child's drawing: sky, sun, a green hill, a house with a red roof."""
    im = Image.new("RGB", (size, size), (135, 190, 235))
    d = ImageDraw.Draw(im)
    u = size / 16  # one grid unit
    d.ellipse([11 * u, 1.5 * u, 14 * u, 4.5 * u], fill=(250, 215, 60))  # the sun
    d.ellipse([-6 * u, 9 * u, 22 * u, 26 * u], fill=(80, 160, 70))  # the hill
    d.rectangle([5 * u, 8 * u, 10 * u, 12 * u], fill=(225, 205, 170), outline=(60, 40, 30), width=3)
    d.polygon([(4.3 * u, 8 * u), (7.5 * u, 5 * u), (10.7 * u, 8 * u)], fill=(180, 50, 40))
    d.rectangle([6 * u, 10 * u, 7.2 * u, 12 * u], fill=(110, 70, 40))  # the door
    d.rectangle([8.2 * u, 9 * u, 9.3 * u, 10.1 * u], fill=(240, 240, 200), outline=(60, 40, 30))
    return im


def _draw_three(size: int = 32) -> Image.Image:
    """A rough green three, drawn four times larger and shrunk, like MiniSD's 32x32 digits."""
    big = 4 * size
    im = Image.new("RGB", (big, big), (0, 0, 0))
    d = ImageDraw.Draw(im)
    green, w = (40, 200, 60), big // 10
    d.arc([34, 18, 90, 66], start=200, end=90, fill=green, width=w)  # upper bowl
    d.arc([30, 58, 94, 112], start=270, end=160, fill=green, width=w)  # lower bowl
    return im.resize((size, size), Image.LANCZOS)


_DRAW = {"cottage.png": _draw_cottage, "three.png": _draw_three}


def draw_sketches(folder: str | Path = SKETCH_PATH) -> list[Path]:
    """Draw every sketch into ``folder`` (PNG); returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in _DRAW.items():
        draw().save(folder / name)
        paths.append(folder / name)
    return paths


def load_sketch(track: str, size: int | None = None) -> tuple[Image.Image, str]:
    """The track's sketch and the prompt it should become.

    Args:
        track: ``"sd"`` (a 512x512 cottage) or ``"mini"`` (a 32x32 three): ``pipe.course_track``.
        size: resize to ``size`` x ``size`` pixels (a pipeline's native size); None keeps it.
    """
    if not isinstance(track, str) or track not in SKETCHES:
        raise ValueError(f"track must be one of {sorted(SKETCHES)} (a pipeline's course_track), "
                         f"got {track!r}.")
    name, prompt = SKETCHES[track]
    path = SKETCH_PATH / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; redraw the sketches with "
                                "`python -m utils.lessons`, or `git checkout -- assets/sketches`.")
    sketch = Image.open(path).convert("RGB")
    if size is not None and sketch.size != (size, size):
        sketch = sketch.resize((check_int("size", size), size), Image.LANCZOS)
    return sketch, prompt


def load_photos(n: int | None = None, size: int | None = None) -> tuple[list, list[str]]:
    """The first ``n`` photos of ``PHOTOS`` (all four when None) and their captions.

    Real 512x512 photos for the real-SD track, where an image SD drew itself would flatter its
    VAE. MiniSD knows only 32x32 digits: use ``lesson_images`` there.

    Args:
        n: how many, 1 to ``len(PHOTOS)``; None for all.
        size: resize to ``size`` x ``size`` pixels (a pipeline's native size); None keeps 512.

    Returns:
        ``(images, captions)``: n RGB PIL images, n strings.
    """
    n = len(PHOTOS) if n is None else check_int("n", n)
    if n > len(PHOTOS):
        raise ValueError(f"n must be at most {len(PHOTOS)} (the photos in {PHOTO_PATH}), got {n}.")
    size = None if size is None else check_int("size", size)
    names = list(PHOTOS)[:n]
    missing = [name for name in names if not (PHOTO_PATH / name).exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} missing from {PHOTO_PATH}; restore them with "
                                "`git checkout -- assets/photos` or remake them: "
                                "`python -m tools.photos` says how.")
    images = []
    for name in names:
        with Image.open(PHOTO_PATH / name) as stored:
            photo = stored.convert("RGB")
        if size is not None and photo.size != (size, size):
            photo = photo.resize((size, size), Image.LANCZOS)
        images.append(photo)
    return images, [PHOTOS[name] for name in names]


if __name__ == "__main__":
    for written in draw_sketches():
        print("drew", written)
