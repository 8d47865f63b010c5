"""The one settings object every notebook reads (never scattered ``os.environ`` look-ups).

Environment variables:
    COURSE_SMOKE=1   tiny step and sample counts, so every code path runs in seconds (tests use it)
    COURSE_MODEL     which model track ``load_pipeline()`` uses: ``mini``, ``sd15``, a hub id or a path
    COURSE_STRICT_WARNINGS=1   turn library deprecation warnings into errors (the test suite sets it,
                     so API drift in diffusers, transformers or torch fails the day it appears)
    COURSE_DTYPE     the dtype pipelines load in on every device: ``float16``, ``bfloat16`` or
                     ``float32`` (default: float16 on a GPU, float32 on the CPU). ``float16`` on a CPU
                     is slow but raises a GPU's dtype errors, so the test suite runs every lesson so.
    COURSE_GPU_CELLS=1   run the cells guarded by ``needs_gpu`` on this device even without a CUDA
                     GPU (only sensible with a tiny stand-in model; the test suite does it)
    COURSE_SD_TRAIN_STEPS   cap every training run on the SD 1.5 track at this many steps (the GPU
                     check sets it to fit in minutes; MiniSD's runs are never capped)
    COURSE_OUTPUT_DIR   the folder training runs are saved in (lesson 08). Unset: the course's
                     folder in Google Drive (MyDrive/diffusion-course/outputs) when Drive is mounted
                     on Colab, else build/outputs/ in the course folder. Read at each use
                     (``utils.finetune.output_root``), so setting it in a running notebook counts.
"""
import os
import warnings
from dataclasses import dataclass

_TRUE = {"1", "true", "yes", "on"}
DTYPES = {"float16": "float16", "fp16": "float16", "half": "float16", "bfloat16": "bfloat16",
          "bf16": "bfloat16", "float32": "float32", "fp32": "float32", "float": "float32"}
_FALSE = {"", "0", "false", "no", "off"}


def _env_flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not understood: use 1 (on) or 0 (off).")


def _env_dtype(name: str) -> str | None:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return None
    if raw not in DTYPES:
        raise ValueError(f"{name}={raw!r} is not understood: use float16, bfloat16 or float32 "
                         "(or leave it unset: float16 on a GPU, float32 on the CPU).")
    return DTYPES[raw]


def _env_count(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name}={raw!r} is not understood: use a whole number of steps >= 1, "
                         "or leave it unset for no cap.")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    smoke: bool = False       # COURSE_SMOKE: run every path with tiny sizes
    model: str | None = None  # COURSE_MODEL: explicit model track, or None to choose automatically
    strict_warnings: bool = False  # COURSE_STRICT_WARNINGS: deprecations become errors
    dtype: str | None = None  # COURSE_DTYPE: "float16", "bfloat16", "float32" or None (by device)
    gpu_cells: bool = False   # COURSE_GPU_CELLS: run needs_gpu cells without a CUDA GPU
    sd_train_steps: int | None = None  # COURSE_SD_TRAIN_STEPS: cap on SD-track training runs
    output_dir: str | None = None  # COURSE_OUTPUT_DIR: where runs go (finetune.output_root reads
                                   # it afresh at each call: use that, not this import-time copy)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(smoke=_env_flag("COURSE_SMOKE"), model=os.environ.get("COURSE_MODEL") or None,
                   strict_warnings=_env_flag("COURSE_STRICT_WARNINGS"),
                   dtype=_env_dtype("COURSE_DTYPE"), gpu_cells=_env_flag("COURSE_GPU_CELLS"),
                   sd_train_steps=_env_count("COURSE_SD_TRAIN_STEPS"),
                   output_dir=os.environ.get("COURSE_OUTPUT_DIR", "").strip() or None)

    def pick(self, full, smoke):
        """Return ``smoke`` in smoke mode, else ``full``: ``steps = SETTINGS.pick(25, 2)``."""
        return smoke if self.smoke else full

    def __str__(self) -> str:
        mode = "smoke (tiny sizes, COURSE_SMOKE=1)" if self.smoke else "full"
        line = f"mode: {mode}; model track: {self.model or 'automatic'}"
        if self.dtype:
            line += f"; dtype: {self.dtype} (COURSE_DTYPE)"
        if self.gpu_cells:
            line += "; GPU cells run here (COURSE_GPU_CELLS=1)"
        if self.sd_train_steps:
            line += f"; SD training capped at {self.sd_train_steps} steps"
        return line


# Deprecations from these libraries, or from notebook code (`__main__`) calling them, are errors.
STRICT_MODULES = r"(__main__|diffusers|transformers|torch|accelerate|huggingface_hub)(\.|$)"
NUMPY_COPY_NOTICE = r"__array__ implementation doesn't accept a copy keyword"


def install_strict_warnings() -> None:
    """Make every FutureWarning, and DeprecationWarnings from the libraries we teach, raise."""
    warnings.filterwarnings("error", category=FutureWarning)
    warnings.filterwarnings("error", category=DeprecationWarning, module=STRICT_MODULES)
    # numpy 2 asks torch's Tensor.__array__ for a `copy` argument it lacks yet; diffusers' schedulers
    # trigger it in set_timesteps. Nothing in a lesson can change that, so it alone is let through.
    warnings.filterwarnings("ignore", message=NUMPY_COPY_NOTICE, category=DeprecationWarning)


SETTINGS = Settings.from_env()
if SETTINGS.strict_warnings:
    install_strict_warnings()
