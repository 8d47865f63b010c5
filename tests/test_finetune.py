"""utils.finetune: textual inversion and Dreambooth on a tiny random pipeline of the real classes.

What is checked: only the new token's row changes; saved files reload with diffusers' own loaders
and give the same images; an interrupted run resumes to exactly the result of an uninterrupted
one; finished output is never overwritten without asking, and a finished run of the same recipe
is loaded (on MiniSD: the same images as the trained pipeline) rather than trained again; where
outputs go (COURSE_OUTPUT_DIR, Google Drive, build/outputs) and one folder per recipe; a
wrong-sized embedding file is refused with a message that names both sizes; checkpoints are
safetensors and JSON only.
"""
import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file, save_file

from utils import finetune
from utils.track import tiny_random_pipeline

TOKEN = "<new-colour>"
STEPS = 6


def fresh_pipe():
    pipe = tiny_random_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def examples(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))  # (n, 3, 32, 32)


def images_of(pipe, prompt: str) -> np.ndarray:
    return pipe(prompt, num_inference_steps=2, output_type="np",
                generator=torch.Generator().manual_seed(0)).images


def train_ti(pipe, out_dir, **kwargs):
    kwargs = {"steps": STEPS, "lr": 1e-2, "batch_size": 2, "progress": False, **kwargs}
    return finetune.train_textual_inversion(pipe, examples(), [f"a {TOKEN}"] * 3, TOKEN, "a",
                                            out_dir, **kwargs)


def new_row(pipe) -> torch.Tensor:
    token_id = pipe.tokenizer.convert_tokens_to_ids(TOKEN)
    return pipe.text_encoder.get_input_embeddings().weight[token_id].detach().clone()


def test_textual_inversion_changes_only_the_new_row_and_reloads(tmp_path):
    pipe = fresh_pipe()
    before = pipe.text_encoder.get_input_embeddings().weight.detach().clone()  # (V, D)
    result = train_ti(pipe, tmp_path / "ti")
    after = pipe.text_encoder.get_input_embeddings().weight.detach()  # (V + 1, D)
    assert after.shape == (before.shape[0] + 1, before.shape[1])
    assert torch.equal(after[:-1], before), "a row other than the new token's changed"
    init = before[pipe.tokenizer.convert_tokens_to_ids("a</w>")]
    assert not torch.equal(after[-1], init), "the new row did not learn"
    assert len(result.losses) == STEPS and result.resumed_from == 0
    assert not (tmp_path / "ti" / "checkpoint").exists()

    saved = load_file(result.final)  # diffusers' format: {token: (1, D)}
    assert list(saved) == [TOKEN] and saved[TOKEN].shape == (1, before.shape[1])
    other = fresh_pipe()
    other.load_textual_inversion(str(result.final))
    assert torch.equal(new_row(other), new_row(pipe))
    assert np.array_equal(images_of(other, f"a {TOKEN}"), images_of(pipe, f"a {TOKEN}"))


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, stop):
    reference = fresh_pipe()
    train_ti(reference, tmp_path / "whole")

    def interrupt(step, loss):
        if step == 5:
            raise stop("stopped by the test")

    with pytest.raises(stop):
        train_ti(fresh_pipe(), tmp_path / "parts", checkpoint_every=2, callback=interrupt)
    state = json.loads((tmp_path / "parts" / "checkpoint" / "state.json").read_text())
    # KeyboardInterrupt saves where it stopped; a crash leaves the last periodic checkpoint.
    assert state["step"] == (5 if stop is KeyboardInterrupt else 4)
    assert {p.suffix for p in (tmp_path / "parts" / "checkpoint").iterdir()} == {".json",
                                                                                  ".safetensors"}
    resumed_pipe = fresh_pipe()  # as after a kernel restart
    resumed = train_ti(resumed_pipe, tmp_path / "parts")
    assert resumed.resumed_from == state["step"] and len(resumed.losses) == STEPS
    assert torch.equal(new_row(resumed_pipe), new_row(reference))


