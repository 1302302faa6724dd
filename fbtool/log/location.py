"""Source locations in converter messages.

MLIR prints a location as ``file.py:LINE:COL`` or as a ``loc(...)`` chain whose syntax
changed across TF versions: ``loc("model/layer/Op")``, ``loc(callsite("a@f" at "g"))``,
``loc(fused["Op:", "model/layer/Op@__inference_fn_12"])`` and nestings of these with
python frames ``"file.py":LINE:COL``. Rather than one grammar per version, the chain's
quoted strings are classified: ``name@function`` is a graph node, ``"file":L:C`` a frame.
"""
from __future__ import annotations

import re

from ..names import layer_of
from .scan import py_frames, quoted_strings

_LIBRARY = re.compile(r"(site-packages|dist-packages)/(tensorflow|keras|tf_keras|absl)/|/lib/python3[\d.]*/[^/]+\.py$")
_NOISE = re.compile(r"^(StatefulPartitionedCall|PartitionedCall|serving_default.*|.*:)$")
MAX_FRAMES = 8


def _frame(file: str, line: str) -> dict:
    return {"file": file, "line": int(line), "library": bool(_LIBRARY.search(file))}


def parse_location(text: str) -> dict:
    """``{"node", "layer", "scope", "function", "within", "python"}`` from one location text.

    ``node`` is the op's graph node path (``model/det_layer/MatrixDeterminant``), ``layer``
    and ``scope`` the Keras layer and scope in it, ``function`` the traced function,
    ``within`` the scopes of the enclosing call sites (a Keras 2 LSTM's ops are named
    inside ``standard_lstm``; only the caller ``sequential/lstm/PartitionedCall`` names
    the layer), ``python`` the frames, the user's own first.
    """
    nodes: list[tuple[str, str | None]] = []
    frames = []
    if text.lstrip().startswith("loc("):
        for name, line, _ in quoted_strings(text):
            if line:
                frames.append(_frame(name, line))
            elif "@" in name:
                nodes.append(tuple(name.split("@", 1)))
            elif not _NOISE.match(name):
                nodes.append((name, None))
    else:    # an absolute path, or a bare file name: "FlatBuffer./a/b.py:1:1" (glued text) gives /a/b.py
        for file, line in py_frames(text):
            frames.append(_frame(file, line))
    frames.sort(key=lambda f: f["library"])
    node, function = nodes[0] if nodes else (None, None)
    layer, scope = layer_from_node(node)
    within = []
    for name, _ in nodes[1:]:
        outer = layer_from_node(name)[1]
        if outer and outer not in within and outer != scope:
            within.append(outer)
    if layer is None and within:
        layer, scope = layer_from_node(within[0] + "/op")
    return {"node": node, "layer": layer, "scope": scope, "function": function, "within": within,
            "python": frames[:MAX_FRAMES]}


def layer_from_node(node: str | None) -> tuple[str | None, str | None]:
    """``model/dense_1/MatMul`` -> (``dense_1``, ``model/dense_1``); the same rule as tensor names."""
    return layer_of(node) if node else (None, None)


def signature(loc: dict) -> tuple:
    """What makes two locations the same place."""
    return (loc["node"], loc["function"], tuple((f["file"], f["line"]) for f in loc["python"]))
