"""utils.metrics: every measure agrees with digits whose attributes we set ourselves."""
import json

import numpy as np
import pytest
import torch

from utils.data import load_mnist
from utils.metrics import (CLASSIFIER_PATH, as_images, bbox_area, classify, evaluate_classifier,
                           frechet_distance, ink_area, ink_colour, load_classifier,
                           nearest_distance, spread)
from utils.digits import PALETTE, render


@pytest.fixture(scope="module")
def digits():
    images, labels = load_mnist(split="test")
    return images[:100], labels[:100]


def _render(images, thickness=0, size=0, colour=0, colours=None):
    n = len(images)
    return render(images, np.full(n, colour), np.full(n, thickness), np.full(n, size),
                  colours=colours)


def test_ink_colour_reads_back_every_palette_colour(digits):
    names = list(PALETTE)
    for i, name in enumerate(names):
        found = ink_colour(_render(digits[0], colour=i, colours=names))
        assert found == [name] * len(found), name


def test_ink_colour_says_none_for_a_blank_image():
    assert ink_colour(torch.zeros(2, 3, 32, 32)) == [None, None]


def test_thickness_orders_ink_area_and_size_orders_the_box(digits):
    thin, plain, thick = (ink_area(_render(digits[0], thickness=t)) for t in (1, 0, 2))
    assert ((thin < plain) & (plain < thick)).float().mean() >= 0.95
    small, middle, large = (bbox_area(_render(digits[0], size=s)) for s in (1, 0, 2))
    assert ((small < middle) & (middle < large)).float().mean() >= 0.95


def test_bbox_area_of_a_known_rectangle():
    x = torch.zeros(1, 3, 32, 32)
    x[0, :, 4:10, 8:20] = 1.0  # 6 rows x 12 columns
    assert bbox_area(x).item() == 72
    assert ink_area(x).item() == 72
    assert bbox_area(torch.zeros(1, 3, 32, 32)).item() == 0


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # Same covariance, mean shifted by (1, 2, 0): distance |shift|^2 = 5.
    assert frechet_distance(a, a + [1.0, 2.0, 0.0]) == pytest.approx(5.0, rel=1e-6)
    # N(0, I) vs N(0, 4I) in 3-D: tr(I + 4I - 2*2I) = 3.
    assert frechet_distance(a, 2 * rng.normal(size=(20000, 3))) == pytest.approx(3.0, rel=0.05)
    with pytest.raises(ValueError, match="features must be"):
        frechet_distance(a, a[:, :2])


def test_spread_and_nearest_distance(digits):
    x = _render(digits[0][:10])
    assert spread(torch.cat([x[:1]] * 5)) == pytest.approx(0.0, abs=1e-5)
    assert spread(x) > 1.0
    assert np.allclose(nearest_distance(x[:3], x), 0.0, atol=1e-3)
    assert (nearest_distance(x[:3], x[3:]) > 0.5).all()


def test_as_images_accepts_pipeline_outputs_and_names_bad_input(digits):
    x = _render(digits[0][:2])
    as_np = x.permute(0, 2, 3, 1).numpy()
    assert torch.allclose(as_images(as_np), x)
    from PIL import Image

    pil = [Image.fromarray((im * 255).round().astype(np.uint8)) for im in as_np]
    assert torch.allclose(as_images(pil), x, atol=1 / 255)
    with pytest.raises(TypeError, match="images must be"):
        as_images("a red seven")


def test_the_shipped_classifier_reads_held_out_digits():
    facts = evaluate_classifier(load_classifier())
    assert facts["test_count"] == 500
    assert facts["test_accuracy"] >= 0.95
    assert facts["test_accuracy_rendered"] >= 0.93  # coloured, thick/thin, small/large
    recorded = json.loads(CLASSIFIER_PATH.with_suffix(".json").read_text())
    assert recorded["test_accuracy"] == pytest.approx(facts["test_accuracy"])
    assert recorded["trained_on"] == "utils.data.load_mnist('train')"


def test_classify_returns_one_label_per_image(digits):
    labels = classify(_render(digits[0][:20], colour=3))
    assert labels.shape == (20,) and labels.dtype == np.int64
    assert (labels == digits[1][:20]).mean() >= 0.9


def test_load_classifier_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-classifier"):
        load_classifier(tmp_path / "nope.safetensors")
