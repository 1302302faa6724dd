"""What ``fbtool patch`` would leave behind, counted over many models (``--report-unsupported``):
which Flex and custom ops stay, in how many models, why, and what would remove them, so a team
sees which decompositions would pay off most for its fleet. Plans only; writes nothing.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from .. import __version__
from ..errors import ModelError
from ..flex.analyze import remedy
from ..flex.catalog import load_catalog
from ..flex.custom import stock
from ..reader.model import open_model
from .rewrite import plan

TOP_REASONS = 3


@dataclass
class _Kept:
    kind: str
    tf_op: str
    ops: int = 0
    models: set = field(default_factory=set)
    reasons: Counter = field(default_factory=Counter)


def model_files(paths) -> list[str]:
    """The files named, and the .tflite files under the folders named, in a stable order."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                out += [os.path.join(root, f) for f in sorted(files) if f.endswith(".tflite")]
        else:
            out.append(p)
    return out


def report_unsupported(paths) -> dict:
    """The document of schemas/unsupported.schema.json for these files and folders."""
    catalog = load_catalog()
    kept: dict[tuple[str, str], _Kept] = {}
    files, errors, on_stock = model_files(paths), [], 0
    for path in files:
        try:
            with open_model(path) as model:
                codes = {(sg.index, op.index): op.opcode for sg in model.subgraphs for op in sg.operators}
                for o in plan(model).outcomes:
                    if o.status != "kept":
                        continue
                    code = codes[o.key]
                    if code.kind == "custom" and stock(code.custom_code, code.version):
                        on_stock += 1
                        continue
                    entry = kept.setdefault((code.kind, o.tf_op), _Kept(code.kind, o.tf_op))
                    entry.ops += 1
                    entry.models.add(path)
                    entry.reasons[o.reason] += 1
        except (ModelError, OSError) as e:
            errors.append({"model": path, "error": str(e)})
    ops = []
    for k in sorted(kept.values(), key=lambda k: (-len(k.models), -k.ops, k.tf_op)):
        row = {"kind": k.kind, "tf_op": k.tf_op, "ops": k.ops, "models": len(k.models),
               "reasons": [{"reason": r, "ops": n} for r, n in k.reasons.most_common(TOP_REASONS)]}
        fix = remedy(catalog, k.tf_op, None) if k.kind == "flex" else None
        if fix:
            row["remedy"] = fix
        ops.append(row)
    return {"fbtool_version": __version__, "models": len(files) - len(errors), "errors": errors,
            "stock_custom_ops": on_stock, "ops": ops}
