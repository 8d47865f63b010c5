"""The Hugging Face Hub repositories the lessons read, and how a lesson gets one (or says why not).

    HUB_REPOS               every Hub repository a lesson uses: its kind and what it is
    revision(repo)          the commit a lesson loads it at (assets/hub_revisions.json)
    needs_hub(repo)         True when the repository can be had (a local folder, in the cache, or the
                            Hub answers); otherwise print why the cell is skipped, like ``needs_gpu``
    hub_folder(repo)        the local folder holding a repository: the cache first, then a download
    pin_revisions()         ask the Hub for each repository's current commit and record it

A repository in the local cache loads with no network at all, so a machine that downloaded it once
(or holds the stand-ins ``python course.py standin`` writes) runs every lesson offline.
"""
import json
import os
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


HUB_REPOS = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": HubRepo(
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


def offline() -> bool:
    """True when HF_HUB_OFFLINE asks huggingface_hub never to reach the Hub."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


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
    from .track import hub_reachable

    if hub_reachable():
        return True
    why = "HF_HUB_OFFLINE is set" if offline() else "the Hugging Face Hub is unreachable"
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
    from .track import hub_reachable

    if not hub_reachable():
        raise RuntimeError(f"{_describe(repo)} is not in the local cache and the Hugging Face Hub "
                           f"cannot be reached. {_directions(repo)}")
    return Path(snapshot_download(repo, repo_type=_kind(repo), revision=revision(repo)))


def _directions(repo: str) -> str:
    dataset = " --repo-type dataset" if _kind(repo) == "dataset" else ""
    return (f"Run this lesson where there is internet (Colab), or download it once with "
            f"`hf download {repo}{dataset}` where there is.")
