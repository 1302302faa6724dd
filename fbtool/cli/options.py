"""Option value types for argparse: a bad value is one usage line, never a traceback later."""
from __future__ import annotations

import argparse
import math


def _int(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
    return value


def positive_int(text: str) -> int:
    return _int(text, 1, "a whole number of at least 1")


def count(text: str) -> int:
    return _int(text, 0, "a whole number of at least 0")


def tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, not {text!r}")
    return value


def names(text: str) -> set[str]:
    """A comma-separated list of names; empty entries dropped."""
    return {n.strip() for n in text.split(",") if n.strip()}


def shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME=1,16000``: the shape to feed an input with dynamic dimensions."""
    name, sep, dims = text.rpartition("=")
    try:
        values = tuple(int(d) for d in dims.split(",")) if dims.strip() else ()
    except ValueError:
        values = None
    if not sep or not name or values is None or any(d < 0 for d in values):
        raise argparse.ArgumentTypeError(f"must be NAME=DIM,DIM,... with whole numbers (e.g. audio=1,16000), "
                                         f"not {text!r}")
    return name, values
