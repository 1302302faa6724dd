"""Custom ops the stock runtimes run, and the custom options that are not FlexBuffers.

The knowledge is ``fbtool/data/custom_ops.json`` (schema ``schemas/custom_ops.schema.json``):
which custom codes LiteRT's default op resolver registers (they run everywhere), which its default
XNNPACK delegate takes (MediaPipe's Convolution2DTransposeBias: they run with default settings
only), and the raw C structs some ops carry as options instead of a FlexBuffer map.
"""
from __future__ import annotations

import functools
import struct

from .. import data

RESOLVED_VERSION = 1      # AddCustom registers version 1 only; the resolver looks custom ops up by (name, version)


@functools.cache
def _table() -> dict:
    return data.load("custom_ops")


def known(code: str) -> dict | None:
    """The data entry of a custom code, or None."""
    return _table()["ops"].get(code)


def stock(code: str, version: int) -> str | None:
    """How stock LiteRT runs this custom op: "resolver", "xnnpack" (default settings only), or None."""
    entry = known(code)
    if entry is None or entry["runs"] is None:
        return None
    if entry["runs"] == "resolver" and version != RESOLVED_VERSION:
        return None
    return entry["runs"]


def verdict(code: str, version: int) -> str:
    """What it takes to run this custom op, in words."""
    entry = known(code) or {}
    runs = stock(code, version)
    where = ", ".join(entry.get("runtimes", ()))
    if runs == "resolver":
        extra = f"; {entry['conditions']}" if entry.get("conditions") else ""
        return f"runs on stock LiteRT: registered by its default op resolver ({where}){extra}"
    if runs == "xnnpack":
        return f"runs on stock LiteRT with default settings ({where}): {entry['conditions']}"
    if entry.get("runs") == "resolver":
        return f"needs a kernel: stock LiteRT registers {code} at version {RESOLVED_VERSION} only, not {version}"
    kernel = f" ({entry['kernel']})" if entry.get("kernel") else ""
    return f"custom op: needs a kernel registered as {code!r}{kernel}"


def decode_struct(code: str, raw: bytes) -> dict | None:
    """The fields of a raw-struct option (little-endian int32s, enums named), as far as the bytes
    reach; None when the op's options are not a known struct."""
    entry = known(code)
    options = entry and entry["options"]
    if not options or options["encoding"] != "struct":
        return None
    enums = _table()["enums"]
    out = {}
    for i, field in enumerate(options["fields"]):
        if 4 * i + 4 > len(raw):
            break
        (value,) = struct.unpack_from("<i", raw, 4 * i)
        names = enums.get(field.get("enum", ""), {})
        out[field["name"]] = names.get(str(value), value) if names else value
    return out
