"""``diff``: what changed between two models, as one JSON-ready document (schema: schemas/diff.schema.json).

Tensors, metadata entries and signatures are matched by name. Names can repeat
(quant_int8 has two ``min_runtime_version`` entries), so the k-th item of a name
in A is paired with the k-th of that name in B. Weights and metadata are
compared by sha256 hashed straight from the memory map.
"""
from __future__ import annotations

import filecmp
import hashlib
import os
from collections import Counter, deque

from .flex.decode import DecodedOp, decode_ops
from .inspect import describe_tensor
from .reader.model import Model, open_model

CHUNK = 1 << 20
# what a tensor change is called -> the fields of inspect's tensor document that show it
TENSOR_ASPECTS = {"shape": ("shape", "shape_signature"), "dtype": ("dtype",), "quantization": ("quantization",)}


def diff_models(path_a: str | os.PathLike, path_b: str | os.PathLike) -> dict:
    """Compare two models. Raises :class:`fbtool.ModelError` when either is bad input."""
    path_a, path_b = os.fspath(path_a), os.fspath(path_b)
    with open_model(path_a) as a, open_model(path_b) as b:
        hash_a, hash_b = _digester(a), _digester(b)
        decoded_a, decoded_b = decode_ops(a), decode_ops(b)
        subgraphs, weights = _tensors(a, b, hash_a, hash_b)
        found = {
            "ops": _ops(a, b),
            "flex": _extension_ops(decoded_a, decoded_b, "flex"),
            "custom": _extension_ops(decoded_a, decoded_b, "custom"),
            "subgraphs": subgraphs,
            "weights": weights,
            "metadata": _metadata(a, b, hash_a, hash_b),
            "signatures": _signatures(a, b),
        }
    same = not (subgraphs or weights["changed"]
                or any(any(found[k].values()) for k in ("ops", "flex", "custom", "metadata", "signatures")))
    return {"a": path_a, "b": path_b, "identical": filecmp.cmp(path_a, path_b, shallow=False), "same": same, **found}


def _pair(items_a: list, items_b: list, key) -> tuple[list, list, list]:
    """(pairs, only in A, only in B), matching the k-th of each key in A with the k-th in B."""
    waiting: dict = {}
    for j, item in enumerate(items_b):
        waiting.setdefault(key(item), deque()).append(j)
    pairs, removed, matched = [], [], set()
    for item in items_a:
        indices = waiting.get(key(item))
        if indices:
            j = indices.popleft()
            matched.add(j)
            pairs.append((item, items_b[j]))
        else:
            removed.append(item)
    return pairs, removed, [item for j, item in enumerate(items_b) if j not in matched]


def _digester(model: Model):
    """sha256 of a buffer by index, memoized (tensors share buffers).

    Hashed through memoryview slices of the map, a chunk at a time, so a weight is
    never copied into a Python bytes object whatever its size.
    """
    cache: dict[int, str] = {}

    def digest(index: int) -> str:
        if index not in cache:
            buf = model.buffers[index]
            span = buf.data or buf.external
            h = hashlib.sha256()
            if span:
                end = span.offset + span.size
                with memoryview(model.buf) as view:
                    for start in range(span.offset, end, CHUNK):
                        h.update(view[start:min(start + CHUNK, end)])
            cache[index] = h.hexdigest()
        return cache[index]

    return digest


def _histogram(model: Model) -> Counter:
    return Counter((op.opcode.name, op.opcode.kind, op.opcode.version)
                   for sg in model.subgraphs for op in sg.operators)


def _ops(a: Model, b: Model) -> dict:
    ha, hb = _histogram(a), _histogram(b)

    def rows(counts: Counter) -> list[dict]:
        return [{"opcode": name, "kind": kind, "version": version, "count": n}
                for (name, kind, version), n in sorted(counts.items())]

    return {"added": rows(hb - ha), "removed": rows(ha - hb)}


