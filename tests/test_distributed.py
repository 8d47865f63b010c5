"""The fine-tuning recipes as scripts, on one process and on two (torchrun, gloo on the CPU).

Two processes each compute half of every batch and average their gradients, so a two-process run
must take the steps a one-process run takes. Each two-process run here is also paused at a
checkpoint (``--stop-at``) and resumed by the same command, as after an interruption. MiniSD, the
shipped pipeline, stands in for SD 1.5: the code path is the one a multi-GPU launch runs.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from tools.layout import ROOT

pytestmark = pytest.mark.slow

TI = ["textual-inversion", "--token", "<q>", "--init-word", "red", "--lr", "1e-2"]
DREAMBOOTH = ["dreambooth", "--prompt", "a sks seven", "--class-prompt", "a seven",
              "--num-class-images", "4"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def launch(processes: int, recipe: list[str], images, out, *extra) -> str:
    module = ["-m", "utils.finetune", *recipe, "--model", "mini", "--images", str(images),
              "--out", str(out), "--steps", "4", "--batch-size", "4", *extra]
    if processes == 1:
        command = [sys.executable, *module]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", *module]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def tensors(folder) -> dict:
    found = {}
    for file in sorted(folder.rglob("*.safetensors")):
        if "checkpoint" not in file.parts:
            found |= {f"{file.name}:{k}": v for k, v in load_file(file).items()}
    return found


@pytest.mark.parametrize("recipe", [TI, DREAMBOOTH], ids=["textual_inversion", "dreambooth"])
def test_two_processes_pause_resume_and_match_one_process(recipe, images, tmp_path):
    launch(1, recipe, images, tmp_path / "one")
    paused = launch(2, recipe, images, tmp_path / "two", "--stop-at", "2")
    assert "2 process(es) on cpu" in paused and "Paused at step 2" in paused
    saved = json.loads((tmp_path / "two" / "checkpoint" / "state.json").read_text())
    assert saved["step"] == 2 and saved["processes"] == 2
    assert not (tmp_path / "two" / "training.json").exists()  # nothing final yet
    resumed = launch(2, recipe, images, tmp_path / "two")
    assert "Resuming from the checkpoint at step 2" in resumed and "Done:" in resumed
    record = json.loads((tmp_path / "two" / "training.json").read_text())
    assert record["steps"] == 4 and record["resumed_from"] == 2
    assert not (tmp_path / "two" / "checkpoint").exists()
    one, two = tensors(tmp_path / "one"), tensors(tmp_path / "two")
    assert one.keys() == two.keys() and one
    for name, value in one.items():  # the same steps, up to the order of float additions
        assert (value - two[name]).abs().max() <= 1e-4 * max(1.0, value.abs().max()), name
    first = json.loads((tmp_path / "one" / "training.json").read_text())["losses"]
    assert np.allclose(first, record["losses"], rtol=1e-4)


def test_a_batch_that_two_processes_cannot_share_is_refused(images, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "utils.finetune", *TI, "--model", "mini", "--images", str(images), "--out",
               str(tmp_path / "odd"), "--steps", "2", "--batch-size", "3"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0
    assert "A batch of 3 cannot be shared equally by 2 processes" in done.stderr
