"""The course's small shared package. Each module is one concept; import names explicitly."""
import logging


class _DropTorchvisionNotice(logging.Filter):
    # transformers notes, once per class, that without torchvision it uses its PIL image
    # processors. That is the intended set-up here (torchvision is not needed), so hide the notice.
    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_DropTorchvisionNotice())

from .data import load_mnist
from .device import describe_hardware, get_device, get_dtype, needs_gpu
from .plotting import show_images, to_pil
from .settings import SETTINGS
from .track import check_claim, choose_track, hub_reachable, load_pipeline

__all__ = ["SETTINGS", "load_mnist", "describe_hardware", "get_device", "get_dtype", "needs_gpu",
           "show_images", "to_pil", "check_claim", "choose_track",
           "hub_reachable", "load_pipeline"]
