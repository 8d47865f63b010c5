"""The SD 1.5 stand-in: the real loading path, offline, with SD 1.5's classes, files and tokenizer.

Loading runs in a fresh Python process because huggingface_hub reads HF_HOME and HF_HUB_OFFLINE
when it is imported: exactly how a learner's kernel sees them.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools import standin

ROOT = standin.ROOT


@pytest.fixture(scope="module")
def home():
    return standin.build("tiny")  # seconds, and reused while up to date


def run_python(code: str, **env) -> str:
    """Run ``code`` in a new process with ``env`` added; return its stdout (fail on an error)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **{k: str(v) for k, v in env.items()}}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_tokenizer_is_sd15s_real_clip_bpe(tmp_path):
    from transformers import CLIPTokenizer

    standin.write_tokenizer(tmp_path, standin.find_bpe())
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path)
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    # CLIP's published ids: <start> a photo of a cat <end>.
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer.tokenize("a watercolor painting") == ["a</w>", "watercolor</w>", "painting</w>"]


def test_every_hub_repo_a_lesson_reads_has_a_stand_in(home):
    from utils.hub import HUB_REPOS

    for repo, known in HUB_REPOS.items():
        assert any(standin.snapshot_folder(home, repo, known.kind).iterdir()), repo
    sd = standin.snapshot_folder(home, standin.SD15)
    index = json.loads((sd / "model_index.json").read_text())
    assert index["safety_checker"] == ["stable_diffusion", "StableDiffusionSafetyChecker"]
    for part, weights in [("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"),
                          ("text_encoder", "model"), ("safety_checker", "model")]:
        assert (sd / part / f"{weights}.safetensors").is_file()
        assert (sd / part / f"{weights}.fp16.safetensors").is_file()  # SD 1.5's fp16 variant


@pytest.mark.slow
def test_load_pipeline_resolves_the_stand_in_offline_in_fp16(home):
    out = run_python("""
        import torch
        from diffusers import StableDiffusionPipeline
        from utils import load_pipeline

        asked = {}
        real = StableDiffusionPipeline.from_pretrained.__func__
        def spy(cls, source, **kwargs):
            asked.update(kwargs, source=source)
            return real(cls, source, **kwargs)
        StableDiffusionPipeline.from_pretrained = classmethod(spy)

        pipe = load_pipeline("sd15")
        print("variant", asked["variant"], "local_files_only", asked["local_files_only"])
        print("dtypes", {p.dtype for p in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.safety_checker)})
        print("checker", type(pipe.safety_checker).__name__, type(pipe.feature_extractor).__name__)
        out = pipe("a watercolor painting of an otter", num_inference_steps=2,
                   generator=torch.Generator().manual_seed(0))
        print("image", out.images[0].size, "flagged", out.nsfw_content_detected)
    """, HF_HOME=home, HF_HUB_OFFLINE=1, COURSE_DTYPE="float16")
    assert "Model track: a STAND-IN for stable-diffusion-v1-5/stable-diffusion-v1-5 with RANDOM" in out
    assert "variant fp16 local_files_only True" in out
    assert "dtypes {torch.float16}" in out
    assert "checker StableDiffusionSafetyChecker CLIPImageProcessor" in out
    assert "image (64, 64) flagged [False]" in out


@pytest.mark.slow
def test_the_other_hub_repos_load_offline_from_the_stand_ins(home):
    out = run_python("""
        from utils import load_pipeline
        from utils.hub import hub_folder, needs_hub

        pipe = load_pipeline("sd15")
        pipe.load_textual_inversion(hub_folder("sd-concepts-library/cat-toy"))
        print("tokens", pipe.tokenizer.tokenize("a <cat-toy> on a beach"))
        shared = {part: getattr(pipe, part) for part in ("vae", "safety_checker", "feature_extractor")}
        db = load_pipeline("sd-dreambooth-library/mr-potato-head", **shared)
        print("shared vae", db.vae is pipe.vae, "own unet", db.unet is not pipe.unet)
        print("photos", len(list(hub_folder("diffusers/dog-example").glob("*.jpeg"))),
              needs_hub("diffusers/cat_toy_example"))
    """, HF_HOME=home, HF_HUB_OFFLINE=1)
    assert "tokens ['a</w>', '<cat-toy>', 'on</w>', 'a</w>', 'beach</w>']" in out
    assert "STAND-IN for sd-dreambooth-library/mr-potato-head" in out
    assert "shared vae True own unet True" in out
    assert "photos 5 True" in out


