"""TensorFlow ``NodeDef`` decoding into plain Python values, without TensorFlow.

Field numbers from tensorflow/core/framework/{node_def,attr_value,tensor,tensor_shape,types}.proto:
NodeDef name=1 op=2 input=3 device=4 attr=5 (map entry key=1 value=2); AttrValue list=1 s=2
i=3 f=4 b=5 type=6 shape=7 tensor=8 placeholder=9 func=10; ListValue s=2 i=3 f=4 b=5 type=6
shape=7 tensor=8 func=9; TensorShapeProto dim=2 {size=1} unknown_rank=3; TensorProto dtype=1
tensor_shape=2 tensor_content=4 half_val=13 float_val=5 double_val=6 int_val=7 string_val=8
scomplex_val=9 int64_val=10 bool_val=11 dcomplex_val=12 uint32_val=16 uint64_val=17.

Values are normalized as: type -> dtype name (``float32``), bool, int, float, string (UTF-8, or
``{"bytes_hex": ...}``), shape -> list of dims (-1 unknown) or ``{"unknown_rank": True}``,
tensor -> ``{"dtype", "shape", "values"}`` (complex as [re, im]), list -> list, func -> ``{"func": name}``,
placeholder -> ``{"placeholder": name}``, no value -> None.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .. import data
from .protobuf import ProtoError, fields, repeated_fixed, repeated_varints, signed32, signed64

_DTYPES = {int(k): v for k, v in data.load("tf_dtypes")["types"].items()}
MAX_TENSOR_VALUES = 4096  # constants in a NodeDef are tiny; refuse to expand a huge one


def dtype_name(code: int) -> str:
    entry = _DTYPES.get(code % 100)  # 101.. are the legacy reference types
    return entry["name"] if entry else f"dtype_{code}"


def text(raw: bytes):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"bytes_hex": raw.hex()}


@dataclass
class NodeDef:
    op: str
    name: str = ""
    inputs: list[str] = field(default_factory=list)
    device: str = ""
    attrs: dict = field(default_factory=dict)


def parse_nodedef(raw: bytes) -> NodeDef:
    """Decode a serialized NodeDef. Raises :class:`ProtoError` on malformed bytes."""
    node = NodeDef(op="")
    for number, wire, value in fields(raw):
        if wire != 2:
            continue
        if number == 1:
            node.name = value.decode("utf-8", "replace")
        elif number == 2:
            node.op = value.decode("utf-8", "replace")
        elif number == 3:
            node.inputs.append(value.decode("utf-8", "replace"))
        elif number == 4:
            node.device = value.decode("utf-8", "replace")
        elif number == 5:
            key, attr = _map_entry(value)
            node.attrs[key] = _attr_value(attr)
    node.attrs = dict(sorted(node.attrs.items()))
    return node


def _map_entry(raw: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, wire, v in fields(raw):
        if number == 1 and wire == 2:
            key = v.decode("utf-8", "replace")
        elif number == 2 and wire == 2:
            value = v
    return key, value


def _attr_value(raw: bytes):
    result = None
    for number, wire, v in fields(raw):  # a oneof: the last one set wins, as in protobuf
        if number == 1:
            result = _list_value(v)
        elif number == 2:
            result = text(v)
        elif number == 3:
            result = signed64(v)
        elif number == 4:
            result = struct.unpack("<f", v)[0]
        elif number == 5:
            result = bool(v)
        elif number == 6:
            result = dtype_name(v)
        elif number == 7:
            result = _shape(v)
        elif number == 8:
            result = _tensor(v)
        elif number == 9:
            result = {"placeholder": text(v)}
        elif number == 10:
            result = {"func": _func_name(v)}
    return result


def _list_value(raw: bytes) -> list:
    by_field: dict[int, list] = {}
    for number, wire, v in fields(raw):
        items = by_field.setdefault(number, [])
        if number == 2:
            items.append(text(v))
        elif number == 3:
            items.extend(signed64(x) for x in repeated_varints(wire, v))
        elif number == 4:
            items.extend(repeated_fixed(wire, v, "f"))
        elif number == 5:
            items.extend(bool(x) for x in repeated_varints(wire, v))
        elif number == 6:
            items.extend(dtype_name(x) for x in repeated_varints(wire, v))
        elif number == 7:
            items.append(_shape(v))
        elif number == 8:
            items.append(_tensor(v))
        elif number == 9:
            items.append({"func": _func_name(v)})
    return next((items for items in by_field.values() if items), [])


def _func_name(raw: bytes) -> str:
    return next((text(v) for n, w, v in fields(raw) if n == 1 and w == 2), "")


def _shape(raw: bytes):
    dims, unknown = [], False
    for number, wire, v in fields(raw):
        if number == 2 and wire == 2:
            size = next((signed64(x) for n, w, x in fields(v) if n == 1 and w == 0), 0)
            dims.append(size)
        elif number == 3:
            unknown = bool(v)
    return {"unknown_rank": True} if unknown else dims


def _tensor(raw: bytes) -> dict:
    dtype, shape, content, values = 0, [], None, []
    for number, wire, v in fields(raw):
        if number == 1:
            dtype = v
        elif number == 2:
            shape = _shape(v)
        elif number == 4:
            content = v
        elif number == 8:
            values.append(text(v))
        elif number in (5, 9):
            values.extend(repeated_fixed(wire, v, "f"))
        elif number in (6, 12):
            values.extend(repeated_fixed(wire, v, "d"))
        elif number in (7, 13):
            values.extend(signed32(x) for x in repeated_varints(wire, v))
        elif number == 10:
            values.extend(signed64(x) for x in repeated_varints(wire, v))
        elif number == 11:
            values.extend(bool(x) for x in repeated_varints(wire, v))
        elif number in (16, 17):
            values.extend(repeated_varints(wire, v))
    name = dtype_name(dtype)
    count = 1
    for d in shape if isinstance(shape, list) else []:
        count *= max(d, 0)
    if count > MAX_TENSOR_VALUES:
        return {"dtype": name, "shape": shape, "values": None}
    fmt = (_DTYPES.get(dtype) or {}).get("struct")
    if content is not None and fmt:
        values = list(repeated_fixed(2, content, fmt))
    values = _halves(name, values)
    if values and len(values) < count:  # TensorFlow repeats the last value to fill the shape
        values += [values[-1]] * (count - len(values))
    if name.startswith("complex"):
        values = [[a, b] for a, b in zip(values[::2], values[1::2])]  # JSON has no complex numbers
    return {"dtype": name, "shape": shape, "values": values}


def _halves(name: str, values: list) -> list:
    """float16/bfloat16 values travel as 16-bit patterns; turn them into floats."""
    if name == "float16":
        return [struct.unpack("<e", struct.pack("<H", v & 0xFFFF))[0] for v in values]
    if name == "bfloat16":
        return [struct.unpack("<f", struct.pack("<I", (v & 0xFFFF) << 16))[0] for v in values]
    return values


__all__ = ["NodeDef", "parse_nodedef", "ProtoError", "dtype_name"]
