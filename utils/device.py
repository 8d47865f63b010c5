"""Which device and dtype to compute on, and one line that describes the hardware."""
import os
import platform

import torch


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
    """float16 on a GPU (half the memory, tensor cores), float32 on the CPU (fp16 is slow there)."""
    device = _as_device(device)
    return torch.float16 if device.type in ("cuda", "mps") else torch.float32


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

    Use it to guard a cell that cannot run on a CPU: ``if needs_gpu("SD 1.5 in fp16 needs ~4 GB"):``.
    The test harness lists every such skip, so nothing is skipped silently.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("needs_gpu needs a reason: say what the cell does and what it needs.")
    if torch.cuda.is_available():
        return True
    print(f"Skipped on this machine: {reason.strip()} (needs a CUDA GPU; none found).")
    return False
