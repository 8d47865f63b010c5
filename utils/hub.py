"""The Hugging Face Hub repositories the lessons read, and how a lesson gets one (or says why not).

    HUB_REPOS               every Hub repository a lesson uses: its kind and what it is
    revision(repo)          the commit a lesson loads it at (assets/hub_revisions.json)
    needs_hub(repo)         True when the repository can be had (a local folder, in the cache, or the
                            Hub answers); otherwise print why the cell is skipped, like ``needs_gpu``
    hub_folder(repo)        the local folder holding a repository: the cache first, then a download
    download_command(repo)  the `hf download` command for just the files a lesson loads
    hub_problem(error)      what went wrong with the Hub (rate limit, no answer), or None
    pin_revisions()         ask the Hub for each repository's current commit and record it

A repository in the local cache loads with no network at all, so a machine that downloaded it once
(or holds the stand-ins ``python course.py standin`` writes) runs every lesson offline.
"""
import importlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .device import SKIP_MARK

# Each repository's pinned commit, so that a change on the Hub cannot change a lesson: written by
# `python course.py pin-revisions` where the Hub is reachable. A repository not in it is read at
# its default branch. The stand-ins are written under the same commits.
REVISIONS = Path(__file__).resolve().parents[1] / "assets" / "hub_revisions.json"


@dataclass(frozen=True)
class HubRepo:
    kind: str  # "model" or "dataset", as huggingface_hub's repo_type
    what: str  # one line for a learner: what it is and which lesson reads it


SD15_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
HUB_REPOS = {
    SD15_ID: HubRepo(
        "model", "Stable Diffusion 1.5 (every lesson on the SD track)"),
    "sd-concepts-library/cat-toy": HubRepo(
        "model", "a textual-inversion concept, <cat-toy> (lesson 01)"),
    "sd-dreambooth-library/mr-potato-head": HubRepo(
        "model", "a Dreambooth fine-tune of SD 1.4 on a Mr Potato Head toy (lesson 01)"),
    "diffusers/cat_toy_example": HubRepo(
        "dataset", "photos of a cat toy to train textual inversion on (lesson 08)"),
    "diffusers/dog-example": HubRepo(
        "dataset", "photos of one dog to train Dreambooth on (lesson 08)"),
}


# The files a lesson loads, as `hf download --include` patterns, where that is much less than the
# whole repository: SD 1.5's configs, tokenizer and one copy of its weights (about 2.7 GB in fp16)
# rather than every checkpoint it holds (fp32, non-EMA, .ckpt and .bin: tens of GB).
INCLUDE = {
    ("stable-diffusion-v1-5/stable-diffusion-v1-5", "fp16"): (
        "*.json", "*.txt", "*.fp16.safetensors"),
    ("stable-diffusion-v1-5/stable-diffusion-v1-5", None): (
        "*.json", "*.txt", "*/model.safetensors", "*/diffusion_pytorch_model.safetensors"),
}
# A token is optional: it lifts the anonymous rate limit that shared addresses (Colab's) hit.
TOKEN_HOW = ("on Colab click the key icon (Secrets) and add HF_TOKEN; elsewhere run "
             "`hf auth login` or set HF_TOKEN")


# The values huggingface_hub reads as true (its constants.ENV_VARS_TRUE_VALUES), in any case.
_TRUE = {"1", "ON", "YES", "TRUE"}


