"""Write assets/photos/*.jpg, the real photos the SD track's lessons encode and start from.

    pip download scikit-image==0.26.0 --no-deps -d /tmp/skimage
    python -m tools.photos /tmp/skimage/scikit_image-0.26.0-*.whl

The photos are sample images that scikit-image bundles, public domain or CC0 (authors and
licences in assets/photos/README.md). The wheel is only read as a zip file: scikit-image is not
installed and the course does not depend on it. Each photo is centre-cropped to a square,
resized to 512x512 (SD 1.5's size) with Lanczos filtering and saved as a JPEG at quality 92.
"""
import hashlib
import io
import sys
import zipfile
from pathlib import Path

from PIL import Image

from utils.lessons import PHOTO_PATH, PHOTOS

SIZE, QUALITY = 512, 92
# Each shipped file: its source in the wheel, and that source's sha256 (scikit-image 0.26.0).
SOURCES = {
    "chelsea.jpg": ("skimage/data/chelsea.png",
                    "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
    "coffee.jpg": ("skimage/data/coffee.png",
                   "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
    "astronaut.jpg": ("skimage/data/astronaut.png",
                      "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    "rocket.jpg": ("skimage/data/rocket.jpg",
                   "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
}
assert list(SOURCES) == list(PHOTOS), "utils.lessons.PHOTOS and SOURCES name the same files"


def square(image: Image.Image, size: int = SIZE) -> Image.Image:
    """The largest centred square of ``image``, resized to ``size`` x ``size`` (Lanczos)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)


def main(wheel: str, folder: Path = PHOTO_PATH) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name, (source, sha256) in SOURCES.items():
            data = archive.read(source)
            if hashlib.sha256(data).hexdigest() != sha256:
                raise SystemExit(f"{source} in {wheel} is not the file the photos were made from "
                                 "(use scikit-image 0.26.0).")
            with Image.open(io.BytesIO(data)) as original:
                photo = square(original.convert("RGB"))
            photo.save(folder / name, quality=QUALITY, optimize=True)
            print(f"{source} {original.size} -> {folder / name} "
                  f"({(folder / name).stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
