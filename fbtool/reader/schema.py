"""Compiled form of a FlatBuffers schema description (``fbtool/data/*_schema.json``).

The JSON is produced by :mod:`fbtool.reader.fbs` from the upstream ``.fbs``
file, which it cites in its ``source`` key.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache

from .. import data
from .fbs import SCALARS


@dataclass(frozen=True)
class Field:
    name: str
    slot: int
    kind: str            # scalar | string | table | union | vector
    fmt: str = ""        # struct format of a scalar or of a vector's scalar elements
    size: int = 4        # bytes the field takes inline in its table
    default: object = None
    target: str = ""     # table name (table, vector of tables) or union name
    elem: str = ""       # vector element kind: scalar | string | table
    enum: str = ""       # enum name for enum-typed scalars and vectors
    unpack: object = None  # struct unpack_from of a scalar field

    def __post_init__(self):
        if self.kind == "scalar":
            object.__setattr__(self, "unpack", struct.Struct("<" + self.fmt).unpack_from)


@dataclass
class TableDef:
    name: str
    fields: dict[str, Field] = field(default_factory=dict)
    refs: tuple[Field, ...] = ()     # fields holding offsets, walked by the verifier
    slot_sizes: tuple[int, ...] = ()  # inline size of every slot, for bounds checks


@dataclass
class Schema:
    source: str
    root: str
    identifier: bytes
    tables: dict[str, TableDef]
    enums: dict[str, dict[str, int]]
    enum_names: dict[str, dict[int, str]]
    unions: dict[str, dict[int, str]]     # union -> type code -> table name

    def enum_name(self, enum: str, value: int) -> str | None:
        return self.enum_names[enum].get(value)


def _scalar(schema: dict, type_name: str) -> tuple[str, str]:
    """Return (struct format, enum name or '') for a scalar or enum type."""
    if type_name in SCALARS:
        return SCALARS[type_name], ""
    if type_name in schema["enums"]:
        return SCALARS[schema["enums"][type_name]["base"]], type_name
    raise ValueError(f"unknown scalar type {type_name}")


def _default(schema: dict, fmt: str, enum: str, raw: str | None):
    if raw is None:
        return False if fmt == "?" else 0
    if raw in ("true", "false"):
        return raw == "true"
    if enum and raw in schema["enums"][enum]["values"]:
        return schema["enums"][enum]["values"][raw]
    return float(raw) if fmt in "fd" else int(raw)


def compile_schema(raw: dict) -> Schema:
    tables: dict[str, TableDef] = {}
    for tname, raw_fields in raw["tables"].items():
        tdef = TableDef(tname)
        slot, sizes = 0, []
        for rf in raw_fields:
            ftype = rf["type"]
            if ftype.startswith("["):
                inner = ftype[1:-1]
                if inner == "string":
                    f = Field(rf["name"], slot, "vector", elem="string")
                elif inner in raw["tables"]:
                    f = Field(rf["name"], slot, "vector", elem="table", target=inner)
                else:
                    fmt, enum = _scalar(raw, inner)
                    f = Field(rf["name"], slot, "vector", elem="scalar", fmt=fmt, enum=enum)
            elif ftype == "string":
                f = Field(rf["name"], slot, "string")
            elif ftype in raw["tables"]:
                f = Field(rf["name"], slot, "table", target=ftype)
            elif ftype in raw["unions"]:
                # A union occupies two slots: its type byte, then the offset of its value.
                tdef.fields[rf["name"] + "_type"] = Field(rf["name"] + "_type", slot, "scalar", fmt="B", size=1, default=0)
                sizes.append(1)
                slot += 1
                f = Field(rf["name"], slot, "union", target=ftype)
            else:
                fmt, enum = _scalar(raw, ftype)
                f = Field(rf["name"], slot, "scalar", fmt=fmt, size=struct.calcsize(fmt), enum=enum,
                          default=_default(raw, fmt, enum, rf.get("default")))
            tdef.fields[f.name] = f
            sizes.append(f.size)
            slot += 1
        tdef.refs = tuple(f for f in tdef.fields.values() if f.kind != "scalar")
        tdef.slot_sizes = tuple(sizes)
        tables[tname] = tdef
    enums = {name: e["values"] for name, e in raw["enums"].items()}
    return Schema(
        source=raw["source"],
        root=raw["root_type"],
        identifier=(raw.get("file_identifier") or "").encode(),
        tables=tables,
        enums=enums,
        enum_names={name: {v: k for k, v in values.items()} for name, values in enums.items()},
        unions={name: {code: member for member, code in members.items() if member != "NONE"}
                for name, members in raw["unions"].items()},
    )


@lru_cache(maxsize=None)
def load_schema(name: str) -> Schema:
    """Load one of the packaged schemas: ``tflite`` or ``conversion_metadata``."""
    return compile_schema(data.load(f"{name}_schema"))
