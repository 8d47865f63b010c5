"""What a saved result records about how it was made: the command and the software it ran on.

Every trained artefact (the MNIST denoiser, MiniSD, its concepts, the classifier) and every
benchmark report writes these two, so a reader can run the same command on the same versions.
"""
import platform
import sys


def command_line(prog: str, argv: list[str] | None = None) -> str:
    """``prog`` followed by the arguments it was given (``sys.argv[1:]`` when ``argv`` is None)."""
    return " ".join([prog, *(sys.argv[1:] if argv is None else argv)])


def versions() -> dict:
    """Python and the libraries that decide the numbers, with the machine's platform and threads."""
    import numpy
    import torch

    found = {"python": platform.python_version(), "torch": torch.__version__,
             "numpy": numpy.__version__}
    for name in ("diffusers", "transformers", "accelerate"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            pass
    return found | {"platform": platform.platform(), "torch_threads": torch.get_num_threads()}
