"""The Hugging Face Hub repositories the lessons read, and how a lesson gets one (or says why not).

    HUB_REPOS               every Hub repository a lesson uses: its kind, pinned revision, what it is
    needs_hub(repo, what)   True when the repository can be had (a local folder, in the cache, or the
                            Hub answers); otherwise print why the cell is skipped, like ``needs_gpu``
    hub_folder(repo)        the local folder holding a repository: the cache first, then a download

A repository in the local cache loads with no network at all, so a machine that downloaded it once
(or holds the stand-ins ``python course.py standin`` writes) runs every lesson offline.
"""
import os
from dataclasses import dataclass
from pathlib import Path

from .device import SKIP_MARK


@dataclass(frozen=True)
class HubRepo:
    kind: str             # "model" or "dataset", as huggingface_hub's repo_type
    what: str             # one line for a learner: what it is and which lesson reads it
    revision: str | None  # a commit to load; None: the repository's default branch


# The revision is where a repository is pinned: set it to a commit hash (`hf api`, or the commit
# list on the repository's page) so that a change on the Hub cannot change a lesson. None reads
# the default branch; the stand-ins are written under the same revision.
HUB_REPOS = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": HubRepo(
        "model", "Stable Diffusion 1.5 (every lesson on the SD track)", None),
    "sd-concepts-library/cat-toy": HubRepo(
        "model", "a textual-inversion concept, <cat-toy> (lesson 01)", None),
    "sd-dreambooth-library/mr-potato-head": HubRepo(
        "model", "a Dreambooth fine-tune of SD 1.4 on a Mr Potato Head toy (lesson 01)", None),
    "diffusers/cat_toy_example": HubRepo(
        "dataset", "photos of a cat toy to train textual inversion on (lesson 08)", None),
    "diffusers/dog-example": HubRepo(
        "dataset", "photos of one dog to train Dreambooth on (lesson 08)", None),
}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _describe(repo: str) -> str:
    known = HUB_REPOS.get(repo)
    return f"{repo} ({known.what})" if known else repo


def _kind(repo: str) -> str:
    known = HUB_REPOS.get(repo)
    return known.kind if known else "model"


def revision(repo: str) -> str | None:
    """The pinned revision of ``repo`` (None: its default branch, or a repository not listed)."""
    known = HUB_REPOS.get(repo)
    return known.revision if known else None


def cached_folder(repo: str) -> Path | None:
    """The snapshot folder of ``repo`` in the local Hugging Face cache, or None if it is not there."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, repo_type=_kind(repo), revision=revision(repo),
                                      local_files_only=True))
    except Exception:  # not cached: huggingface_hub raises one of several errors for that
        return None


def needs_hub(repo: str, what: str | None = None) -> bool:
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
    why = "HF_HUB_OFFLINE is set" if _offline() else "the Hugging Face Hub is unreachable"
    print(f"{SKIP_MARK} {what or _describe(repo)} is not in the local cache and {why}. "
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
