"""Coloured 32x32 MNIST digits: the palette, the stroke and size variants, and ``render``.

MiniSD's training data (``utils.minisd.data``) draws its images with ``render``, and the measures
of ``utils.metrics`` read the same colours, thicknesses and sizes back from the pixels; neither
depends on the other.
"""
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PALETTE", "HELD_OUT_COLOUR", "TRAIN_COLOURS", "THICKNESS", "SIZES", "SIZE_SCALE",
           "render"]

# RGB in [0, 1]. Chosen so the hue of the ink alone tells them apart (see utils.metrics.ink_colour).
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.92, 0.16, 0.16),
    "orange": (1.00, 0.55, 0.08),
    "yellow": (0.95, 0.88, 0.15),
    "green": (0.18, 0.80, 0.25),
    "cyan": (0.15, 0.85, 0.90),
    "blue": (0.20, 0.35, 0.95),
    "pink": (1.00, 0.50, 0.80),
    "white": (0.95, 0.95, 0.95),
    "purple": (0.60, 0.20, 0.90),
}
HELD_OUT_COLOUR = "purple"  # out of MiniSD's captions, CLIP and U-Net images: for textual inversion
TRAIN_COLOURS = [c for c in PALETTE if c != HELD_OUT_COLOUR]
THICKNESS = [None, "thin", "thick"]  # index 0 means "as drawn"
SIZES = [None, "small", "large"]
SIZE_SCALE = {None: 1.0, "small": 0.7, "large": 1.3}  # zoom of the 32x32 canvas around its centre


def render(images: np.ndarray | torch.Tensor, colour: np.ndarray, thickness: np.ndarray,
           size: np.ndarray, shift: np.ndarray | None = None,
           colours: list[str] | None = None) -> torch.Tensor:
    """Turn MNIST digits into coloured 32x32 images.

    Args:
        images: uint8 (N, 28, 28), ink bright (as ``utils.data.load_mnist`` returns them).
        colour, thickness, size: int arrays (N,) indexing ``colours``, ``THICKNESS``, ``SIZES``.
        shift: optional float (N, 2) translation in pixels of the 32x32 canvas (default none).
        colours: names that ``colour`` indexes (default ``TRAIN_COLOURS``).

    Returns:
        float32 (N, 3, 32, 32) in [0, 1], black background.
    """
    colours = TRAIN_COLOURS if colours is None else colours
    if not isinstance(colours, (list, tuple)) or not colours or any(c not in PALETTE for c in colours):
        raise ValueError(f"colours must be a list of names from {list(PALETTE)}, got {colours!r}.")
    images = np.asarray(images)
    if images.dtype.kind not in "biuf":
        raise TypeError(f"images must be numbers, uint8 (N, 28, 28), got dtype {images.dtype}.")
    gray = torch.as_tensor(images, dtype=torch.float32)
    if gray.ndim != 3 or gray.shape[1:] != (28, 28):
        raise ValueError(f"images must have shape (N, 28, 28), got {tuple(gray.shape)}.")
    if images.dtype != np.uint8 and 0 < gray.max() <= 1:
        raise ValueError("images must be 0-255 like load_mnist's (ink bright), got values in [0, 1]: "
                         "multiply by 255.")
    n = gray.shape[0]
    for name, index, choices in (("colour", colour, colours), ("thickness", thickness, THICKNESS),
                                 ("size", size, SIZES)):
        index = np.asarray(index)
        if index.shape != (n,) or index.dtype.kind not in "iu" or not ((index >= 0) & (index < len(choices))).all():
            raise ValueError(f"{name} must be {n} integer indices (one per image) into {choices}, got "
                             f"{index.tolist()!r:.80}.")
    if shift is not None and np.shape(shift) != (n, 2):
        raise ValueError(f"shift must be (N, 2) = {(n, 2)} pixel offsets, got shape {np.shape(shift)}.")
    x = F.pad(gray[:, None] / 255.0, (2, 2, 2, 2))  # (N, 1, 32, 32)
    # Work at 64x64 so erosion/dilation by one pixel changes a stroke by half an MNIST pixel.
    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    thickness = torch.as_tensor(np.asarray(thickness))
    dilated = F.max_pool2d(x, 3, 1, 1)
    eroded = -F.max_pool2d(-x, 3, 1, 1)
    # Erosion also dims what is left of a faint stroke; restore full brightness so thin stays visible.
    eroded = eroded / eroded.amax((1, 2, 3), keepdim=True).clamp_min(0.3)
    x = torch.where((thickness == 2)[:, None, None, None], F.max_pool2d(dilated, 3, 1, 1), x)
    x = torch.where((thickness == 1)[:, None, None, None], eroded, x)
    scale = torch.tensor([SIZE_SCALE[SIZES[int(s)]] for s in np.asarray(size)], dtype=torch.float32)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / scale  # sampling grid shrinks -> the digit grows
    if shift is not None:
        theta[:, :, 2] = -torch.as_tensor(np.asarray(shift), dtype=torch.float32) * 2.0 / 32.0
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = F.avg_pool2d(x, 2).clamp(0.0, 1.0)  # (N, 1, 32, 32)
    rgb = torch.tensor([PALETTE[colours[int(c)]] for c in np.asarray(colour)], dtype=torch.float32)
    return x * rgb[:, :, None, None]  # (N, 3, 32, 32)