def test_finished_output_is_not_overwritten_without_asking(tmp_path):
    first = train_ti(fresh_pipe(), tmp_path / "run")
    again = train_ti(fresh_pipe(), tmp_path / "run")  # the same recipe: loaded, not trained
    assert again.reused and again.losses == first.losses and again.final == first.final
    with pytest.raises(FileExistsError, match=r"other settings \(lr: 0.01 then, 0.02 now\).*"
                                              "overwrite=True"):
        train_ti(fresh_pipe(), tmp_path / "run", lr=0.02)
    retrained = train_ti(fresh_pipe(), tmp_path / "run", overwrite=True)
    assert retrained.resumed_from == 0 and not retrained.reused
    (tmp_path / "run" / "training.json").unlink()  # a result with no record of how it was made
    with pytest.raises(FileExistsError, match="no record of its settings"):
        train_ti(fresh_pipe(), tmp_path / "run")
    first, second = finetune.new_output_dir("x", tmp_path), finetune.new_output_dir("x", tmp_path)
    assert first != second and first.is_dir() and second.is_dir()


def test_output_root_follows_the_setting_then_drive_then_the_repository(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_OUTPUT_DIR", raising=False)
    monkeypatch.setattr(finetune, "DRIVE", tmp_path / "drive" / "MyDrive")
    assert finetune.output_root() == finetune.LOCAL_OUTPUTS  # no Drive mounted
    (tmp_path / "drive" / "MyDrive").mkdir(parents=True)  # as after drive.mount on Colab
    assert finetune.output_root() == tmp_path / "drive" / "MyDrive" / "diffusion-course" / "outputs"
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "mine"))  # set in a running kernel
    assert finetune.output_root() == tmp_path / "mine"
    assert finetune.new_output_dir("lesson").parent == tmp_path / "mine"


