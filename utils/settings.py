"""The one settings object every notebook reads (never scattered ``os.environ`` look-ups).

Environment variables:
    COURSE_SMOKE=1   tiny step and sample counts, so every code path runs in seconds (tests use it)
    COURSE_MODEL     which model track ``load_pipeline()`` uses: ``mini``, ``sd15``, a hub id or a path
    COURSE_STRICT_WARNINGS=1   turn library deprecation warnings into errors (the test suite sets it,
                     so API drift in diffusers, transformers or torch fails the day it appears)
"""
import os
import warnings
from dataclasses import dataclass

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _env_flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not understood: use 1 (on) or 0 (off).")


@dataclass(frozen=True)
class Settings:
    smoke: bool = False       # COURSE_SMOKE: run every path with tiny sizes
    model: str | None = None  # COURSE_MODEL: explicit model track, or None to choose automatically
    strict_warnings: bool = False  # COURSE_STRICT_WARNINGS: deprecations become errors

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(smoke=_env_flag("COURSE_SMOKE"), model=os.environ.get("COURSE_MODEL") or None,
                   strict_warnings=_env_flag("COURSE_STRICT_WARNINGS"))

    def pick(self, full, smoke):
        """Return ``smoke`` in smoke mode, else ``full``: ``steps = SETTINGS.pick(25, 2)``."""
        return smoke if self.smoke else full

    def __str__(self) -> str:
        mode = "smoke (tiny sizes, COURSE_SMOKE=1)" if self.smoke else "full"
        return f"mode: {mode}; model track: {self.model or 'automatic'}"


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
