"""Example inputs shared by the component lessons (02 CLIP, 03 VAE, 04 U-Net, 05 schedulers).

    held_out_digits(n)       coloured MNIST test digits (never trained on) with their labels
    lesson_images(pipe, n)   images to feed the VAE on the pipeline's track, with their captions
"""
import numpy as np
import torch

from utils.checks import check_int
from utils.data import SUBSET_TEST_PER_CLASS, load_mnist
from utils.minisd.data import TRAIN_COLOURS, caption, render
from utils.plotting import to_pil

__all__ = ["held_out_digits", "lesson_images", "SD_PROMPTS"]

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
