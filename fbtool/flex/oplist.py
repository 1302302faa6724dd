"""``fbtool ops``: which kernels a set of models needs, for a selective TFLite / Flex build."""
from __future__ import annotations

import os

from ..errors import ModelError
from ..reader.model import open_model


def list_ops(paths: list[str | os.PathLike], verify: bool = True) -> dict:
    """Builtin (op, version) pairs, Flex TF ops and custom codes used across ``paths``. A model
    that cannot be read is listed under ``errors`` and the others are still counted."""
    builtins: dict[tuple[str, int], set[str]] = {}
    flex: dict[str, set[str]] = {}
    custom: dict[str, set[str]] = {}
    errors = []
    for path in map(os.fspath, paths):
        try:
            model = open_model(path, verify=verify)
        except ModelError as e:
            errors.append({"model": path, "error": str(e)})
            continue
        with model:
            for sg in model.subgraphs:
                for op in sg.operators:
                    oc = op.opcode
                    if oc.kind == "builtin":
                        builtins.setdefault((oc.name, oc.version), set()).add(path)
                    elif oc.kind == "flex":
                        flex.setdefault(oc.tf_op, set()).add(path)
                    else:
                        custom.setdefault(oc.custom_code, set()).add(path)
    return {
        "models": [os.fspath(p) for p in paths],
        "builtin": [{"op": name, "version": v, "models": sorted(ms)} for (name, v), ms in sorted(builtins.items())],
        "flex": [{"tf_op": name, "models": sorted(ms)} for name, ms in sorted(flex.items())],
        "custom": [{"custom_code": name, "models": sorted(ms)} for name, ms in sorted(custom.items())],
        "errors": errors,
    }


def list_flex_ops_format(doc: dict) -> str:
    """The JSON list TensorFlow's ``list_flex_ops`` tool prints when built without kernels
    (tflite/tools/list_flex_ops_no_kernel.cc): the sorted TF op names, one line."""
    return "[" + ",".join(f'"{op["tf_op"]}"' for op in doc["flex"]) + "]\n"