@pytest.mark.slow
def test_without_the_hub_a_cell_skips_and_says_how_to_get_the_repo(tmp_path, home):
    folder = standin.snapshot_folder(home, standin.SD15)
    out = run_python(f"""
        from utils import load_pipeline
        from utils.hub import hub_folder, needs_hub

        print("folder", needs_hub({str(folder)!r}))
        print("concept", needs_hub("sd-concepts-library/cat-toy"))
        print("dataset", needs_hub("diffusers/dog-example"))
        try:
            hub_folder("diffusers/dog-example")
        except RuntimeError as err:
            print("error", err)
    """, HF_HOME=tmp_path, HF_HUB_OFFLINE=1)
    assert "folder True" in out and "concept False" in out and "dataset False" in out
    assert ("Skipped on this machine: sd-concepts-library/cat-toy (a textual-inversion concept"
            in out)
    assert "hf download diffusers/dog-example --repo-type dataset" in out
    assert "error diffusers/dog-example" in out


def test_the_build_is_reused_only_when_complete(tmp_path):
    stamp = standin.build("tiny", tmp_path) / "STAND-IN.json"
    made = stamp.stat().st_mtime_ns
    assert standin.build("tiny", tmp_path) == tmp_path and stamp.stat().st_mtime_ns == made
    stamp.write_text("{}")  # an older or unfinished build: written again
    standin.build("tiny", tmp_path)
    assert json.loads(stamp.read_text())["size"] == "tiny"


def test_full_size_configs_are_sd15s():
    from utils.sd15 import TEXT_ENCODER_CONFIG, UNET_CONFIG, VAE_CONFIG

    full, tiny = standin.configs("full"), standin.configs("tiny")
    assert (full["unet"], full["vae"], full["text_encoder"]) == (UNET_CONFIG, VAE_CONFIG,
                                                                 TEXT_ENCODER_CONFIG)
    # The tiny one keeps the structure: the same blocks, depth and vocabulary, small widths.
    for key in ("down_block_types", "up_block_types", "layers_per_block"):
        assert tiny["unet"][key] == full["unet"][key]
    assert tiny["text_encoder"]["vocab_size"] == 49408
    assert tiny["text_encoder"]["num_hidden_layers"] == full["text_encoder"]["num_hidden_layers"]
    with pytest.raises(ValueError, match="size='huge'"):
        standin.configs("huge")


@pytest.mark.slow
def test_pinned_revisions_are_recorded_and_the_stand_ins_follow_them(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import utils.hub as hub

    class FakeHub:  # answers as huggingface_hub.HfApi does: an info object with .sha
        def model_info(self, repo):
            return SimpleNamespace(sha=f"{abs(hash(repo)) % 10**12:040d}")

        dataset_info = model_info

    monkeypatch.setattr(hub, "REVISIONS", tmp_path / "hub_revisions.json")
    assert hub.revision("sd-concepts-library/cat-toy") is None  # nothing pinned: default branch
    pinned = hub.pin_revisions(FakeHub())
    assert set(pinned) == set(hub.HUB_REPOS)
    assert hub.revision("sd-concepts-library/cat-toy") == pinned["sd-concepts-library/cat-toy"]
    assert hub.revision("someone/not-listed") is None
    home = standin.build("tiny", tmp_path / "home")
    refs = standin.cache_folder(home, "sd-concepts-library/cat-toy") / "refs" / "main"
    assert refs.read_text() == pinned["sd-concepts-library/cat-toy"]
    moved = tmp_path / "moved.json"  # the Hub moved on: another commit is pinned now
    moved.write_text(json.dumps({**pinned, "sd-concepts-library/cat-toy": "f" * 40}))
    out = run_python(f"""
        from pathlib import Path
        import utils.hub as hub

        for revisions in ({str(hub.REVISIONS)!r}, {str(moved)!r}):
            hub.REVISIONS = Path(revisions)
            print(hub.cached_folder("sd-concepts-library/cat-toy"))
    """, HF_HOME=home, HF_HUB_OFFLINE=1)
    found, other = out.split()
    assert Path(found).name == pinned["sd-concepts-library/cat-toy"]  # loaded at the pinned commit
    assert other == "None"  # a commit not in the cache is not silently replaced by another
