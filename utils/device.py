"""Which device and dtype to compute on, one line that describes the hardware, and memory peaks."""
import math
import os
import platform

import torch

from .settings import SETTINGS

SKIP_MARK = "Skipped on this machine:"  # what a skipped cell prints; the test harness lists them


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU.

    Args:
        prefer: force ``"cuda"``, ``"mps"`` or ``"cpu"`` (None: choose automatically).
    """
    if prefer is not None:
        if not isinstance(prefer, str) or prefer not in ("cuda", "mps", "cpu"):
            raise ValueError(f"prefer={prefer!r} is not one of 'cuda', 'mps', 'cpu' (or None).")
        if prefer == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("prefer='cuda' but no CUDA GPU is visible to PyTorch. On Colab choose "
                               "Runtime > Change runtime type > GPU; elsewhere use prefer=None.")
        if prefer == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError("prefer='mps' but Apple MPS is not available (it needs an Apple-silicon "
                               "Mac and a macOS build of PyTorch); use prefer=None.")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _as_device(device) -> torch.device:
    """``device`` as a torch.device, or an error naming it (None: ``get_device()``)."""
    if device is None:
        return get_device()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device={device!r} is not a device: use 'cpu', 'cuda', 'cuda:0', 'mps', "
                         "a torch.device or None.") from None


def get_dtype(device: torch.device | str | None = None) -> torch.dtype:
    """float16 on a GPU (half the memory, tensor cores), float32 on the CPU (fp16 is slow there).

    ``COURSE_DTYPE`` (``SETTINGS.dtype``) overrides both: the test suite loads pipelines in float16
    on the CPU, which is slow but fails on exactly the dtype mistakes a GPU fails on.
    """
    device = _as_device(device)
    if SETTINGS.dtype:
        return getattr(torch, SETTINGS.dtype)
    return torch.float16 if device.type in ("cuda", "mps") else torch.float32


# Absolute tolerances for comparing two computations of the same numbers of order 1 (an equality
# with the library, a formula against a function): a few steps of the dtype's rounding.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 8e-2}


def tolerance(dtype: torch.dtype) -> float:
    """How close two results in ``dtype`` must be to count as equal: 1e-4 in float32, 1e-2 in
    float16 (10 bits of mantissa), 8e-2 in bfloat16 (7 bits). Use as ``atol=tolerance(x.dtype)``."""
    if dtype not in TOLERANCE:
        raise ValueError(f"dtype={dtype!r} has no tolerance: use one of "
                         f"{', '.join(str(d) for d in TOLERANCE)}.")
    return TOLERANCE[dtype]


def describe_hardware(device: torch.device | str | None = None) -> str:
    """One line: device, its memory, CPU cores and library versions."""
    device = _as_device(device)
    cores = os.cpu_count() or 1
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        what = f"CUDA GPU {props.name}, {props.total_memory / 2**30:.1f} GiB"
    elif device.type == "mps":
        what = f"Apple MPS GPU ({platform.machine()})"
    else:
        what = f"CPU only ({platform.machine()}, {torch.get_num_threads()} threads)"
    return f"{what}; {cores} CPU cores; torch {torch.__version__}"


def needs_gpu(reason: str) -> bool:
    """True on a CUDA GPU; otherwise print why the cell is skipped and return False.

    Use it to guard a cell that needs CUDA itself (CUDA's memory counters, training in fp16 with
    accelerate): ``if needs_gpu("SD 1.5 in fp16 needs ~4 GB"):``. An Apple GPU (MPS) runs the
    lessons' pipelines but not these cells, and the skip says so. The test harness lists every
    such skip, so nothing is skipped silently. With ``COURSE_GPU_CELLS=1`` the cell runs on this
    device anyway (the tests do, on a tiny stand-in).
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("needs_gpu needs a reason: say what the cell does and what it needs.")
    if torch.cuda.is_available():
        return True
    if SETTINGS.gpu_cells:
        print(f"Running without a CUDA GPU (COURSE_GPU_CELLS=1): {reason.strip()}.")
        return True
    if torch.backends.mps.is_available():
        why = "needs a CUDA GPU: this Mac's Apple GPU (MPS) is not supported by this cell"
    else:
        why = "needs a CUDA GPU; none found"
    print(f"{SKIP_MARK} {reason.strip()} ({why}).")
    return False


# diffusers' guide to Apple silicon: attention slicing is "recommended if your computer has
# < 64 GB of RAM" (the GPU shares it; a Mac under memory pressure swaps and slows to a crawl).
MPS_SLICING_BELOW_GIB = 64


def physical_memory_gib() -> float | None:
    """This machine's physical memory in GiB (on Apple silicon the GPU shares it), or None where
    the operating system does not say (``os.sysconf`` is missing on Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):
        return None


def attention_slicing_advice(device: torch.device | str | None,
                             memory_gib: float | None = None) -> str | None:
    """Why Stable Diffusion should compute attention in slices on ``device``, or None if it need
    not: on Apple MPS with less than 64 GiB of memory, as diffusers' guide advises.

    Args:
        device: where the pipeline runs (None: ``get_device()``).
        memory_gib: the memory to decide for (None: this machine's, ``physical_memory_gib()``).
    """
    device = _as_device(device)
    if device.type != "mps":
        return None
    memory = physical_memory_gib() if memory_gib is None else memory_gib
    if memory is None:
        return "Apple MPS with an unknown amount of memory"
    if memory >= MPS_SLICING_BELOW_GIB:
        return None
    return f"Apple MPS with {memory:.0f} GiB of memory, under {MPS_SLICING_BELOW_GIB} GiB"


def reset_peak_memory(device: torch.device | str | None = None) -> None:
    """Start a new peak for ``peak_memory_gb`` (CUDA keeps one; elsewhere nothing to do)."""
    device = _as_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device: torch.device | str | None = None) -> float:
    """The most memory PyTorch's tensors held on ``device`` since ``reset_peak_memory``, in GB
    (1e9 bytes); NaN on a device that keeps no such count (the CPU, Apple MPS)."""
    device = _as_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 1e9
    return math.nan
