"""MiniSD's two shipped concepts, for lesson 01: a textual-inversion token and a Dreambooth copy.

    python -m utils.minisd concepts            # rewrites assets/minisd_concepts (about 3 minutes)
    python -m utils.minisd concepts --smoke    # the same code, a few steps, into a temp folder

Lesson 01 loads them the way one loads concepts from the Hub: ``pipe.load_textual_inversion(...)``
for ``<purple>`` (purple is the colour MiniSD never saw in a caption) and ``load_pipeline(folder)``
for the Dreambooth copy that learned one writer's orange crossed seven as "a sks seven". Lesson 08
teaches how both are trained; this module runs the same recipes (``utils.finetune``) so that the
files can be remade whenever MiniSD is retrained. CONCEPTS.json records the command, the seed,
library versions, the figures measured on the saved files and the SHA-256 of the MiniSD weights
they were made from (a test fails when MiniSD changes and the concepts were not remade).
"""
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from utils.minisd import DIGIT_WORDS, HELD_OUT_COLOUR, MINISD_PATH, PALETTE, render

CONCEPTS_PATH = MINISD_PATH.parent / "minisd_concepts"
EMBEDDING = "purple"        # subfolder with learned_embeds.safetensors
DREAMBOOTH = "sks_seven"    # subfolder with a save_pretrained pipeline
TOKEN, SUBJECT_PROMPT, CLASS_PROMPT = "<purple>", "a sks seven", "a seven"
REMAKE = "python -m utils.minisd concepts --overwrite"

# The recipes lesson 08 teaches, at its full-mode sizes (smoke: enough steps to run the code).
FULL = dict(ti_steps=800, ti_lr=2e-3, db_steps=200, db_lr=2e-4, class_images=48, eval_images=32,
            steps=25)
SMOKE = dict(ti_steps=4, ti_lr=2e-3, db_steps=2, db_lr=2e-4, class_images=2, eval_images=2,
             steps=2)


def weights_digest(base: str | Path = MINISD_PATH) -> dict[str, str]:
    """SHA-256 of each weights file of a MiniSD folder that the concepts depend on."""
    base = Path(base)
    return {str(f.relative_to(base)): hashlib.sha256(f.read_bytes()).hexdigest()
            for part in ("text_encoder", "unet", "vae") for f in sorted((base / part).glob("*.safetensors"))}


def examples(seed: int = 0) -> dict:
    """Lesson 08's training pictures: eight purple digits (0-7) and six copies of one orange seven."""
    from utils.data import load_mnist

    digits, labels = load_mnist(split="train")
    rng = np.random.default_rng(seed)
    names = list(PALETTE)
    pick = [int(np.flatnonzero(labels == d)[3]) for d in range(8)]
    n = len(pick)
    purple = render(digits[pick], np.full(n, names.index(HELD_OUT_COLOUR)),
                    thickness=rng.integers(0, 3, n), size=rng.integers(0, 3, n), colours=names)
    captions = [f"a {TOKEN} {DIGIT_WORDS[labels[i]]}" for i in pick]
    seven, k = int(np.flatnonzero(labels == 7)[2]), 6
    subject = render(digits[[seven] * k], np.full(k, names.index("orange")), np.full(k, 2),
                     np.zeros(k, int), shift=rng.uniform(-1.5, 1.5, (k, 2)), colours=names)
    return {"purple": purple, "captions": captions, "subject": subject}


def _generate(pipe, prompts: list[str], seeds: list[int], steps: int) -> list:
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    return pipe(prompts, num_inference_steps=steps, generator=generators).images


def _save_fp16(pipe, folder: Path) -> None:
    from utils.minisd.train import _to_fp16

    pipe.save_pretrained(folder, safe_serialization=True)
    for file in folder.rglob("*.safetensors"):
        _to_fp16(file)


