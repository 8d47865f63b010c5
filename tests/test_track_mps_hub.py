"""The model track on an Apple GPU, offline with SD 1.5 in the cache, and with a slow or
rate-limited Hub.

No Mac and no Hub here: the device choice is replaced by a function that says "mps" or "cuda"
(the pipeline itself stays on the CPU), and ``from_pretrained`` by one that raises what
huggingface_hub raises for a rate limit or a timeout, built with the library's own code.
"""
import importlib
import shutil

import pytest
import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import SlicedAttnProcessor
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import filter_repo_objects, hf_raise_for_status

import utils.device as device_module
import utils.track as track
from tests.test_standin import run_python
from tools import standin
from utils import hub
from utils.settings import Settings

SD15 = track.SD15_ID
URL = f"https://huggingface.co/api/models/{SD15}"
# The HTTP library huggingface_hub raises from (httpx2 in huggingface_hub 2, httpx in 1.x).
http = importlib.import_module(HfHubHTTPError.__mro__[1].__module__.partition(".")[0])


@pytest.fixture(scope="module")
def home():
    return standin.build("tiny")  # seconds, and reused while up to date


def sliced(pipe) -> bool:
    return all(isinstance(m.processor, SlicedAttnProcessor) for m in pipe.unet.modules()
               if hasattr(m, "processor") and hasattr(m, "heads"))


# --- Apple MPS -------------------------------------------------------------------------------

def test_sd_on_apple_mps_slices_attention_and_says_so(home, monkeypatch, capsys):
    monkeypatch.setattr(track, "SETTINGS", Settings())
    folder = str(standin.snapshot_folder(home, standin.SD15))  # a local SD folder: the sd track
    asked = []

    def on_a_mac(memory_gib):  # the real decision, for a Mac with this much memory
        def advice(device):
            asked.append(device)
            return device_module.attention_slicing_advice("mps", memory_gib=memory_gib)
        return advice

    monkeypatch.setattr(track, "attention_slicing_advice", on_a_mac(16))
    pipe = track.load_pipeline(folder, device="cpu")
    assert asked == [torch.device("cpu")]  # the decision is asked about the pipeline's device
    assert sliced(pipe)
    assert "; attention slicing on: Apple MPS with 16 GiB of memory, under 64 GiB, as diffusers " \
           "advises)." in capsys.readouterr().out
    monkeypatch.setattr(track, "attention_slicing_advice", on_a_mac(64))
    pipe = track.load_pipeline(folder, device="cpu")
    assert not sliced(pipe) and "slicing" not in capsys.readouterr().out
    monkeypatch.setattr(track, "attention_slicing_advice", on_a_mac(16))
    assert not sliced(track.load_pipeline("mini", device="cpu", verbose=False))  # MiniSD is small


# --- a GPU with the Hub offline: SD 1.5 from the local cache ----------------------------------

@pytest.mark.slow
def test_a_gpu_offline_gets_sd15_from_the_cache_and_minisd_without_it(home, tmp_path):
    code = """
        import torch
        import utils.track as track

        for kind in ("cuda", "mps"):
            track.get_device = lambda: torch.device(kind)
            print(track.choose_track())
        track.get_device = lambda: torch.device("cuda")
        pipe = track.load_pipeline(device="cpu")  # the automatic track; kept on the CPU here
        print("track", pipe.course_track)
    """
    out = run_python(code, HF_HOME=home, HF_HUB_OFFLINE="on", COURSE_DTYPE="float16")
    assert f"('sd', '{SD15}', 'cuda GPU found and SD 1.5 is in the local cache')" in out
    assert f"('sd', '{SD15}', 'mps GPU found and SD 1.5 is in the local cache')" in out
    assert (f"Model track: a STAND-IN for {SD15} with RANDOM weights (not the model: its images "
            "are noise) on cpu, float16 (cuda GPU found and SD 1.5 is in the local cache)") in out
    assert "track sd" in out
    out = run_python(code, HF_HOME=tmp_path, HF_HUB_OFFLINE="1", COURSE_DTYPE="float16")
    assert ("'cuda GPU found but HF_HUB_OFFLINE is set and SD 1.5 is not in the local cache')"
            in out)
    assert "track mini" in out


