"""Decode the Flex and custom operators of a model into TF op names and typed attributes."""
from __future__ import annotations

from dataclasses import dataclass

from ..reader.model import Model, Operator
from .custom import decode_struct
from .flexbuffer import Blob, FlexBufferError, loads
from .nodedef import parse_nodedef, text
from .protobuf import ProtoError

MAX_OPTIONS_BYTES = 16 << 20


@dataclass
class DecodedOp:
    subgraph: int
    index: int
    kind: str            # flex | custom
    custom_code: str
    tf_op: str           # the TF op (Flex: NodeDef.op) or the custom code
    attrs: dict          # decoded attributes, JSON-ready
    num_inputs: int | None = None  # NodeDef input count (Flex only)
    error: str | None = None       # why the options did not decode, if they did not

    @property
    def decoded(self) -> bool:
        return self.error is None


def plain(value):
    """FlexBuffer values made JSON-ready: strings as text, blobs as hex."""
    if isinstance(value, Blob):
        return {"bytes_hex": bytes(value).hex()}
    if isinstance(value, bytes):
        return text(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def decode_op(model: Model, subgraph: int, op: Operator, memo: dict | None = None) -> DecodedOp:
    """Decode one Flex or custom operator; a failure is recorded in ``error``, never raised.

    ``memo`` maps option bytes already decoded to their result: a converted model repeats the
    same NodeDef for every op of a kind (10,000 identical ones in a long all-Flex chain).
    """
    code = op.opcode.custom_code or ""
    kind = op.opcode.kind
    name = op.opcode.tf_op or code
    result = DecodedOp(subgraph, op.index, kind, code, name, {})
    span = op.custom_options
    if span is None or span.size == 0:
        if kind == "flex":
            result.error = "Flex op without custom options (no NodeDef)"
        return result
    if span.size > MAX_OPTIONS_BYTES:
        result.error = f"custom options of {span.size} bytes are too large to decode"
        return result
    raw = model.read(span)
    key = (code, raw)
    if memo is not None and key in memo:
        known = memo[key]
        result.tf_op, result.attrs, result.num_inputs, result.error = \
            known.tf_op, known.attrs, known.num_inputs, known.error
        return result
    try:
        if kind == "flex":
            _decode_flex(raw, result)
        elif (fields := decode_struct(code, raw)) is not None:    # a raw C struct, not a FlexBuffer
            result.attrs = fields
        else:
            root = loads(raw)
            result.attrs = plain(root) if isinstance(root, dict) else {"value": plain(root)}
    except (FlexBufferError, ProtoError) as e:
        result.error = f"options do not decode: {e}"
    if memo is not None:
        memo[key] = result
    return result


def _decode_flex(raw: bytes, result: DecodedOp) -> None:
    root = loads(raw)
    if not (isinstance(root, list) and len(root) == 2 and all(isinstance(x, bytes) for x in root)):
        raise FlexBufferError("expected a vector [op name, NodeDef] of two strings")
    node = parse_nodedef(root[1])
    if node.op and node.op != result.tf_op:
        raise ProtoError(f"NodeDef op {node.op!r} differs from custom code {result.custom_code!r}")
    result.tf_op = node.op or result.tf_op
    result.attrs = node.attrs
    result.num_inputs = len(node.inputs)


def nodedef_bytes(model: Model, op: Operator) -> bytes | None:
    """The serialized TF NodeDef a Flex op carries, or None when it has no readable one."""
    span = op.custom_options
    if op.opcode.kind != "flex" or span is None or not 0 < span.size <= MAX_OPTIONS_BYTES:
        return None
    try:
        root = loads(model.read(span))
    except FlexBufferError:
        return None
    ok = isinstance(root, list) and len(root) == 2 and isinstance(root[1], bytes)
    return bytes(root[1]) if ok else None


def decode_ops(model: Model) -> list[DecodedOp]:
    """Every Flex and custom operator of every subgraph, in order."""
    memo: dict = {}
    return [decode_op(model, sg.index, op, memo) for sg in model.subgraphs for op in sg.operators
            if op.opcode.kind != "builtin"]