def test_one_folder_per_recipe_says_what_an_earlier_run_left(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    recipe = {"steps": 6, "lr": 0.01, "prompts": ["a", "b"]}
    folder = finetune.recipe_dir("sd", recipe)
    assert folder == tmp_path / "sd-4ab34d20"  # a hash of the JSON: the same in every process
    assert capsys.readouterr().out == f"New folder for this recipe: {folder}\n"
    assert json.loads((folder / "recipe.json").read_text()) == recipe
    train_ti(fresh_pipe(), folder / "ti")

    def interrupt(step, loss):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ti(fresh_pipe(), folder / "ti2", callback=interrupt)
    capsys.readouterr()
    assert finetune.recipe_dir("sd", dict(reversed(recipe.items()))) == folder  # key order: same
    assert capsys.readouterr().out == (f"Continuing this recipe's earlier run in {folder}: "
                                       f"ti finished ({STEPS} steps); ti2 interrupted at step 2\n")
    assert finetune.recipe_dir("sd", {**recipe, "lr": 0.02}) != folder


def mini_pipe():
    from utils import load_pipeline

    pipe = load_pipeline("mini", verbose=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def train_on_mini(kind: str, pipe, out_dir, lr: float = 1e-2):
    """A few steps of ``kind`` on MiniSD: the result, and a prompt that shows what it learned."""
    images = examples(2)
    if kind == "textual_inversion":
        return finetune.train_textual_inversion(
            pipe, images, ["a <purple> three"] * 2, "<purple>", "blue", out_dir, steps=3, lr=lr,
            batch_size=2, progress=False), "a <purple> three"
    return finetune.train_dreambooth(
        pipe, images, "a sks seven", out_dir, steps=2, lr=lr, batch_size=2, progress=False,
        lora_rank=2 if kind == "dreambooth_lora" else None), "a sks seven"


@pytest.mark.parametrize("kind", ["textual_inversion", "dreambooth", "dreambooth_lora"])
def test_a_finished_run_of_the_same_recipe_is_loaded_not_trained_again(tmp_path, kind, capsys):
    """As on a rerun after a disconnect: a fresh MiniSD, the same call, the same folder."""
    trained = mini_pipe()
    first, prompt = train_on_mini(kind, trained, tmp_path / kind)
    again_pipe = mini_pipe()  # as after a kernel restart
    capsys.readouterr()
    again, _ = train_on_mini(kind, again_pipe, tmp_path / kind)
    assert capsys.readouterr().out == (f"Already trained in {tmp_path / kind}: loaded its result; "
                                       "pass overwrite=True to train again.\n")
    assert again.reused and not first.reused and again.losses == first.losses
    assert again.final == first.final
    expected, loaded = images_of(trained, prompt), images_of(again_pipe, prompt)
    assert not np.array_equal(loaded, images_of(mini_pipe(), prompt)), "nothing was loaded"
    if kind == "dreambooth_lora":  # peft's adapter added in training, diffusers' loaded one
        assert np.allclose(loaded, expected, atol=1e-5)
    else:
        assert np.array_equal(loaded, expected)
    with pytest.raises(FileExistsError, match=r"other settings \(lr: 0.01 then, 0.02 now\)"):
        train_on_mini(kind, mini_pipe(), tmp_path / kind, lr=0.02)


def test_class_images_are_drawn_once_and_kept(tmp_path):
    pipe, calls = fresh_pipe(), []

    def counted(prompts, **kwargs):  # the pipeline, counting the images asked of it
        calls.append(len(prompts))
        return pipe(prompts, **kwargs)

    drawn = finetune.draw_class_images(counted, "a dog", 3, tmp_path / "class", batch_size=2,
                                       num_inference_steps=2)
    assert calls == [2, 1]
    assert sorted(p.name for p in (tmp_path / "class").iterdir()) == ["0000.png", "0001.png",
                                                                     "0002.png"]
    (tmp_path / "class" / "0001.png").unlink()  # as if interrupted while drawing
    again = finetune.draw_class_images(counted, "a dog", 3, tmp_path / "class", batch_size=2,
                                       num_inference_steps=2)
    assert calls == [2, 1, 1]  # only the missing image was drawn again, from its own seed
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(drawn, again))


def test_resuming_with_other_settings_is_refused(tmp_path):
    def interrupt(step, loss):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ti(fresh_pipe(), tmp_path / "run", callback=interrupt)
    with pytest.raises(ValueError, match="lr"):
        train_ti(fresh_pipe(), tmp_path / "run", lr=0.5)


def test_a_wrong_sized_embedding_file_names_both_sizes(tmp_path):
    path = tmp_path / "sd15_concept.safetensors"
    save_file({"<cat-toy>": torch.zeros(1, 768)}, path)
    with pytest.raises(ValueError, match=r"width 768.*SD 1\.x.*expects width 32"):
        finetune.load_embedding(fresh_pipe(), path)


def test_add_token_refuses_a_known_word():
    with pytest.raises(ValueError, match="already a token"):
        finetune.add_token(fresh_pipe(), "a</w>", "b")


def test_dreambooth_with_prior_preservation_saves_and_reloads(tmp_path):
    pipe = fresh_pipe()
    original = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    result = finetune.train_dreambooth(
        pipe, examples(), "a sks", tmp_path / "db", class_images=examples(4) * 0.5,
        class_prompt="a dog", steps=3, batch_size=2, lr=1e-3, progress=False)
    assert (result.final / "diffusion_pytorch_model.safetensors").exists()
    assert any(not torch.equal(v, original[k]) for k, v in pipe.unet.state_dict().items())
    pipe.save_pretrained(tmp_path / "pipeline")
    reloaded = StableDiffusionPipeline.from_pretrained(tmp_path / "pipeline")
    reloaded.set_progress_bar_config(disable=True)
    assert np.array_equal(images_of(reloaded, "a sks"), images_of(pipe, "a sks"))


def test_dreambooth_lora_resumes_and_reloads(tmp_path):
    def interrupt(step, loss):
        if step == 2:
            raise KeyboardInterrupt

    kwargs = {"steps": 4, "batch_size": 2, "lr": 1e-2, "lora_rank": 2, "progress": False}
    with pytest.raises(KeyboardInterrupt):
        finetune.train_dreambooth(fresh_pipe(), examples(), "a sks", tmp_path / "lora",
                                  callback=interrupt, **kwargs)
    pipe = fresh_pipe()
    result = finetune.train_dreambooth(pipe, examples(), "a sks", tmp_path / "lora", **kwargs)
    assert result.resumed_from == 2 and result.final.name == finetune.LORA_FILE
    other = fresh_pipe()
    other.load_lora_weights(tmp_path / "lora")
    assert np.allclose(images_of(other, "a sks"), images_of(pipe, "a sks"), atol=1e-5)


def test_class_images_go_through_the_vae_a_few_at_a_time():
    pipe = fresh_pipe()
    seen, encode = [], pipe.vae.encode

    def spy(x, *args, **kwargs):
        seen.append(len(x))
        return encode(x, *args, **kwargs)

    pipe.vae.encode = spy
    mean, std = finetune.encode_images(pipe, examples(20), batch_size=8)
    assert seen == [8, 8, 4] and mean.shape[0] == std.shape[0] == 20


@pytest.mark.slow
def test_training_an_fp16_pipeline_leaves_it_fp16_and_working(tmp_path):
    """In one process, as in one kernel: textual inversion with gradient checkpointing, then a
    full Dreambooth fine-tune, on a float16 pipeline (a GPU's dtype, here on the CPU), with
    deprecations as errors; then a pipeline that needs another precision is refused clearly."""
    import os
    import subprocess
    import sys
    import textwrap

    from tools.standin import ROOT

    code = textwrap.dedent(f"""
        import numpy as np, torch
        from utils.settings import install_strict_warnings
        install_strict_warnings()
        from utils import finetune
        from utils.track import tiny_random_pipeline

        pipe = tiny_random_pipeline().to(dtype=torch.float16)
        pipe.set_progress_bar_config(disable=True)
        images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        finetune.train_textual_inversion(pipe, images, ["a <t>"] * 3, "<t>", "a",
                                         {str(tmp_path / 'ti')!r}, steps=2, batch_size=2,
                                         gradient_checkpointing=True, progress=False)
        result = finetune.train_dreambooth(pipe, images, "a sks", {str(tmp_path / 'db')!r},
                                           steps=2, batch_size=2, progress=False)
        print("unet", {{p.dtype for p in pipe.unet.parameters()}}, __import__("utils.training").training._ACCELERATOR.mixed_precision)
        out = pipe("a sks <t>", num_inference_steps=2, output_type="np").images
        print("image", out.shape, bool(np.isfinite(out).all()))
        try:
            finetune.train_dreambooth(tiny_random_pipeline(), images, "a sks",
                                      {str(tmp_path / 'db32')!r}, steps=1, progress=False)
        except RuntimeError as err:
            print("refused:", err)
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "unet {torch.float16} fp16" in done.stdout
    assert "image (1, 32, 32, 3) True" in done.stdout
    assert "refused: This kernel already trained with mixed precision 'fp16'" in done.stdout
    assert "Restart the kernel" in done.stdout


def test_a_second_trainer_call_reuses_the_process_accelerator(tmp_path):
    first = train_ti(fresh_pipe(), tmp_path / "a")
    from utils import training

    made = training._ACCELERATOR
    finetune.train_dreambooth(fresh_pipe(), examples(), "a sks", tmp_path / "b", steps=1,
                              batch_size=2, progress=False)
    assert training._ACCELERATOR is made and first.final.exists()


def test_sd_track_training_is_capped_only_when_asked(tmp_path, monkeypatch, capsys):
    import utils.settings as settings

    monkeypatch.setattr(settings, "SETTINGS", settings.Settings(sd_train_steps=2))
    pipe = fresh_pipe()
    pipe.course_track = "sd"
    assert len(train_ti(pipe, tmp_path / "sd").losses) == 2
    assert "Training 2 steps instead of 6 (COURSE_SD_TRAIN_STEPS=2)" in capsys.readouterr().out
    mini = fresh_pipe()
    mini.course_track = "mini"  # MiniSD's runs are never capped
    assert len(train_ti(mini, tmp_path / "mini").losses) == STEPS
