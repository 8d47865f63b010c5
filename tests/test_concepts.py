"""Lesson 01's shipped concepts (utils.minisd.concepts) and sketches (utils.lessons).

The concepts are trained on the shipped MiniSD, so they are checked against it: remade when MiniSD
changes, and still doing what lesson 01 shows (purple for ``<purple>``, the orange seven for
"a sks seven"). The smoke run proves the code that remakes them still works.
"""
import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from utils import lessons
from utils.metrics import ink_colour, nearest_distance
from utils.minisd import MINISD_PATH, PALETTE
from utils.minisd import concepts
from utils.track import choose_track, load_pipeline

NAMES = list(PALETTE)


def _draw(pipe, prompt, seeds, steps=25):
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    return pipe([prompt] * len(seeds), num_inference_steps=steps, generator=generators).images


def test_shipped_concepts_were_made_from_the_shipped_minisd():
    record = concepts.check_concepts()
    assert not record["smoke"]
    assert record["measured"]["textual_inversion"]["purple_share"] >= 0.8
    m = record["measured"]
    assert (m["dreambooth: a sks seven"]["distance_to_subject"]
            < m["original: a sks seven"]["distance_to_subject"])


def test_a_changed_minisd_asks_for_the_concepts_to_be_remade(tmp_path):
    out = tmp_path / "concepts"
    out.mkdir()
    record = json.loads((concepts.CONCEPTS_PATH / "CONCEPTS.json").read_text())
    record["made_from"]["sha256"]["unet/diffusion_pytorch_model.safetensors"] = "0" * 64
    (out / "CONCEPTS.json").write_text(json.dumps(record))
    with pytest.raises(RuntimeError, match="python -m utils.minisd concepts --overwrite"):
        concepts.check_concepts(out)
    with pytest.raises(FileNotFoundError, match="python -m utils.minisd concepts"):
        concepts.check_concepts(tmp_path / "nothing")


def test_shipped_textual_inversion_draws_purple():
    pipe = StableDiffusionPipeline.from_pretrained(MINISD_PATH)
    pipe.set_progress_bar_config(disable=True)
    before = ink_colour(_draw(pipe, "a <purple> seven", range(8)), NAMES)
    pipe.load_textual_inversion(str(concepts.CONCEPTS_PATH / concepts.EMBEDDING))
    after = ink_colour(_draw(pipe, "a <purple> seven", range(8)), NAMES)
    assert before.count("purple") == 0
    assert after.count("purple") >= 6, after


def test_dreambooth_copy_loads_as_minisd_and_draws_its_subject():
    folder = concepts.CONCEPTS_PATH / concepts.DREAMBOOTH
    assert not (folder / "clip").exists()  # a plain save_pretrained folder, as a learner's would be
    assert choose_track(str(folder))[0] == "mini"
    copy = load_pipeline(str(folder), verbose=False)
    assert copy.course_track == "mini"
    original = load_pipeline("mini", verbose=False)
    subject = concepts.examples()["subject"]
    tuned = _draw(copy, concepts.SUBJECT_PROMPT, range(4))
    plain = _draw(original, concepts.SUBJECT_PROMPT, range(4))
    assert ink_colour(tuned, NAMES).count("orange") == 4
    assert nearest_distance(tuned, subject).mean() < 0.7 * nearest_distance(plain, subject).mean()


def test_concepts_smoke_run_writes_loadable_files_and_never_overwrites(tmp_path):
    out = concepts.make_concepts(tmp_path / "concepts", smoke=True)
    record = concepts.check_concepts(out)
    assert record["smoke"] and record["recipe"]["ti_steps"] == concepts.SMOKE["ti_steps"]
    assert (out / concepts.EMBEDDING / "learned_embeds.safetensors").stat().st_size < 2000
    reloaded = StableDiffusionPipeline.from_pretrained(out / concepts.DREAMBOOTH)
    assert reloaded.unet.dtype == torch.float32  # stored fp16, loaded as fp32
    before = (out / "CONCEPTS.json").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        concepts.make_concepts(out, smoke=True)
    assert (out / "CONCEPTS.json").read_bytes() == before
    assert not list(tmp_path.glob(".*partial"))


def test_make_concepts_needs_a_minisd_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a MiniSD pipeline folder"):
        concepts.make_concepts(tmp_path / "out", base=tmp_path, smoke=True)


def test_shipped_sketches_are_what_the_code_draws(tmp_path):
    for path in lessons.draw_sketches(tmp_path):
        drawn = np.asarray(Image.open(path), dtype=int)
        shipped = np.asarray(Image.open(lessons.SKETCH_PATH / path.name), dtype=int)
        assert drawn.shape == shipped.shape
        assert np.abs(drawn - shipped).mean() < 1.0, f"{path.name}: redraw with python -m utils.lessons"


@pytest.mark.parametrize("track, size", [("sd", 512), ("mini", 32)])
def test_load_sketch_gives_the_tracks_size(track, size):
    image, prompt = lessons.load_sketch(track)
    assert image.size == (size, size) and image.mode == "RGB" and prompt


def test_missing_sketch_says_how_to_redraw(tmp_path, monkeypatch):
    monkeypatch.setattr(lessons, "SKETCH_PATH", tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m utils.lessons"):
        lessons.load_sketch("mini")
