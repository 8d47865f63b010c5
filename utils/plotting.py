"""Showing images: a grid with titles (matplotlib), and tensors as PIL images. (A plain PIL grid is
diffusers' own ``diffusers.utils.make_image_grid``.)"""
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from utils.checks import check_int, check_number

__all__ = ["show_images", "to_pil"]


def to_pil(image) -> Image.Image:
    """A PIL image from a PIL image, an array (H, W[, C]) or a tensor (C, H, W) in [0, 1] or [-1, 1].

    Values below zero are taken as the [-1, 1] range that VAEs and U-Nets use.
    """
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
            raise ValueError(f"image: a tensor image must be (C, H, W) with C = 1, 3 or 4; got shape "
                             f"{tuple(image.shape)} (one image of a batch: image[0]; channels last: "
                             "pass image.numpy()).")
        image = image.detach().float().cpu().permute(1, 2, 0).numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image: cannot show a {type(image).__name__}; pass a PIL image, a numpy "
                        "array (H, W[, C]) or a tensor (C, H, W).")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"image: an array image must be (H, W) or (H, W, C) with C = 1, 3 or 4; "
                         f"got shape {image.shape}.")
    if image.size == 0 or image.dtype.kind not in "biuf":
        raise ValueError(f"image: cannot show an array of shape {image.shape} and dtype {image.dtype}; "
                         "it needs pixels of numbers.")
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
    if isinstance(images, (Image.Image, str)) or not hasattr(images, "__iter__"):
        raise TypeError(f"images must be a list of images or a batch tensor (B, C, H, W), got a "
                        f"{type(images).__name__} (one image: show_images([image])).")
    pils = []
    for i, im in enumerate(images):
        try:
            pils.append(to_pil(im))
        except (TypeError, ValueError) as err:
            raise type(err)(f"images[{i}]: {str(err).removeprefix('image: ')}") from None
    images = pils
    if not images:
        raise ValueError("show_images got no images.")
    if titles is not None and (isinstance(titles, str) or not hasattr(titles, "__len__")):
        raise TypeError(f"titles must be a list with one title per image, got {titles!r}.")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images: give one per image.")
    if cols is not None:
        check_int("cols", cols)
    check_number("size", size, 0, strict=True)
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