# --- a rate-limited or slow Hub -----------------------------------------------------------------

def rate_limited():
    """The error huggingface_hub raises for a 429 answer, wrapped as diffusers wraps it when the
    Hub refuses the model's file list."""
    response = http.Response(429, request=http.Request("GET", URL))
    try:
        hf_raise_for_status(response)
    except HfHubHTTPError as refused:
        try:
            raise OSError(f"Cannot load model {SD15}: the model is not fully cached locally") \
                from refused
        except OSError as err:
            return err


def not_found():
    response = http.Response(404, request=http.Request("GET", URL))
    try:
        hf_raise_for_status(response)
    except HfHubHTTPError as err:
        return err


def pipeline_class_failing_with(error):
    """A pipeline class whose SD 1.5 is not cached and whose download fails with ``error``;
    MiniSD loads as usual."""
    class Failing(StableDiffusionPipeline):
        @classmethod
        def from_pretrained(cls, source, **kwargs):
            if source != SD15:
                return StableDiffusionPipeline.from_pretrained.__func__(cls, source, **kwargs)
            if kwargs.get("local_files_only"):
                raise OSError("not in the local cache")
            raise error
    return Failing


@pytest.fixture
def reachable_hub(monkeypatch):
    monkeypatch.setattr(track, "SETTINGS", Settings())
    monkeypatch.setattr(track, "hub_reachable", lambda: True)
    monkeypatch.setattr(track, "cached_folder", lambda repo: None)


@pytest.mark.parametrize("error, problem", [
    (rate_limited(), r"rate limiting this address \(HTTP 429 Too Many Requests\)"),
    (http.ReadTimeout("The read operation timed out"),
     r"did not answer in time or could not be reached \(ReadTimeout\)"),
])
def test_a_refused_or_slow_download_says_what_happened_and_what_to_do(error, problem,
                                                                      reachable_hub):
    with pytest.raises(RuntimeError, match=problem) as raised:
        track.load_pipeline("sd15", pipeline_class_failing_with(error), device="cpu",
                            dtype=torch.float16, verbose=False)
    message = str(raised.value)
    for advice in ("run the cell again", "optional", "key icon (Secrets) and add HF_TOKEN",
                   f'`hf download {SD15} --include "*.json" --include "*.txt" --include '
                   '"*.fp16.safetensors"`', "model='mini'"):
        assert advice in message
    assert raised.value.__cause__ is error  # the library's error stays in the traceback


def test_the_automatic_track_falls_back_to_minisd_and_says_why(reachable_hub, monkeypatch,
                                                               capsys):
    monkeypatch.setattr(track, "get_device", lambda: torch.device("cuda"))
    pipe = track.load_pipeline(None, pipeline_class_failing_with(rate_limited()), device="cpu")
    assert pipe.course_track == "mini"
    line = capsys.readouterr().out
    assert line.startswith("Model track: MiniSD") and line.count("\n") == 1
    assert ("(cuda GPU found, but SD 1.5 could not be loaded: the Hugging Face Hub is rate "
            "limiting this address (HTTP 429 Too Many Requests) (run the cell again later, or add "
            "an HF_TOKEN); so MiniSD instead, and model='sd15' shows the whole message).") in line


def test_other_hub_errors_are_not_disguised(reachable_hub, monkeypatch):
    monkeypatch.setattr(track, "get_device", lambda: torch.device("cuda"))
    missing = not_found()  # a wrong id or a gated repository: the library's message says so
    for model in ("sd15", None):
        with pytest.raises(type(missing)) as raised:
            track.load_pipeline(model, pipeline_class_failing_with(missing), device="cpu",
                                dtype=torch.float16, verbose=False)
        assert raised.value is missing
    assert hub.hub_problem(ValueError("a broken config")) is None


# --- HF_HUB_OFFLINE, read as huggingface_hub reads it ------------------------------------------

@pytest.mark.parametrize("value", ["1", "true", "TRUE", "True", "yes", "YES", "on", "ON", "On",
                                   "0", "false", "no", "off", "", "2", "y", " 1", "enabled"])