def make_concepts(out: str | Path = CONCEPTS_PATH, base: str | Path = MINISD_PATH,
                  smoke: bool = False, overwrite: bool = False, seed: int = 0,
                  command: str | None = None) -> Path:
    """Train both concepts on the MiniSD in ``base`` and write them, measured, to ``out``.

    An existing ``out`` is replaced only with ``overwrite=True``; the new files are written beside
    it first, so an interrupted run leaves the old ones whole.
    """
    from diffusers import StableDiffusionPipeline

    from utils import finetune
    from utils.metrics import classify, ink_colour, nearest_distance
    from utils.record import versions as _versions

    out, base = Path(out), Path(base)
    if not (base / "model_index.json").exists():
        raise FileNotFoundError(f"base={str(base)!r} is not a MiniSD pipeline folder (no "
                                "model_index.json); pass one such as assets/minisd.")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite (overwrite=True) to replace it.")
    sizes = SMOKE if smoke else FULL
    names = list(PALETTE)

    def load():
        return StableDiffusionPipeline.from_pretrained(base, dtype=torch.float32)

    started = time.time()
    data = examples(seed)
    work = Path(tempfile.mkdtemp(prefix="minisd-concepts-"))
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    progress = not smoke
    try:
        # 1. Textual inversion: one new token, trained on the eight purple digits.
        pipe = load()
        pipe.set_progress_bar_config(disable=True)
        ti = finetune.train_textual_inversion(
            pipe, data["purple"], data["captions"], TOKEN, "blue", work / "ti",
            steps=sizes["ti_steps"], lr=sizes["ti_lr"], seed=seed, progress=progress)
        (tmp / EMBEDDING).mkdir()
        shutil.copy(ti.final, tmp / EMBEDDING / ti.final.name)

        # 2. Dreambooth with prior preservation on the orange seven (class images: the original's).
        original = load()
        original.set_progress_bar_config(disable=True)
        class_seeds = list(range(1000, 1000 + sizes["class_images"]))
        class_images = _generate(original, [CLASS_PROMPT] * len(class_seeds), class_seeds,
                                 sizes["steps"])
        tuned = load()
        db = finetune.train_dreambooth(
            tuned, data["subject"], SUBJECT_PROMPT, work / "db", class_images=class_images,
            class_prompt=CLASS_PROMPT, steps=sizes["db_steps"], lr=sizes["db_lr"], batch_size=4,
            seed=seed, progress=progress)
        _save_fp16(tuned, tmp / DREAMBOOTH)

        # 3. Measure what was saved, loaded back the way lesson 01 loads it.
        seeds = list(range(100, 100 + sizes["eval_images"]))
        n = len(seeds)
        fresh = load()
        fresh.set_progress_bar_config(disable=True)
        fresh.load_textual_inversion(str(tmp / EMBEDDING / finetune.EMBEDDING_FILE))
        truth = np.arange(n) % 10
        with_token = _generate(fresh, [f"a {TOKEN} {DIGIT_WORDS[d]}" for d in truth], seeds,
                               sizes["steps"])
        copy = StableDiffusionPipeline.from_pretrained(tmp / DREAMBOOTH, dtype=torch.float32)
        copy.set_progress_bar_config(disable=True)
        measured = {"textual_inversion": {
            "prompt": f"a {TOKEN} <digit>", "images": n,
            "purple_share": float(np.mean([c == "purple" for c in ink_colour(with_token, names)])),
            "digit_accuracy": float(np.mean(classify(with_token) == truth))}}
        for name, model in (("original", original), ("dreambooth", copy)):
            for prompt in (SUBJECT_PROMPT, CLASS_PROMPT):
                images = _generate(model, [prompt] * n, seeds, sizes["steps"])
                measured[f"{name}: {prompt}"] = {
                    "distance_to_subject": float(nearest_distance(images, data["subject"]).mean()),
                    "orange_share": float(np.mean([c == "orange" for c in ink_colour(images, names)])),
                    "read_as_7": float(np.mean(classify(images) == 7))}
        record = {
            "command": command or REMAKE, "seed": seed, "smoke": smoke,
            "made_from": {"folder": os.path.relpath(base, out.parent), "sha256": weights_digest(base)},
            "recipe": {**sizes, "token": TOKEN, "init_word": "blue", "subject_prompt": SUBJECT_PROMPT,
                       "class_prompt": CLASS_PROMPT, "examples": "utils.minisd.concepts.examples"},
            "seconds": {"textual_inversion": round(ti.seconds, 1), "dreambooth": round(db.seconds, 1),
                        "total": round(time.time() - started, 1)},
            "measured": measured, "versions": _versions()}
        (tmp / "CONCEPTS.json").write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def check_concepts(out: str | Path = CONCEPTS_PATH, base: str | Path = MINISD_PATH) -> dict:
    """The concepts' record, after checking they were made from the MiniSD weights in ``base``."""
    record_file = Path(out) / "CONCEPTS.json"
    if not record_file.exists():
        raise FileNotFoundError(f"{record_file} is missing; make the concepts with `{REMAKE}`.")
    record = json.loads(record_file.read_text())
    if record["made_from"]["sha256"] != weights_digest(base):
        raise RuntimeError(f"{out} was made from other MiniSD weights than those in {base} (was MiniSD "
                           f"retrained?). Remake the concepts with `{REMAKE}`.")
    return record
