"""Showing images: a grid with titles (matplotlib) and a plain PIL grid (diffusers' helper)."""
import matplotlib.pyplot as plt
import numpy as np
import torch
from diffusers.utils import make_image_grid
from PIL import Image

__all__ = ["show_images", "make_image_grid", "to_pil"]


def to_pil(image) -> Image.Image:
    """A PIL image from a PIL image, an array (H, W[, C]) or a tensor (C, H, W) in [0, 1] or [-1, 1].

    Values below zero are taken as the [-1, 1] range that VAEs and U-Nets use.
    """
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, torch.Tensor):
        if image.ndim != 3:
            raise ValueError(f"a tensor image must be (C, H, W); got shape {tuple(image.shape)}.")
        image = image.detach().float().cpu().permute(1, 2, 0).numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"cannot show a {type(image).__name__}: pass a PIL image, array or tensor.")
    if image.ndim not in (2, 3):
        raise ValueError(f"an array image must be (H, W) or (H, W, C); got shape {image.shape}.")
    if image.dtype != np.uint8:
        image = image.astype(np.float32)
        if image.min() < 0:
            image = (image + 1) / 2
        image = (image.clip(0, 1) * 255).round().astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return Image.fromarray(image)


def show_images(images, titles=None, cols: int | None = None, size: float = 2.0, suptitle=None):
    """Show images in a grid with optional titles; returns the matplotlib figure.

    Args:
        images: a list of PIL images, arrays or tensors (see ``to_pil``), or a batch tensor (B, C, H, W).
        titles: one title per image, or None.
        cols: images per row (default: all in one row, up to 8).
        size: inches per image.
    """
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        images = list(images)
    images = [to_pil(im) for im in images]
    if not images:
        raise ValueError("show_images got no images.")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images: give one per image.")
    cols = cols or min(len(images), 8)
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray" if images[i].mode == "L" else None)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