def _extension_ops(decoded_a: list[DecodedOp], decoded_b: list[DecodedOp], kind: str) -> dict:
    """Flex (by TF op) or custom (by custom code) ops added or removed, and same-named ops,
    paired in order, whose decoded attributes differ: options the op histogram cannot see."""
    ops_a = [d for d in decoded_a if d.kind == kind]
    ops_b = [d for d in decoded_b if d.kind == kind]
    names_a, names_b = {d.tf_op for d in ops_a}, {d.tf_op for d in ops_b}
    pairs, _, _ = _pair(ops_a, ops_b, key=lambda d: d.tf_op)

    def side(d) -> dict:
        return {"subgraph": d.subgraph, "index": d.index, "attrs": d.attrs, **({"error": d.error} if d.error else {})}

    return {
        "added": sorted(names_b - names_a),
        "removed": sorted(names_a - names_b),
        "changed": [{"name": x.tf_op, "a": side(x), "b": side(y)} for x, y in pairs
                    if (x.attrs, x.error) != (y.attrs, y.error)],
    }


def _tensor_change(model_a: Model, ta, model_b: Model, tb) -> dict | None:
    da, db = describe_tensor(model_a, ta), describe_tensor(model_b, tb)
    what = [w for w, keys in TENSOR_ASPECTS.items() if any(da.get(k) != db.get(k) for k in keys)]
    if not what:
        return None

    def side(d: dict) -> dict:
        return {"index": d["index"], "dtype": d["dtype"], "shape": d["shape"],
                "shape_signature": d["shape_signature"], "quantization": d.get("quantization")}

    return {"name": ta.name, "what": what, "a": side(da), "b": side(db)}


def _tensors(a: Model, b: Model, hash_a, hash_b) -> tuple[list[dict], dict]:
    """Per-subgraph tensor changes, and the weights of tensors paired by name compared by hash."""
    subgraphs, changed_weights, same_weights = [], [], 0
    for i in range(max(len(a.subgraphs), len(b.subgraphs))):
        tensors_a = a.subgraphs[i].tensors if i < len(a.subgraphs) else []
        tensors_b = b.subgraphs[i].tensors if i < len(b.subgraphs) else []
        pairs, removed, added = _pair(tensors_a, tensors_b, key=lambda t: t.name)
        changed = [c for ta, tb in pairs if (c := _tensor_change(a, ta, b, tb))]
        if added or removed or changed:
            subgraphs.append({"index": i, "tensors": {"added": [t.name for t in added],
                                                      "removed": [t.name for t in removed], "changed": changed}})
        for ta, tb in pairs:
            size_a = a.buffers[ta.buffer].size if ta.buffer else 0
            size_b = b.buffers[tb.buffer].size if tb.buffer else 0
            if not (size_a or size_b):
                continue  # not a constant on either side
            if size_a == size_b and hash_a(ta.buffer) == hash_b(tb.buffer):
                same_weights += 1
            else:
                changed_weights.append({"subgraph": i, "tensor": tb.index, "name": tb.name,
                                        "bytes_a": size_a, "bytes_b": size_b,
                                        "sha256_a": hash_a(ta.buffer), "sha256_b": hash_b(tb.buffer)})
    return subgraphs, {"changed": changed_weights, "same": same_weights}


def _metadata(a: Model, b: Model, hash_a, hash_b) -> dict:
    pairs, removed, added = _pair(a.metadata, b.metadata, key=lambda m: m[0])
    return {
        "added": [name for name, _ in added],
        "removed": [name for name, _ in removed],
        "changed": [{"name": name, "bytes_a": a.buffers[ia].size, "bytes_b": b.buffers[ib].size}
                    for (name, ia), (_, ib) in pairs if hash_a(ia) != hash_b(ib)],
    }


def _signature(model: Model, sig) -> dict:
    """What a caller of the signature sees: input/output names with dtype and shape, by name."""
    tensors = model.subgraphs[sig.subgraph].tensors

    def side(names: dict[str, int]) -> list[dict]:
        return [{"name": name, "dtype": tensors[i].dtype, "shape": list(tensors[i].shape_signature)}
                for name, i in sorted(names.items())]

    return {"inputs": side(sig.inputs), "outputs": side(sig.outputs)}


def _signatures(a: Model, b: Model) -> dict:
    pairs, removed, added = _pair(a.signatures, b.signatures, key=lambda s: s.key)
    changed = []
    for sa, sb in pairs:
        da, db = _signature(a, sa), _signature(b, sb)
        if da != db:
            changed.append({"key": sa.key, "a": da, "b": db})
    return {"added": [s.key for s in added], "removed": [s.key for s in removed], "changed": changed}