def offline() -> bool:
    """True when HF_HUB_OFFLINE asks huggingface_hub never to reach the Hub, read as the library
    reads it: 1, true, yes or on, in any case (TRANSFORMERS_OFFLINE when HF_HUB_OFFLINE is unset)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE


def unreachable_why() -> str:
    """Why the Hub is not asked: HF_HUB_OFFLINE, or it did not answer (for a learner's message)."""
    return "HF_HUB_OFFLINE is set" if offline() else "the Hugging Face Hub is unreachable"


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face Hub answers within ``timeout`` seconds (one try, no retries)."""
    if offline():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        urllib.request.urlopen(f"{endpoint}/api/models/{SD15_ID}", timeout=timeout)
        return True
    except urllib.error.HTTPError as err:  # the Hub answered (e.g. 401 without a token): reachable
        return err.code < 500
    except (OSError, ValueError):
        return False


def _describe(repo: str) -> str:
    known = HUB_REPOS.get(repo)
    return f"{repo} ({known.what})" if known else repo


def _kind(repo: str) -> str:
    known = HUB_REPOS.get(repo)
    return known.kind if known else "model"


def revision(repo: str) -> str | None:
    """The commit ``repo`` is pinned at (None: its default branch, or a repository not listed)."""
    if repo not in HUB_REPOS or not REVISIONS.exists():
        return None
    return json.loads(REVISIONS.read_text()).get(repo)


def pin_revisions(api=None) -> dict[str, str]:
    """Ask the Hub for the current commit of every repository in ``HUB_REPOS`` and write them to
    ``assets/hub_revisions.json``; return them. ``api``: a ``huggingface_hub.HfApi`` (a default
    one if None)."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    pinned = {}
    for repo, known in HUB_REPOS.items():
        info = api.dataset_info(repo) if known.kind == "dataset" else api.model_info(repo)
        pinned[repo] = info.sha
    REVISIONS.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
    return pinned


def cached_folder(repo: str) -> Path | None:
    """The snapshot folder of ``repo`` in the local Hugging Face cache, or None if it is not there."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, repo_type=_kind(repo), revision=revision(repo),
                                      local_files_only=True))
    except Exception:  # not cached: huggingface_hub raises one of several errors for that
        return None


def needs_hub(repo: str) -> bool:
    """True when ``repo`` (a Hub id, or a local folder) can be used here; else print why not.

    Use it like ``needs_gpu``: ``if needs_hub("sd-concepts-library/cat-toy"):``. A local folder
    and a repository already in the cache need no network; anything else needs the Hub.
    """
    if not isinstance(repo, str) or not repo.strip():
        raise ValueError("needs_hub needs a repository id such as 'sd-concepts-library/cat-toy'.")
    if Path(repo).expanduser().exists() or cached_folder(repo) is not None:
        return True
    if hub_reachable():
        return True
    why = unreachable_why()
    print(f"{SKIP_MARK} {_describe(repo)} is not in the local cache and {why}. "
          f"{_directions(repo)}")
    return False


def hub_folder(repo: str) -> Path:
    """A local folder holding ``repo``: the folder itself if ``repo`` is a path, else its snapshot
    in the Hugging Face cache (downloaded first, at its pinned revision, if need be)."""
    from huggingface_hub import snapshot_download

    if Path(repo).expanduser().exists():
        return Path(repo).expanduser()
    folder = cached_folder(repo)
    if folder is not None:
        return folder
    if not hub_reachable():
        raise RuntimeError(f"{_describe(repo)} is not in the local cache and the Hugging Face Hub "
                           f"cannot be reached. {_directions(repo)}")
    try:
        return Path(snapshot_download(repo, repo_type=_kind(repo), revision=revision(repo)))
    except Exception as err:
        problem = hub_problem(err)
        if problem is None:
            raise
        raise RuntimeError(f"Cannot download {_describe(repo)}: {problem}. {what_to_do(repo)}"
                           ) from err


def download_command(repo: str, variant: str | None = "fp16") -> str:
    """The `hf download` command for the files a lesson loads from ``repo`` (its weights in
    ``variant``: "fp16", or None for the full-precision ones), at its pinned revision."""
    command = f"hf download {repo}"
    if _kind(repo) == "dataset":
        command += " --repo-type dataset"
    if revision(repo):
        command += f" --revision {revision(repo)}"
    # One --include per pattern: `--include "*.json" "*.txt"` would take "*.txt" for a file name.
    return command + "".join(f' --include "{p}"' for p in INCLUDE.get((repo, variant), ()))


def _directions(repo: str, variant: str | None = "fp16") -> str:
    return (f"Run this lesson where there is internet (Colab), or download it once with "
            f"`{download_command(repo, variant)}` where there is (a Hugging Face token is "
            f"optional and lifts the anonymous rate limit: {TOKEN_HOW}).")


def what_to_do(repo: str, variant: str | None = "fp16") -> str:
    """What a learner can do when the Hub refused or did not answer a download of ``repo``."""
    return ("What to do: wait a few minutes and run the cell again; add a Hugging Face token, "
            "which is optional and lifts the anonymous rate limit that shared addresses such as "
            f"Colab's hit ({TOKEN_HOW}); or download it once with "
            f"`{download_command(repo, variant)}`.")


def _no_answer_errors() -> tuple[type[BaseException], ...]:
    """Python's and the HTTP library's errors for a connection that failed or timed out:
    huggingface_hub 2 uses httpx2, 1.x uses httpx (its TransportError covers both kinds)."""
    errors = [TimeoutError, ConnectionError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def hub_problem(error: BaseException) -> str | None:
    """What went wrong with the Hub behind ``error`` (or the errors it was raised from): a rate
    limit, an error on the Hub's side, or no answer in time; None when it is none of these (a
    missing repository, a broken file: those errors say what they are themselves)."""
    from huggingface_hub.errors import HfHubHTTPError

    no_answer, seen = _no_answer_errors(), set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status == 429:
            return "the Hugging Face Hub is rate limiting this address (HTTP 429 Too Many Requests)"
        if isinstance(error, HfHubHTTPError) and status is not None and status >= 500:
            return f"the Hugging Face Hub is unavailable (HTTP {status})"
        if isinstance(error, no_answer):
            return (f"the Hugging Face Hub did not answer in time or could not be reached "
                    f"({type(error).__name__})")
        error = error.__cause__ or error.__context__
    return None
