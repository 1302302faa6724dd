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
from .protobuf import (ProtoError, as_bytes, as_varint, fields, repeated_fixed, repeated_varints, signed32,
                       signed64)

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
        if number == 1:
            node.name = _str(wire, value)
        elif number == 2:
            node.op = _str(wire, value)
        elif number == 3:
            node.inputs.append(_str(wire, value))
        elif number == 4:
            node.device = _str(wire, value)
        elif number == 5:
            key, attr = _map_entry(as_bytes(wire, value))
            node.attrs[key] = _attr_value(attr)
    node.attrs = dict(sorted(node.attrs.items()))
    return node


def _str(wire: int, value) -> str:
    return as_bytes(wire, value).decode("utf-8", "replace")


def _map_entry(raw: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, wire, v in fields(raw):
        if number == 1:
            key = _str(wire, v)
        elif number == 2:
            value = as_bytes(wire, v)
    return key, value


# The kinds of value an AttrValue holds, and how to read every value one field carries (a packed
# repeated field carries several). ListValue has the same kinds under other field numbers.
_READ = {
    "s": lambda w, v: [text(as_bytes(w, v))],
    "i": lambda w, v: [signed64(x) for x in repeated_varints(w, v)],
    "f": lambda w, v: repeated_fixed(w, v, "f"),
    "b": lambda w, v: [bool(x) for x in repeated_varints(w, v)],
    "type": lambda w, v: [dtype_name(x) for x in repeated_varints(w, v)],
    "shape": lambda w, v: [_shape(as_bytes(w, v))],
    "tensor": lambda w, v: [_tensor(as_bytes(w, v))],
    "placeholder": lambda w, v: [{"placeholder": text(as_bytes(w, v))}],
    "func": lambda w, v: [{"func": _func_name(as_bytes(w, v))}],
}
_ATTR_VALUE = {2: "s", 3: "i", 4: "f", 5: "b", 6: "type", 7: "shape", 8: "tensor", 9: "placeholder", 10: "func"}
_LIST_VALUE = {2: "s", 3: "i", 4: "f", 5: "b", 6: "type", 7: "shape", 8: "tensor", 9: "func"}


def _attr_value(raw: bytes):
    result = None
    for number, wire, v in fields(raw):  # a oneof: the last one set wins, as in protobuf
        if number == 1:
            result = _list_value(as_bytes(wire, v))
        elif number in _ATTR_VALUE:
            values = _READ[_ATTR_VALUE[number]](wire, v)
            result = values[-1] if values else None
    return result


def _list_value(raw: bytes) -> list:
    by_field: dict[int, list] = {}
    for number, wire, v in fields(raw):
        if number in _LIST_VALUE:
            by_field.setdefault(number, []).extend(_READ[_LIST_VALUE[number]](wire, v))
    return next((items for items in by_field.values() if items), [])


def _func_name(raw: bytes) -> str:
    return next((_str(w, v) for n, w, v in fields(raw) if n == 1), "")


def _shape(raw: bytes):
    dims, unknown = [], False
    for number, wire, v in fields(raw):
        if number == 2:
            size = next((signed64(as_varint(w, x)) for n, w, x in fields(as_bytes(wire, v)) if n == 1), 0)
            dims.append(size)
        elif number == 3:
            unknown = bool(as_varint(wire, v))
    return {"unknown_rank": True} if unknown else dims


def _tensor(raw: bytes) -> dict:
    dtype, shape, content, values = 0, [], None, []
    for number, wire, v in fields(raw):
        if number == 1:
            dtype = as_varint(wire, v)
        elif number == 2:
            shape = _shape(as_bytes(wire, v))
        elif number == 4:
            content = as_bytes(wire, v)
        elif number == 8:
            values.append(text(as_bytes(wire, v)))
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
