"""MiniSD: a tiny Stable Diffusion trained on coloured MNIST, built from the standard classes.

    python -m utils.minisd train --out assets/minisd --work build/minisd-train-60 --overwrite \
        --threads 2 --clip-minutes 11 --vae-minutes 5 --decoder-minutes 3 --unet-minutes 33
                                        # the shipped weights: one run, 52 minutes on 2 cores
    python -m utils.minisd train --smoke                   # the same recipe, tiny, in seconds
    python -m utils.minisd concepts --overwrite            # then remake lesson 01's concepts
Add ``--resume`` to continue an interrupted run (build/minisd-train keeps finished stages and the
U-Net checkpoint) and ``--overwrite`` to replace an existing output folder. The caps bound each
stage's wall time, so on a busy CPU fewer steps are done; assets/minisd/TRAINING.json records the
steps each stage actually did.

Modules: ``data`` (the training set and its captions; ``utils.digits`` draws the digits),
``tokenizer`` (word-level CLIPTokenizer), ``models`` (sizes and builders), ``train`` (the
resumable stages).
"""
from pathlib import Path

from utils.digits import HELD_OUT_COLOUR, PALETTE, SIZES, THICKNESS, TRAIN_COLOURS, render
from utils.minisd.data import DIGIT_WORDS, caption
from utils.minisd.tokenizer import build_tokenizer

MINISD_PATH = Path(__file__).resolve().parents[2] / "assets" / "minisd"


def load_clip(path: str | Path = MINISD_PATH):
    """MiniSD's whole CLIP (text and vision towers with projections) as a ``CLIPModel``, fp32."""
    from transformers import CLIPModel

    from utils.checks import check_json_file, check_path, check_safetensors

    folder = check_path("path", path) / "clip"
    if not folder.is_dir():
        raise FileNotFoundError(f"path={str(path)!r} has no clip/ folder; pass a MiniSD pipeline "
                                "folder such as assets/minisd.")
    rebuild = (f"Rebuild it with `python -m utils.minisd train --out {path} --overwrite` (the "
               "shipped run's exact command is in its TRAINING.json), or restore the shipped "
               "files with `git checkout -- assets/minisd`.")
    check_json_file(folder / "config.json", rebuild)
    check_safetensors(folder / "model.safetensors", rebuild)
    return CLIPModel.from_pretrained(folder)


__all__ = ["DIGIT_WORDS", "HELD_OUT_COLOUR", "MINISD_PATH", "PALETTE", "SIZES", "THICKNESS",
           "TRAIN_COLOURS", "build_tokenizer", "caption", "load_clip", "render"]
