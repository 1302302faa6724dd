"""The lazy, zero-copy TFLite model reader.

``open_model(path)`` maps the file, verifies it (see :mod:`.structure` and
:mod:`.checks`) and hands out light objects that read fields on demand. Weight
bytes are never read: buffers are reported as :class:`Span` (offset, size).
"""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from functools import cached_property

from .. import data
from ..errors import ModelError
from .schema import load_schema
from .structure import Coverage, verify_buffer
from .table import Span, Table

SCHEMA = load_schema("tflite")
_BUILTIN = SCHEMA.enum_names["BuiltinOperator"]
_TYPES = SCHEMA.enum_names["TensorType"]
CUSTOM = SCHEMA.enums["BuiltinOperator"]["CUSTOM"]
FLEX_PREFIX = "Flex"   # custom_code of a Flex op: "Flex" + the TF op (flatbuffer_export.cc)
TYPE_BITS: dict[str, int | None] = data.load("tensor_types")["bits"]


def dtype_name(code: int) -> str:
    """``float32`` for TensorType 0; ``type_99`` for codes newer than the schema."""
    name = _TYPES.get(code)
    return name.lower() if name else f"type_{code}"


@dataclass(frozen=True)
class OpCode:
    index: int
    code: int            # max(deprecated_builtin_code, builtin_code)
    name: str            # BuiltinOperator name, the custom code, or BUILTIN_<n> if unknown
    kind: str            # builtin | flex | custom
    version: int
    custom_code: str | None

    @classmethod
    def from_table(cls, index: int, t: Table) -> "OpCode":
        code = max(t.get("deprecated_builtin_code"), t.get("builtin_code"))
        custom = t.get("custom_code")      # None when absent (the runtime refuses that), "" when empty
        if code == CUSTOM:
            kind = "flex" if (custom or "").startswith(FLEX_PREFIX) else "custom"
            name = custom or "CUSTOM"
        else:
            kind, name = "builtin", _BUILTIN.get(code, f"BUILTIN_{code}")
        return cls(index, code, name, kind, t.get("version"), custom)

    @property
    def tf_op(self) -> str | None:
        """The TF op a Flex code runs (``FlexAddV2`` -> ``AddV2``); None for other codes."""
        return self.custom_code[len(FLEX_PREFIX):] if self.kind == "flex" else None


@dataclass(frozen=True)
class Buffer:
    index: int
    data: Span | None       # inline bytes inside the flatbuffer
    external: Span | None   # Buffer.offset/size: bytes elsewhere in the file

    @property
    def size(self) -> int:
        span = self.data or self.external
        return span.size if span else 0


class Tensor:
    """One tensor; the fields every pass needs are decoded once, the rest on demand."""
    __slots__ = ("index", "t", "name", "type_code", "buffer", "shape", "is_variable", "_sparsity")

    def __init__(self, index: int, t: Table):
        get = t.get
        self.index = index
        self.t = t
        self.name: str = get("name", "")
        self.type_code: int = get("type")
        self.buffer: int = get("buffer")
        self.shape: tuple[int, ...] = get("shape", ())
        self.is_variable: bool = get("is_variable")
        self._sparsity = False

    @property
    def dtype(self) -> str:
        return dtype_name(self.type_code)

    @property
    def shape_signature(self) -> tuple[int, ...]:
        """The shape with -1 for dynamic dimensions (the shape itself when absent)."""
        return self.t.get("shape_signature") or self.shape

    @property
    def quantization(self) -> Table | None:
        return self.t.get("quantization")

    @property
    def sparsity(self) -> Table | None:
        if self._sparsity is False:
            self._sparsity = self.t.get("sparsity")
        return self._sparsity

    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class Operator:
    """One operator; opcode, inputs and outputs decoded once, the rest on demand."""
    __slots__ = ("index", "t", "opcode_index", "opcode", "inputs", "outputs", "_options")

    def __init__(self, index: int, t: Table, codes: list["OpCode"]):
        get = t.get
        self.index = index
        self.t = t
        self.opcode_index: int = get("opcode_index")
        self.opcode: OpCode | None = codes[self.opcode_index] if self.opcode_index < len(codes) else None
        self.inputs: tuple[int, ...] = get("inputs", ())
        self.outputs: tuple[int, ...] = get("outputs", ())
        self._options = False

    @property
    def intermediates(self) -> tuple[int, ...]:
        return self.t.get("intermediates", ())

    @property
    def options(self) -> Table | None:
        """The builtin options table (either union), or None."""
        if self._options is False:
            self._options = self.t.get("builtin_options") or self.t.get("builtin_options_2")
        return self._options

    @property
    def custom_options(self) -> Span | None:
        """Where the custom options bytes are (inline or large, out of line)."""
        size = self.t.get("large_custom_options_size")
        if size:
            return Span(self.t.get("large_custom_options_offset"), size)
        return self.t.get("custom_options")


