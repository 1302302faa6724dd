"""``inspect``: what is in a model, as one JSON-ready document (schema: schemas/inspect.schema.json)."""
from __future__ import annotations

import hashlib
import os
import zipfile
from collections import Counter

from . import __version__
from .errors import ModelError
from .reader.checks import subgraph_refs
from .reader.model import Model, open_model
from .reader.schema import load_schema
from .reader.structure import verify_buffer
from .reader.table import Table

LARGEST = 10
MAX_ZIP_NAMES = 100
PADDING_LIMIT = 4096


def sha256_file(path: str) -> str:
    """Hash in fixed chunks through a reused buffer: memory stays flat for any file size."""
    h = hashlib.sha256()
    chunk = bytearray(1 << 20)
    view = memoryview(chunk)
    with open(path, "rb") as f:
        while n := f.readinto(chunk):
            h.update(view[:n])
    return h.hexdigest()


def inspect_model(path: str | os.PathLike, verify: bool = True, sha256: bool = False) -> dict:
    """Read ``path`` and describe it. Raises :class:`fbtool.ModelError` on bad input.

    ``sha256`` hashes the whole file, weights included: off by default so that the
    cost follows the number of ops and tensors, not the size of the weights.
    """
    path = os.fspath(path)
    with open_model(path, verify=verify) as model:
        return describe(model, sha256_file(path) if sha256 else None)


def describe(model: Model, digest: str | None = None) -> dict:
    subgraphs = [_subgraph(model, sg) for sg in model.subgraphs]
    ops = [op for sg in subgraphs for op in sg["operators"]]
    kinds = Counter(op["kind"] for op in ops)
    histogram = Counter((op["opcode"], op["kind"], op["version"]) for op in ops)
    return {
        "fbtool_version": __version__,
        "file": _file_info(model, digest),
        "schema_version": model.version,
        "description": model.description,
        "min_runtime_version": model.min_runtime_version,
        "conversion": _conversion_metadata(model),
        "op_counts": {"total": len(ops), "builtin": kinds["builtin"], "flex": kinds["flex"], "custom": kinds["custom"]},
        "operator_codes": [
            {"index": oc.index, "opcode": oc.name, "kind": oc.kind, "code": oc.code, "version": oc.version}
            for oc in model.operator_codes
        ],
        "op_histogram": [
            {"opcode": name, "kind": kind, "version": version, "count": count}
            for (name, kind, version), count in sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "subgraphs": subgraphs,
        "signatures": [
            {"key": s.key, "subgraph": s.subgraph,
             "inputs": [{"name": k, "tensor": v} for k, v in s.inputs.items()],
             "outputs": [{"name": k, "tensor": v} for k, v in s.outputs.items()]}
            for s in model.signatures
        ],
        "buffers": _buffer_totals(model),
        "largest_constants": _largest(subgraphs),
        "metadata": _metadata(model),
        "warnings": list(model.warnings),
    }


def _file_info(model: Model, digest: str | None) -> dict:
    external_end = max((b.external.offset + b.external.size for b in model.buffers if b.external), default=0)
    data_end = max(model.flatbuffer_extent, external_end)
    trailing = model.size - data_end
    if trailing <= PADDING_LIMIT and not any(model.buf[data_end:model.size]):
        trailing = 0  # writers pad the flatbuffer and external buffers with zeros
    return {
        "path": model.path,
        "size": model.size,
        "sha256": digest,
        "flatbuffer_bytes": model.flatbuffer_extent,
        "trailing_bytes": trailing,
        "trailing_zip": _zip_names(model.path) if trailing else None,
    }


def _zip_names(path: str) -> list[str] | None:
    """Names in a zip appended after the model (TFLite Support's associated files)."""
    try:
        with zipfile.ZipFile(path) as z:
            return [i.filename for i in z.infolist()[:MAX_ZIP_NAMES]]
    except Exception:  # zipfile raises many types on odd archives; the listing is a courtesy
        return None


def describe_tensor(model: Model, t) -> dict:
    buf = model.buffers[t.buffer] if t.buffer else None
    out = {
        "index": t.index,
        "name": t.name,
        "dtype": t.dtype,
        "shape": list(t.shape),
        "shape_signature": list(t.shape_signature),
        "buffer": t.buffer,
        "bytes": buf.size if buf else 0,
    }
    if buf and buf.external:
        out["external"] = True
    if t.is_variable:
        out["is_variable"] = True
    if t.sparsity is not None:
        out["sparse"] = True
    q = t.quantization
    if q is not None and (q.has("scale") or q.has("zero_point")):
        out["quantization"] = {
            "scale": list(q.get("scale", ())),
            "zero_point": list(q.get("zero_point", ())),
            "quantized_dimension": q.get("quantized_dimension"),
        }
    return out


def _operator(op) -> dict:
    oc = op.opcode
    out = {
        "index": op.index,
        "opcode": oc.name,
        "kind": oc.kind,
        "version": oc.version,
        "inputs": list(op.inputs),
        "outputs": list(op.outputs),
    }
    options = op.options
    if options is not None:
        out["options"] = options.tdef.name
        calls = subgraph_refs(options)
        if calls:
            out["calls"] = calls
    return out


def _subgraph(model: Model, sg) -> dict:
    return {
        "index": sg.index,
        "name": sg.name,
        "inputs": list(sg.inputs),
        "outputs": list(sg.outputs),
        "operators": [_operator(op) for op in sg.operators],
        "tensors": [describe_tensor(model, t) for t in sg.tensors],
    }


def _buffer_totals(model: Model) -> dict:
    inline = sum(b.data.size for b in model.buffers if b.data)
    external = sum(b.external.size for b in model.buffers if b.external)
    return {
        "count": len(model.buffers),
        "inline_bytes": inline,
        "external_bytes": external,
        "graph_bytes": model.flatbuffer_extent - inline,
    }


def _largest(subgraphs: list[dict]) -> list[dict]:
    consts = [(t["bytes"], sg["index"], t) for sg in subgraphs for t in sg["tensors"] if t["bytes"]]
    consts.sort(key=lambda c: (-c[0], c[1], c[2]["index"]))
    return [
        {"subgraph": si, "tensor": t["index"], "name": t["name"], "dtype": t["dtype"], "shape": t["shape"], "bytes": n,
         **({"sparse": True} if t.get("sparse") else {})}
        for n, si, t in consts[:LARGEST]
    ]


def _conversion_metadata(model: Model) -> dict | None:
    """Decoded CONVERSION_METADATA (converter version and options), if present and valid."""
    for name, index in model.metadata:
        if name == "CONVERSION_METADATA":
            raw = model.buffer_bytes(index, 1 << 16)
            schema = load_schema("conversion_metadata")
            try:
                verify_buffer(raw, schema, check_identifier=False)
            except ModelError as e:
                return {"error": str(e)}
            root = Table(raw, int.from_bytes(raw[:4], "little"), schema.tables[schema.root], schema)
            return root.to_dict(defaults=True)
    return None


def _metadata(model: Model) -> list[dict]:
    out = []
    for name, index in model.metadata:
        entry = {"name": name, "buffer": index, "bytes": model.buffers[index].size}
        head = model.buffer_bytes(index, 8)
        if len(head) == 8 and head[4:8].isalnum():
            entry["identifier"] = head[4:8].decode("ascii")
        out.append(entry)
    return out
