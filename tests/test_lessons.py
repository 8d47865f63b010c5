"""utils.lessons: the example inputs the component lessons (02-05) share."""
import numpy as np
import pytest
import torch

from utils.lessons import SD_PROMPTS, held_out_digits, lesson_images
from utils.metrics import ink_colour
from utils.digits import TRAIN_COLOURS
from utils.track import tiny_random_pipeline


def test_held_out_digits_are_reproducible_varied_and_labelled():
    images, digits, colours = held_out_digits(12, seed=3)
    assert images.shape == (12, 3, 32, 32) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert sorted(digits[:10].tolist()) == list(range(10))  # the first ten are ten digits
    assert set(colours) <= set(TRAIN_COLOURS)
    assert ink_colour(images) == colours  # the colour named is the colour drawn
    again, digits_again, _ = held_out_digits(12, seed=3)
    assert torch.equal(images, again) and np.array_equal(digits, digits_again)
    with pytest.raises(ValueError, match="n must be between 1 and 500"):
        held_out_digits(0)


@pytest.mark.parametrize("track", ["mini", "sd"])
def test_lesson_images_give_pictures_and_captions_on_both_tracks(track):
    pipe = tiny_random_pipeline()
    pipe.set_progress_bar_config(disable=True)
    pipe.course_track = track
    images, captions = lesson_images(pipe, n=2, steps=2)
    assert len(images) == len(captions) == 2
    assert all(im.mode == "RGB" and im.size == (32, 32) for im in images)
    if track == "sd":
        assert captions == SD_PROMPTS[:2]
    else:
        assert all(c.startswith("a ") and c.split()[1] in TRAIN_COLOURS for c in captions)


def test_the_sketch_comes_at_the_size_asked_for():
    from utils.lessons import load_sketch

    assert load_sketch("sd")[0].size == (512, 512)
    sketch, prompt = load_sketch("sd", 64)
    assert sketch.size == (64, 64) and "cottage" in prompt


def test_the_photos_load_as_512_rgb_with_captions():
    from utils.lessons import PHOTOS, load_photos

    images, captions = load_photos()
    assert captions == list(PHOTOS.values()) and len(images) == 4
    assert all(im.mode == "RGB" and im.size == (512, 512) for im in images)
    small, first = load_photos(1, size=64)
    assert small[0].size == (64, 64) and first == captions[:1]
    with pytest.raises(ValueError, match="at most 4"):
        load_photos(5)


def test_the_photos_are_those_of_the_recipe_and_each_has_a_licence_entry():
    import re
    from tools.photos import SOURCES
    from utils.lessons import PHOTO_PATH, PHOTOS

    shipped = {p.name for p in PHOTO_PATH.iterdir() if p.name != "README.md"}
    readme = (PHOTO_PATH / "README.md").read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))  # the licence table
    assert shipped == rows == set(PHOTOS) == set(SOURCES)
    for name in shipped:  # each row names an author and a free licence
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
        assert re.search(r"\| (CC0|public domain): ", row), row


def test_a_missing_photo_is_named_with_its_folder(tmp_path, monkeypatch):
    from utils import lessons

    monkeypatch.setattr(lessons, "PHOTO_PATH", tmp_path)
    with pytest.raises(FileNotFoundError, match=f"chelsea.jpg missing from {tmp_path}"):
        lessons.load_photos(1)