class SubGraph:
    def __init__(self, index: int, t: Table, model: "Model"):
        self.index = index
        self.t = t
        self.model = model

    name = property(lambda self: self.t.get("name", ""))
    inputs = property(lambda self: self.t.get("inputs", ()))
    outputs = property(lambda self: self.t.get("outputs", ()))

    @cached_property
    def tensors(self) -> list[Tensor]:
        return [Tensor(i, t) for i, t in enumerate(self.t.get("tensors", []))]

    @cached_property
    def operators(self) -> list[Operator]:
        codes = self.model.operator_codes
        return [Operator(i, t, codes) for i, t in enumerate(self.t.get("operators", []))]


@dataclass(frozen=True)
class Signature:
    key: str
    subgraph: int
    inputs: dict[str, int]    # name -> tensor index in that subgraph
    outputs: dict[str, int]


class Model:
    """A verified TFLite model, read lazily from a memory map.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str, buf, size: int, extent: int):
        self.path = path
        self.buf = buf
        self.size = size
        self.flatbuffer_extent = extent   # bytes the flatbuffer itself spans
        self.structure = None             # the tables the structure check verified (a Verified)
        self.coverage: Coverage | None = None   # the bytes each object covers, when opened with coverage=True
        self.warnings: list[str] = []     # what the runtime tolerates but is not right (see checks.py)
        self.root = Table(buf, int.from_bytes(buf[0:4], "little"), SCHEMA.tables["Model"], SCHEMA)

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for name in ("subgraphs", "operator_codes", "buffers", "metadata", "raw_metadata"):
            self.__dict__.pop(name, None)
        if isinstance(self.buf, mmap.mmap):
            self.buf.close()

    version = property(lambda self: self.root.get("version"))
    description = property(lambda self: self.root.get("description", ""))

    @cached_property
    def operator_codes(self) -> list[OpCode]:
        return [OpCode.from_table(i, t) for i, t in enumerate(self.root.get("operator_codes", []))]

    @cached_property
    def subgraphs(self) -> list[SubGraph]:
        return [SubGraph(i, t, self) for i, t in enumerate(self.root.get("subgraphs", []))]

    @cached_property
    def buffers(self) -> list[Buffer]:
        out = []
        for i, t in enumerate(self.root.get("buffers", [])):
            data = t.get("data")
            offset = t.get("offset")
            external = Span(offset, t.get("size")) if offset > 1 else None
            out.append(Buffer(i, data, external))
        return out

    @cached_property
    def raw_metadata(self) -> list[tuple[str, int]]:
        """(name, buffer index) for each Model.metadata entry, as stored."""
        return [(t.get("name", ""), t.get("buffer")) for t in self.root.get("metadata", [])]

    @cached_property
    def metadata(self) -> list[tuple[str, int]]:
        """The metadata entries whose buffer exists (the runtime ignores the others: a warning)."""
        n = len(self.buffers)
        return [(name, index) for name, index in self.raw_metadata if index < n]

    @property
    def min_runtime_version(self) -> str | None:
        """The converter's ``min_runtime_version`` metadata (the first entry; None if absent or empty)."""
        for name, index in self.metadata:
            if name == "min_runtime_version":
                return self.buffer_bytes(index, 64).split(b"\0", 1)[0].decode("ascii", "replace") or None
        return None

    @cached_property
    def signatures(self) -> list[Signature]:
        sigs = []
        for t in self.root.get("signature_defs", []):
            maps = [{m.get("name", ""): m.get("tensor_index") for m in t.get(side, [])} for side in ("inputs", "outputs")]
            sigs.append(Signature(t.get("signature_key", ""), t.get("subgraph_index"), *maps))
        return sigs

    def is_constant(self, tensor: Tensor) -> bool:
        """Whether the tensor's data is in the file: its buffer has a data vector (even an empty one,
        a zero-element constant's) or data stored outside the flatbuffer, as the runtime decides
        (interpreter_builder.cc ParseTensors). Buffer 0 and a buffer without data mean it has none."""
        if not tensor.buffer:
            return False
        buf = self.buffers[tensor.buffer]
        return buf.data is not None or buf.external is not None

    def read(self, span: Span, limit: int | None = None) -> bytes:
        """Copy out (at most ``limit`` bytes of) a span: only for small things."""
        end = span.offset + (span.size if limit is None else min(span.size, limit))
        return bytes(self.buf[span.offset:end])

    def buffer_bytes(self, index: int, limit: int | None = None) -> bytes:
        buf = self.buffers[index]
        span = buf.data or buf.external
        return self.read(span, limit) if span else b""


