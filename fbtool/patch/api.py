"""The rewrite API: how a rule sees the model being patched, and how it says what to change.

A rule never edits anything. It looks at a :class:`Graph` (one subgraph, as the patch has left it
so far: producers and readers are the IR's own, kept up to date by every change) and returns a
declared result:

- :class:`Rewrite`: these original ops (one, or several fused) become these builtin :class:`Step`\\ s,
  placed where the first of them was. Operands are tensor indices, ``-1``, or new tensors:
  :class:`Const` (new constant data), :class:`Temp` (a new activation between steps) and
  :class:`Relaid` (an existing constant, maybe stored as float16 or int8 behind a DEQUANTIZE, with
  a new layout or folded values);
- :class:`Bypass`: a pass-through op (Identity and kin) disappears, its readers read its input;
- :class:`Remove`: ops whose results no one reads any more are deleted;
- or it raises :class:`NoRule` saying why the op stays.

:mod:`.engine` applies results (checking that no tensor is left without a writer) and records an
:class:`Outcome` per op. See docs/rewrites.md for a walk-through of adding a rule and a fusion.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from ..flex.catalog import Verdict
from ..reader.model import Model
from .edit import Edit, Op, SubgraphEdit

Key = tuple[int, int]          # (subgraph, index of the op in the original subgraph)
NUMPY = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int64": np.int64, "int8": np.int8,
         "uint8": np.uint8, "int16": np.int16, "bool": np.bool_}


class NoRule(Exception):
    """The op (or pattern) cannot be rewritten here; the message says why, for the user."""


# -- what a rule returns ----------------------------------------------------------------------------
@dataclass(eq=False)
class Const:
    """A new constant operand (its dtype is the array's)."""
    values: np.ndarray
    name: str


@dataclass(eq=False)
class Temp:
    """A new activation tensor, written by one step and read by a later one."""
    dtype: str
    shape: tuple[int, ...]
    name: str


@dataclass(eq=False)
class Relaid:
    """An existing constant ``tensor`` in a new layout: ``transform`` re-lays out an array of any
    dtype (a transpose, a reshape), applied to the data as stored (float32, or the float16 or int8
    behind a DEQUANTIZE, which then stays); ``scale`` multiplies each output channel (a folded
    BatchNorm), ``channel_axis`` saying where output channels lie in the new layout."""
    tensor: int
    transform: Callable[[np.ndarray], np.ndarray]
    suffix: str
    scale: np.ndarray | None = None
    channel_axis: int = 0


Operand = int | Const | Temp | Relaid


@dataclass
class Step:
    builtin: str
    version: int
    inputs: list
    outputs: list
    options: tuple[str, dict] | None = None     # (options table, fields)


@dataclass
class Rewrite:
    ops: tuple[Key, ...]          # the original ops it computes; they go where the first of them was
    steps: list[Step]
    main: int = -1                # the step that is "the" builtin in reports (the others are listed as inserted)
    shapes: dict = field(default_factory=dict)   # an output's shape, where the model stores none (unranked)

    @classmethod
    def one(cls, node: "Node", builtin: str, version: int, inputs, outputs=None, options=None) -> "Rewrite":
        return cls((node.key,), [Step(builtin, version, list(inputs), list(node.outputs if outputs is None else outputs),
                                      options)])


@dataclass
class Bypass:
    op: Key


@dataclass
class Remove:
    """Ops that compute nothing anyone reads any more (a hash table no lookup uses): deleted."""
    ops: tuple[Key, ...]


class Build:
    """A decomposition written as a formula: each call appends one builtin step and returns the
    tensor it writes (a :class:`Temp` shaped by broadcasting the inputs, typed like the first one
    unless told); :meth:`rewrite` makes the last values the op's outputs.

    ``b("ADD", x, b.const(1.0))`` is ADD(x, 1) with a float32 constant like ``x``."""

    def __init__(self, node: "Node", g: "Graph"):
        self.node, self.g = node, g
        self.steps: list[Step] = []
        self.base = g.name(node.outputs[0])

    def dtype(self, t) -> str:
        return dtype_of(t.values) if isinstance(t, Const) else self.g.dtype(t)

    def shape(self, t) -> tuple[int, ...]:
        return tuple(np.shape(t.values)) if isinstance(t, Const) else self.g.shape(t)

    def const(self, value, dtype: str | None = None, like=None) -> Const:
        """A constant of ``dtype``, or of the dtype of ``like`` (the op's first input by default)."""
        dtype = dtype or self.dtype(self.node.inputs[0] if like is None else like)
        return Const(np.asarray(value, NUMPY[dtype]), f"{self.base}/c{len(self.steps)}_{dtype}")

    def __call__(self, builtin: str, *inputs, version: int = 1, options=None, dtype: str | None = None,
                 shape=None) -> Temp:
        shape = broadcast_shape(*(self.shape(t) for t in inputs)) if shape is None else tuple(shape)
        out = Temp(dtype or self.dtype(inputs[0]), shape, f"{self.base}/{builtin.lower()}{len(self.steps)}")
        self.steps.append(Step(builtin, version, list(inputs), [out], options))
        return out

    def where(self, condition, a, b) -> Temp:
        """SELECT_V2: ``a`` where ``condition`` holds, else ``b``."""
        return self("SELECT_V2", condition, a, b, dtype=self.dtype(a))

    def test(self, builtin: str, *inputs) -> Temp:
        """A comparison or logical builtin: a bool tensor."""
        return self(builtin, *inputs, dtype="bool")

    def several(self, builtin: str, inputs: list, outputs: list[tuple[str, tuple]], options=None,
                version: int = 1) -> list[Temp]:
        """A step with several outputs, each given as (dtype, shape)."""
        outs = [Temp(dtype, tuple(shape), f"{self.base}/{builtin.lower()}{len(self.steps)}_{i}")
                for i, (dtype, shape) in enumerate(outputs)]
        self.steps.append(Step(builtin, version, list(inputs), outs, options))
        return outs

    def rewrite(self, *results: Temp, main: int = -1) -> Rewrite:
        """The op's outputs become ``results`` (each written by one of the steps)."""
        swap = {id(r): out for r, out in zip(results, self.node.outputs)}
        if len(swap) != len(self.node.outputs):
            raise NoRule("a decomposition must give every output of the op")
        for s in self.steps:
            s.inputs = [swap.get(id(t), t) for t in s.inputs]
            s.outputs = [swap.get(id(t), t) for t in s.outputs]
        shapes = {out: tuple(r.shape) for r, out in zip(results, self.node.outputs)
                  if isinstance(r, Temp) and r.shape and not self.g.shape(out)}
        return Rewrite((self.node.key,), self.steps, main, shapes)


def broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """numpy broadcasting of static shapes; a dynamic dimension (-1) stays dynamic unless the
    other side has a size above 1."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for dims in zip(*[(1,) * (rank - len(s)) + tuple(s) for s in shapes]):
        sized = {d for d in dims if d > 1}
        if len(sized) > 1:
            raise NoRule(f"shapes {' and '.join(map(str, shapes))} do not broadcast")
        out.append(sized.pop() if sized else (-1 if -1 in dims else 1))
    return tuple(out)


def dtype_of(values) -> str:
    """The TFLite type name of an array's dtype."""
    kind = np.asarray(values).dtype
    for name, numpy_type in NUMPY.items():
        if kind == numpy_type:
            return name
    raise NoRule(f"no TFLite type for {kind}")


# -- what a rule sees -------------------------------------------------------------------------------
@dataclass
class Node:
    """One op of the graph being patched: an original op (``key``) or one a rewrite added."""
    graph: "Graph"
    op: Op
    tf_op: str | None = None       # the TF op of an original Flex op
    attrs: dict = field(default_factory=dict)
    verdict: Verdict | None = None

    @property
    def key(self) -> Key | None:
        return None if self.op.original is None else (self.graph.sg, self.op.original)

    inputs = property(lambda self: self.op.inputs)
    outputs = property(lambda self: self.op.outputs)

    @property
    def builtin(self) -> str | None:
        """The builtin this op is now (None while it is a Flex or custom op)."""
        if self.op.builtin:
            return self.op.builtin
        code = self.graph.model.operator_codes[self.op.opcode]
        return code.name if code.kind == "builtin" else None

    @property
    def candidate(self) -> bool:
        """An original Flex op no rewrite has taken yet."""
        return self.tf_op is not None and self.op.builtin is None


@dataclass
class Weight:
    """A constant operand as a rule may re-lay it out: float32 values, and where they are stored."""
    tensor: int                  # what the op reads
    values: np.ndarray           # float32, in the op's view
    stored: int                  # the constant tensor holding the data (== tensor unless dequantized)
    dequantize: Node | None      # the DEQUANTIZE between them


class Graph:
    """One subgraph as the patch has left it so far; built by :mod:`.engine`."""

    def __init__(self, model: Model, edit: Edit, sg: int, flex: dict):
        self.model, self.edit, self.sg = model, edit, sg
        self.ir: SubgraphEdit = edit.graph(sg)
        self._flex = flex                    # original index -> (tf_op, attrs, verdict)
        self._nodes: dict[int, Node] = {}
        self.siblings: list[Graph] = [self]  # every subgraph with Flex ops, set by the engine
        self.known: dict[int, tuple] = {}    # shapes rewrites found for tensors stored without one

    def graphs(self) -> list["Graph"]:
        """This and the model's other subgraphs with Flex ops (a table is filled in one, read in another)."""
        return self.siblings

    def flex_nodes(self, tf_op: str) -> list[Node]:
        """The original Flex ops of ``tf_op`` still in the graph."""
        return [n for n in (self.at(i) for i, (op, *_) in sorted(self._flex.items()) if op == tf_op) if n is not None]

    # -- ops ------------------------------------------------------------------------------------
    def node(self, op: Op) -> Node:
        found = self._nodes.get(id(op))
        if found is None or found.op is not op:
            tf_op, attrs, verdict = self._flex.get(op.original, (None, {}, None)) if op.original is not None \
                else (None, {}, None)
            found = self._nodes[id(op)] = Node(self, op, tf_op, attrs, verdict)
        return found

    def at(self, index: int) -> Node | None:
        """The op standing at original position ``index`` (None once removed)."""
        op = self.ir.ops[index]
        return None if op is None else self.node(op)

    def producer(self, tensor: int) -> Node | None:
        op = self.ir.producer.get(tensor)
        return None if op is None else self.node(op)

    def readers(self, tensor: int) -> list[Node]:
        return [self.node(op) for op in self.ir.readers_of(tensor)]

    def sole_reader(self, tensor: int) -> Node | None:
        """The one op reading ``tensor`` when exactly one does and no one outside the graph sees it."""
        readers = self.ir.readers_of(tensor)
        return self.node(readers[0]) if len(readers) == 1 and tensor not in self.ir.pinned else None

    def only_within(self, tensors, keys) -> bool:
        """No op outside ``keys`` reads any of ``tensors``, and none of them is pinned: a fusion may
        take them away."""
        keys = set(keys)
        return all(t not in self.ir.pinned and all(self.node(op).key in keys for op in self.ir.readers_of(t))
                   for t in tensors)

    # -- tensors --------------------------------------------------------------------------------
    @cached_property
    def _tensors(self):
        return self.model.subgraphs[self.sg].tensors

    def dtype(self, tensor: int) -> str:
        return self._tensor(tensor)[0]

    def shape(self, tensor: int) -> tuple[int, ...]:
        """The shape, -1 for dynamic dimensions."""
        return self._tensor(tensor)[1]

    def name(self, tensor: int) -> str:
        return self._tensor(tensor)[2]

    def _tensor(self, t) -> tuple[str, tuple, str]:
        if isinstance(t, Temp):          # a step's new tensor, as a later step of the same rule sees it
            return t.dtype, tuple(t.shape), t.name
        if t < self.ir.n_tensors:
            x = self._tensors[t]
            return x.dtype, self.known.get(t, tuple(x.shape_signature)), x.name
        new = self.ir.tensors[t - self.ir.n_tensors]
        return new.dtype, tuple(new.shape), new.name

    def pinned(self, tensor: int) -> bool:
        return tensor in self.ir.pinned

    def constant(self, tensor: int) -> np.ndarray | None:
        """A constant's values (float32 for a dequantized one), or None for an activation."""
        w = self.weight(tensor)
        return None if w is None else w.values

    def scalar(self, tensor: int) -> float | None:
        c = self.constant(tensor)
        return float(c.ravel()[0]) if c is not None and c.size == 1 else None

    def weight(self, tensor: int) -> Weight | None:
        """A constant, also when stored as float16 or int8 behind a DEQUANTIZE (how quantized
        SELECT_TF_OPS models feed their weights); None for activations and unreadable types."""
        raw = self._stored(tensor)
        if raw is not None:
            return Weight(tensor, raw.astype(np.float32) if raw.dtype == np.float16 else raw, tensor, None)
        deq = self.producer(tensor)
        if deq is None or deq.builtin != "DEQUANTIZE" or len(deq.inputs) != 1:
            return None
        stored = deq.inputs[0]
        raw = self._stored(stored)
        if raw is None:
            return None
        if raw.dtype == np.float16:
            return Weight(tensor, raw.astype(np.float32), stored, deq)
        q = self._quantization(stored)
        if q is None or raw.dtype not in (np.int8, np.uint8, np.int16):
            return None
        scale, zero, axis = q
        shape = [1] * raw.ndim
        if scale.size > 1:
            shape[axis] = scale.size
        values = (raw.astype(np.float32) - zero.reshape(shape)) * scale.reshape(shape)
        return Weight(tensor, values.astype(np.float32), stored, deq)

    def half(self, tensor: int) -> bool:
        """Whether a constant is stored as float16 (as such, or behind a DEQUANTIZE): its values
        carry about three decimal digits."""
        w = self.weight(tensor)
        return w is not None and self.dtype(w.stored) == "float16"

    def _stored(self, tensor: int) -> np.ndarray | None:
        if tensor < 0 or tensor >= self.ir.n_tensors:
            new = self.ir.tensors[tensor - self.ir.n_tensors] if tensor >= self.ir.n_tensors else None
            if new is None or new.data is None or new.dtype not in NUMPY:
                return None
            return np.frombuffer(new.data, NUMPY[new.dtype]).reshape(new.shape)
        t = self._tensors[tensor]
        if not self.model.is_constant(t) or t.dtype not in NUMPY or any(d < 0 for d in t.shape):
            return None
        return np.frombuffer(self.model.buffer_bytes(t.buffer), NUMPY[t.dtype]).reshape(t.shape)

    def _quantization(self, tensor: int) -> tuple[np.ndarray, np.ndarray, int] | None:
        q = self._tensors[tensor].quantization if tensor < self.ir.n_tensors else None
        if q is None or not q.has("scale"):
            return None
        scale = np.array(q.get("scale", ()), np.float32)
        zero = np.array(q.get("zero_point", ()) or [0] * scale.size, np.float32)
        return scale, zero, q.get("quantized_dimension")

    def static_value(self, tensor: int, depth: int = 16) -> int | None:
        """An integer scalar the graph computes but that can take one value only (a constant, or
        MINIMUM/MAXIMUM of it with bounds that meet: Keras' bincount size min(max(n, V), V)), or None."""
        lo, hi = self._bounds(tensor, depth)
        return int(lo) if lo == hi else None

    def _bounds(self, tensor: int, depth: int) -> tuple[float, float]:
        value = self.constant(tensor)
        if value is not None:
            return (float(value.ravel()[0]),) * 2 if value.size == 1 and value.dtype.kind in "iu" \
                else (-np.inf, np.inf)
        op = self.producer(tensor)
        if depth == 0 or op is None or op.builtin not in ("MINIMUM", "MAXIMUM") or len(op.inputs) != 2:
            return -np.inf, np.inf
        (lo_a, hi_a), (lo_b, hi_b) = (self._bounds(t, depth - 1) for t in op.inputs)
        pick = max if op.builtin == "MAXIMUM" else min
        return pick(lo_a, lo_b), pick(hi_a, hi_b)

    def quantization(self, tensor: int):
        """(scale, zero_point, quantized_dimension) of a quantized constant, or None."""
        return self._quantization(tensor)


@dataclass
class Outcome:
    """What became of one original Flex or custom op (typed; JSON only at the edge, :meth:`to_json`)."""
    key: Key
    custom_code: str
    tf_op: str
    status: str                    # rewritten | fused | removed | kept
    rule: str | None = None
    builtin: str | None = None
    version: int | None = None
    fused_into: int | None = None
    inserted: list[str] = field(default_factory=list)
    reason: str | None = None
    min_runtime: str | None = None
    unread: bool = False           # removed because nothing read it any more (not bypassed)

    def to_json(self) -> dict:
        """An entry of ``rewrites`` or ``kept`` in schemas/patch.schema.json."""
        out = {"subgraph": self.key[0], "index": self.key[1], "custom_code": self.custom_code, "tf_op": self.tf_op}
        if self.status == "kept":
            return {**out, "reason": self.reason}
        out.update(rule=self.rule, builtin=self.builtin, version=self.version, min_runtime=self.min_runtime)
        if self.status == "fused":
            out["fused_into"] = self.fused_into
        if self.status == "removed":
            out["removed"] = True
            if self.unread:
                out["unread"] = True
        if self.inserted:
            out["inserted"] = list(self.inserted)
        return out


def inserted_text(inserted: list[str]) -> str:
    """"RESHAPE v1, UNPACK v1, MUL v1 x9, SUB v1 x4": the builtins inserted, counted, in order."""
    counts: dict[str, int] = {}
    for name in inserted:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(name if n == 1 else f"{name} x{n}" for name, n in counts.items())


# -- declarations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """How one TF op becomes builtins: ``rewrite(node, graph)`` returns a result or raises NoRule."""
    tf_op: str
    rewrite: Callable[[Node, Graph], Rewrite | Bypass]
    kind: str = "options"          # the catalog's word for it: code, options, weights, remove, pattern


@dataclass(frozen=True)
class Pattern:
    """Several ops matched as one: ``match(anchor, graph)`` returns a Rewrite or None. Tried at every
    op whose TF op is an anchor, before the per-op rules, in registry order."""
    name: str
    anchors: frozenset
    match: Callable[[Node, Graph], Rewrite | None]
    doc: str = ""
