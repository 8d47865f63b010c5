"""Where the course keeps its lessons, and the curriculum that numbers them (standard library only,
so the command line can read it before anything is installed)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"

# The curriculum, in order: lesson NN is notebooks/NN_<name>.ipynb. Lessons may land out of order,
# but a number always means the same lesson, and no number is used twice.
CURRICULUM = ["setup_and_gpus", "pipelines", "clip", "vae", "unet", "schedulers",
              "score_matching_mnist", "samplers_as_optimizers", "textual_inversion_dreambooth"]


def notebook_paths() -> list[Path]:
    """The lessons, in order of their numbers."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
