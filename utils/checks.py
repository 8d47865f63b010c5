"""Checks at the learner's boundary: the arguments of what a notebook calls, and the files a broken
download or copy leaves behind. Each error names the argument or file, what it got and what to do.
Functions that only other course code calls do not check their arguments."""
import json
import math
import numbers
from pathlib import Path


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


def check_int(name: str, value, minimum: int | None = 1) -> int:
    """``value`` as an int; a TypeError for non-integers (bools too), a ValueError below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_shown(value)} ({type(value).__name__}).")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}.")
    return int(value)


def check_number(name: str, value, low: float | None = None, high: float | None = None,
                 strict: bool = False) -> float:
    """``value`` as a float in ``[low, high]`` (``(low, high)`` with ``strict``); None: no bound."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise TypeError(f"{name} must be a number, got {_shown(value)} ({type(value).__name__}).")
    too_low = low is not None and (value <= low if strict else value < low)
    too_high = high is not None and (value >= high if strict else value > high)
    if too_low or too_high:
        left, right = ("(", ")") if strict else ("[", "]")
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be in {span}, got {value}.")
    return float(value)


def check_choice(name: str, value, choices):
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    try:
        known = not isinstance(value, bool) and value in choices
    except TypeError:  # an unhashable value asked of a dict
        known = False
    if not known:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}.")
    return value


def check_callable(name: str, value, example: str):
    if not callable(value):
        raise TypeError(f"{name} must be callable, like {example}; got {_shown(value)}.")
    return value


def check_path(name: str, value) -> Path:
    """``value`` as a Path; a TypeError for anything that is not a str or os.PathLike."""
    try:
        return Path(value)
    except TypeError:
        raise TypeError(f"{name} must be a folder or file path (str or Path), "
                        f"got {_shown(value)}.") from None


def check_json_file(file: Path, rebuild: str) -> dict:
    """The JSON in ``file``; a FileNotFoundError or OSError that says how to rebuild it."""
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing. {rebuild}")
    try:
        return json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise OSError(f"{file} is corrupt ({err}). {rebuild}") from None


def check_safetensors(file: Path, rebuild: str) -> Path:
    """``file`` if it is a complete safetensors file; otherwise say what is wrong and how to rebuild."""
    from safetensors import safe_open

    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing. {rebuild}")
    try:
        with safe_open(str(file), "pt"):
            pass
    except Exception as err:  # safetensors raises its own SafetensorError for a bad header or length
        raise OSError(f"{file} is truncated or corrupt ({err}). {rebuild}") from None
    return file
