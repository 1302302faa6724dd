"""What the converter's tensor and node names say about where an op came from."""
from __future__ import annotations

import re

_SCOPE_NOISE = re.compile(r"^(StatefulPartitionedCall|PartitionedCall|serving_default)(_\d+)?(:\d+)?$")


def layer_of(tensor_name: str) -> tuple[str | None, str | None]:
    """(layer, scope) from a converter tensor name.

    ``sequential_1/dense_1/MatMul`` -> (``dense_1``, ``sequential_1/dense_1``): the scope
    is the name without its last (op) part, the layer the part under the top-level model.
    Fused names (``a;b``) use their first name; names with no scope give (None, None).
    """
    first = tensor_name.split(";", 1)[0]
    scope = [p for p in first.split("/")[:-1] if not _SCOPE_NOISE.match(p)]
    if not scope:
        return None, None
    return (scope[1] if len(scope) > 1 else scope[0]), "/".join(scope)
