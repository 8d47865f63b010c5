import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from utils.data import load_mnist  # noqa: E402
from utils.plotting import show_images, to_pil  # noqa: E402


def test_mnist_subset_split_is_fixed_balanced_and_disjoint():
    train_x, train_y = load_mnist("train")
    test_x, test_y = load_mnist("test")
    assert train_x.shape == (4500, 28, 28) and test_x.shape == (500, 28, 28)
    assert train_x.dtype == np.uint8 and train_x.max() == 255
    assert np.bincount(test_y).tolist() == [50] * 10
    train_rows = {row.tobytes() for row in train_x.reshape(len(train_x), -1)}
    assert not any(row.tobytes() in train_rows for row in test_x.reshape(len(test_x), -1))
    again_x, _ = load_mnist("test")
    assert np.array_equal(test_x, again_x)
    # Shuffled once, in a fixed order: a smoke run's first 32 test digits are not all zeros.
    assert len(set(test_y[:32].tolist())) >= 8


def test_mnist_rejects_unknown_split():
    with pytest.raises(ValueError, match="split='validation'"):
        load_mnist("validation")


def test_full_mnist_falls_back_visibly_when_unavailable(capsys, monkeypatch):
    import utils.data as data

    def unreachable(split):
        raise OSError("no network")

    monkeypatch.setattr(data, "_full", unreachable)
    images, _ = data.load_mnist("test", full=True)
    assert len(images) == 500
    assert "using the 5,000-digit offline subset" in capsys.readouterr().out


def test_to_pil_understands_the_usual_ranges():
    minus_one_to_one = torch.full((3, 4, 4), -1.0)
    assert np.asarray(to_pil(minus_one_to_one)).max() == 0
    zero_to_one = np.ones((4, 4), dtype=np.float32)
    assert np.asarray(to_pil(zero_to_one)).min() == 255
    assert to_pil(np.zeros((4, 4, 1), dtype=np.uint8)).mode == "L"
    with pytest.raises(TypeError, match="cannot show a str"):
        to_pil("image.png")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        to_pil(torch.zeros(4, 4))


def test_show_images_grid_and_title_count():
    fig = show_images(torch.rand(5, 3, 8, 8), titles=list("abcde"), cols=3)
    assert len(fig.axes) == 6 and fig.axes[4].get_title() == "e"
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        show_images([np.zeros((4, 4))] * 3, titles=["a", "b"])
