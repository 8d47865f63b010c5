import json

import pytest
import torch

from utils.score import (DENOISER_PATH, Denoiser, build_unet, denoising_loss, load_mnist_denoiser, main,
                         mnist_tensor)


class GaussianOptimum(torch.nn.Module):
    """The exact best noise predictor for data ~ N(0, s^2 I): eps* = sigma x / (s^2 + sigma^2)."""

    def __init__(self, s: float):
        super().__init__()
        self.s = s

    def forward(self, x, sigma):
        sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
        return sigma * x / (self.s**2 + sigma**2)


def test_the_optimal_noise_predictor_is_minus_sigma_times_the_score():
    # Tweedie for a Gaussian: the noisy density is N(0, s^2 + sigma^2), score = -x / (s^2 + sigma^2).
    s, sigma = 0.7, 0.4
    x = torch.randn(10, 1, 4, 4)
    score = -x / (s**2 + sigma**2)
    assert torch.allclose(GaussianOptimum(s)(x, sigma), -sigma * score)
    # ...and the denoising loss is smallest there: any other scale of the same predictor does worse.
    data = s * torch.randn(20000, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    optimum = denoising_loss(GaussianOptimum(s), data, torch.Generator().manual_seed(1))
    for factor in (0.8, 1.2):
        worse = lambda x, sig, f=factor: f * GaussianOptimum(s)(x, sig)  # noqa: E731
        assert denoising_loss(worse, data, torch.Generator().manual_seed(1)) > optimum


def test_denoiser_shapes_and_clear_errors():
    denoiser = Denoiser(build_unet((8, 16, 16)))
    x = torch.zeros(3, 1, 32, 32)
    assert denoiser(x, 0.5).shape == x.shape
    assert denoiser(x, torch.tensor([0.1, 1.0, 10.0])).shape == x.shape
    with pytest.raises(ValueError, match="one per image"):
        denoiser(x, torch.tensor([0.1, 1.0]))
    with pytest.raises(ValueError, match="positive"):
        denoiser(x, 0.0)


def test_mnist_tensor_is_padded_and_scaled():
    x, y = mnist_tensor("test")
    assert x.shape == (500, 1, 32, 32) and x.min() == -1 and x.max() == 1 and len(y) == 500
    assert (x[:, :, :2] == -1).all()  # the 2-pixel padding is background


def test_training_command_smoke_resume_and_no_silent_overwrite(tmp_path, capsys):
    out, work = tmp_path / "denoiser", tmp_path / "work"
    main(["train", "--out", str(out), "--work", str(work), "--steps", "2", "--batch-size", "4", "--smoke"])
    record = json.loads((out / "TRAINING.json").read_text())
    assert record["steps"] == 2 and "utils.score train" in record["command"]
    assert load_mnist_denoiser(out)(torch.zeros(1, 1, 32, 32), 1.0).shape == (1, 1, 32, 32)
    with pytest.raises(SystemExit, match="--overwrite"):
        main(["train", "--out", str(out), "--work", str(work), "--steps", "3", "--smoke"])
    main(["train", "--out", str(out), "--work", str(work), "--steps", "3", "--batch-size", "4", "--smoke",
          "--resume", "--overwrite"])
    assert "Resuming from the checkpoint at step 2" in capsys.readouterr().out
    assert json.loads((out / "TRAINING.json").read_text())["steps"] == 3


def test_missing_denoiser_says_how_to_train_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m utils.score train"):
        load_mnist_denoiser(tmp_path)


@pytest.mark.skipif(not (DENOISER_PATH / "config.json").exists(), reason="no shipped denoiser")
def test_shipped_denoiser_removes_most_of_the_noise_from_held_out_digits():
    denoiser = load_mnist_denoiser()
    x, _ = mnist_tensor("test")
    x = x[:64]
    for sigma in (0.2, 0.5, 1.0):
        noisy = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            error = (denoiser.denoise(noisy, sigma) - x).pow(2).mean()
        assert error < 0.25 * (noisy - x).pow(2).mean(), sigma


def test_an_interrupted_training_resumes_where_its_last_checkpoint_left_off(tmp_path, monkeypatch, capsys):
    import utils.score as score

    # a few random "digits" stand in for MNIST: resuming is what is tested here
    digits = torch.rand(16, 1, 32, 32) * 2 - 1
    monkeypatch.setattr(score, "mnist_tensor", lambda split: (digits, torch.zeros(16)))
    out, work = tmp_path / "denoiser", tmp_path / "work"
    argv = ["train", "--out", str(out), "--work", str(work), "--steps", "6", "--batch-size", "4",
            "--checkpoint-every", "2", "--smoke"]
    calls = []
    real_loss = score.denoising_loss

    def loss_that_stops_at_step_5(*args):
        calls.append(1)
        if len(calls) == 5:  # Ctrl-C during step 5: steps 1-4 are done, 4 is checkpointed
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(score, "denoising_loss", loss_that_stops_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    assert json.loads((work / "checkpoint" / "state.json").read_text())["step"] == 4 and not out.exists()
    calls.clear()
    monkeypatch.setattr(score, "denoising_loss", lambda *args: (calls.append(1), real_loss(*args))[1])
    main(argv + ["--resume"])
    assert "Resuming from the checkpoint at step 4" in capsys.readouterr().out
    assert len(calls) == 2  # only steps 5 and 6 were trained again
    assert json.loads((work / "checkpoint" / "state.json").read_text())["step"] == 6
    assert json.loads((out / "TRAINING.json").read_text())["steps"] == 6


def test_an_interrupt_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import utils.score as score
    import utils.training as training

    digits = torch.rand(16, 1, 32, 32) * 2 - 1
    monkeypatch.setattr(score, "mnist_tensor", lambda split: (digits, torch.zeros(16)))
    out, work = tmp_path / "denoiser", tmp_path / "work"
    argv = ["train", "--out", str(out), "--work", str(work), "--steps", "6", "--batch-size", "4",
            "--checkpoint-every", "2", "--smoke"]
    saves, real_save = [], training.save_file

    def save_that_stops_after_the_first(*args, **kwargs):
        saves.append(1)
        if len(saves) >= 2:  # Ctrl-C while writing step 4's checkpoint (and the one after it)
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)

    monkeypatch.setattr(training, "save_file", save_that_stops_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    monkeypatch.setattr(training, "save_file", real_save)
    assert json.loads((work / "checkpoint" / "state.json").read_text())["step"] == 2  # step 2's, whole
    with pytest.raises(SystemExit, match="--resume to continue"):  # a fresh run would lose it
        main(argv)
    main(argv + ["--resume"])
    assert json.loads((out / "TRAINING.json").read_text())["steps"] == 6


def test_a_damaged_checkpoint_or_one_of_other_settings_is_refused(tmp_path, monkeypatch):
    import utils.score as score

    digits = torch.rand(16, 1, 32, 32) * 2 - 1
    monkeypatch.setattr(score, "mnist_tensor", lambda split: (digits, torch.zeros(16)))
    work = tmp_path / "work"
    argv = ["train", "--out", str(tmp_path / "denoiser"), "--work", str(work), "--steps", "2",
            "--batch-size", "4", "--checkpoint-every", "2", "--smoke"]
    main(argv)
    with pytest.raises(SystemExit, match=r"other settings \(lr: 0.002 then, 0.01 now\)"):
        main(argv + ["--resume", "--overwrite", "--lr", "0.01"])
    (work / "checkpoint" / "state.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="cannot be read.*Delete that folder"):
        main(argv + ["--resume", "--overwrite"])