def _coverage(model: Model, spans: list) -> Coverage:
    """The flatbuffer's objects (as the verifier saw them) and the data stored outside it."""
    spans += [(b.external.offset, b.external.offset + b.external.size) for b in model.buffers if b.external]
    spans += [(c.offset, c.offset + c.size) for sg in model.subgraphs for op in sg.operators
              if (c := op.custom_options) is not None and op.t.get("large_custom_options_size")]
    return Coverage(spans)


def coverage_of(model: Model) -> Coverage:
    """``model.coverage``, recorded now by one more structure walk if the model was opened without it."""
    if model.coverage is None:
        spans: list = []
        verify_buffer(model.buf, SCHEMA, size=model.size, spans=spans)
        model.coverage = _coverage(model, spans)
    return model.coverage


def open_model(path: str | os.PathLike, verify: bool = True, trusted=None, coverage: bool = False) -> Model:
    """Map and verify a .tflite file.

    The bounds part of verification (FlatBuffer structure, index ranges, data
    extents) always runs; ``verify=False`` skips the semantic part. ``trusted``
    (a :class:`~.structure.Verified`) names tables verified before, not walked again.
    ``coverage``: also record which bytes each object covers (``Model.coverage``), for
    in-place edits. Raises :class:`ModelError` with a one-line description of the first problem.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise ModelError("empty file", path=path)
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise ModelError(e.strerror or str(e), path=path) from None
    return model_from_buffer(buf, path, verify, trusted, coverage)


def model_from_buffer(buf, name: str, verify: bool = True, trusted=None, coverage: bool = False) -> Model:
    """Verify and wrap a model already in memory (``bytes``, ``mmap``): e.g. a member of an archive.

    The model owns ``buf``: closing the model closes an mmap.
    """
    from .checks import check_bounds, check_semantics

    try:
        if len(buf) == 0:
            raise ModelError("empty file")
        spans = [] if coverage else None
        structure = verify_buffer(buf, SCHEMA, trusted=trusted, spans=spans)
        model = Model(name, buf, len(buf), structure.extent)
        model.structure = structure
        check_bounds(model)
        if coverage:
            model.coverage = _coverage(model, spans)
        if verify:
            check_semantics(model)
    except ModelError as e:
        if isinstance(buf, mmap.mmap):
            buf.close()
        e.path = name
        raise
    except BaseException:
        if isinstance(buf, mmap.mmap):
            buf.close()
        raise
    return model