def test_hf_hub_offline_accepts_what_huggingface_hub_accepts(value, monkeypatch):
    from huggingface_hub.constants import _is_true

    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub.offline() is _is_true(value)
    if hub.offline():
        assert track.hub_reachable() is False


def test_transformers_offline_counts_when_hf_hub_offline_is_unset(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "on")
    assert hub.offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # set, so huggingface_hub reads only it
    assert not hub.offline()


# --- the download command: just the files a lesson loads ---------------------------------------

# Files the real SD 1.5 repository holds besides those the stand-in writes: checkpoints a lesson
# never loads (single-file, non-EMA, PyTorch pickles), tens of GB together.
NEVER_LOADED = ["v1-5-pruned.ckpt", "v1-5-pruned.safetensors", "v1-5-pruned-emaonly.ckpt",
                "v1-5-pruned-emaonly.safetensors", "v1-inference.yaml",
                "unet/diffusion_pytorch_model.non_ema.safetensors",
                "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.bin",
                "safety_checker/pytorch_model.bin", "text_encoder/pytorch_model.fp16.bin"]


def test_the_download_command_parses_as_the_hf_cli_reads_it(monkeypatch):
    """One --include per pattern: with `--include "*.json" "*.txt"` the CLI takes "*.txt" for a
    file name and ignores --include."""
    import shlex

    cli_download = pytest.importorskip("huggingface_hub.cli.download")
    from huggingface_hub.cli.hf import app

    asked = {}
    monkeypatch.setattr(cli_download, "snapshot_download", lambda **kw: asked.update(kw) or "/")
    for variant in ("fp16", None):
        app.main(shlex.split(hub.download_command(SD15, variant))[1:], standalone_mode=False)
        assert asked["repo_id"] == SD15
        assert asked["allow_patterns"] == list(hub.INCLUDE[SD15, variant])


@pytest.mark.slow
@pytest.mark.parametrize("variant, dtype, weights", [
    ("fp16", "float16", ".fp16.safetensors"), (None, "float32", ".safetensors")])
def test_the_download_patterns_fetch_what_loading_needs_and_no_more(variant, dtype, weights,
                                                                     home, tmp_path):
    snapshot = standin.snapshot_folder(home, standin.SD15)
    files = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
    patterns = list(hub.INCLUDE[SD15, variant])
    # filter_repo_objects is what `hf download --include` applies (fnmatch on the whole path).
    chosen = set(filter_repo_objects(files + NEVER_LOADED, allow_patterns=patterns))
    parts = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model",
             "text_encoder": "model", "safety_checker": "model"}
    assert {f for f in chosen if f.endswith(".safetensors")} == {  # one copy of each part's weights
        f"{part}/{stem}{weights}" for part, stem in parts.items()}
    assert {f for f in files if f.endswith((".json", ".txt"))} <= chosen  # configs, tokenizer
    assert not chosen & set(NEVER_LOADED)
    # And loading needs nothing else: a cache holding only these files loads offline.
    copy = standin.snapshot(tmp_path, SD15, "model")
    assert copy.name == snapshot.name  # the same commit
    for file in chosen & set(files):
        (copy / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(snapshot / file, copy / file)
    out = run_python("""
        from utils import load_pipeline

        pipe = load_pipeline("sd15")
        print("dtype", pipe.unet.dtype)
    """, HF_HOME=tmp_path, HF_HUB_OFFLINE=1, COURSE_DTYPE=dtype)
    assert f"Model track: a STAND-IN for {SD15}" in out and f"dtype torch.{dtype}" in out


@pytest.mark.slow
def test_offline_directions_give_the_command_for_just_those_files(tmp_path):
    out = run_python(f"""
        from utils.hub import needs_hub

        needs_hub({SD15!r})
    """, HF_HOME=tmp_path, HF_HUB_OFFLINE=1)
    assert (f"is not in the local cache and HF_HUB_OFFLINE is set. Run this lesson where there is "
            f'internet (Colab), or download it once with `hf download {SD15} --include "*.json" '
            '--include "*.txt" --include "*.fp16.safetensors"` where there is (a Hugging Face '
            "token is optional") in out
