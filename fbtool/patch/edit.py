"""What a patch changes, as a small graph IR over the original model (nothing is written here).

Each subgraph's operators are a list of :class:`Op`: an original operator, maybe with new
inputs or a new op code, or a new one. Tensors are never renumbered: new tensors (constants,
such as a bias or re-laid-out weights) get the next indices, and a tensor nothing uses any
more stays in the table, unused. So ``tensor index`` is a stable name across a patch, which
is how a report matches the ops of the original and of the patched model.
:mod:`.emit` turns an :class:`Edit` into bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..reader.model import Model


@dataclass
class Op:
    original: int | None               # index in the original subgraph, None for a new op
    opcode: int | tuple[str, int]      # original opcode index, or (builtin name, version)
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: tuple[str, dict] | None = None   # (options table, fields) of a new builtin op

    @property
    def builtin(self) -> str | None:
        return self.opcode[0] if isinstance(self.opcode, tuple) else None


@dataclass
class NewTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    data: bytes | None = None          # constant bytes (little-endian), None for activations


@dataclass
class SubgraphEdit:
    ops: list[Op | None]                     # by original position; None once removed
    n_tensors: int
    tensors: list[NewTensor] = field(default_factory=list)
    outputs: tuple[int, ...] | None = None   # new subgraph outputs, when rewired
    before: dict[int, list[Op]] = field(default_factory=dict)   # new ops run before an original one

    def flat(self) -> list[Op]:
        """The patched subgraph's operators, in execution order."""
        return [o for i, op in enumerate(self.ops) for o in (*self.before.get(i, ()), op) if o is not None]


class Edit:
    def __init__(self, model: Model):
        self.model = model
        self.subgraphs: dict[int, SubgraphEdit] = {}
        self.weights: list[tuple[int, int, tuple, bytes | None]] = []   # (sg, tensor, shape, bytes)
        self.signature_outputs: dict[tuple[int, int], int] = {}         # (sg, old tensor) -> new

    def graph(self, sg: int) -> SubgraphEdit:
        if sg not in self.subgraphs:
            s = self.model.subgraphs[sg]
            ops = [Op(o.index, o.opcode_index, o.inputs, o.outputs) for o in s.operators]
            self.subgraphs[sg] = SubgraphEdit(ops, len(s.tensors))
        return self.subgraphs[sg]

    def op(self, sg: int, index: int) -> Op:
        """The op that stands at original position ``index`` (original ops are never reordered)."""
        return self.graph(sg).ops[index]

    # -- changes -------------------------------------------------------------------------------
    def replace(self, sg: int, index: int, builtin: str, version: int, inputs, outputs=None,
                options: tuple[str, dict] | None = None) -> None:
        old = self.op(sg, index)
        self.graph(sg).ops[index] = Op(old.original, (builtin, version), tuple(inputs),
                                       tuple(old.outputs if outputs is None else outputs), options)

    def insert_before(self, sg: int, index: int, op: Op) -> None:
        self.graph(sg).before.setdefault(index, []).append(op)

    def remove(self, sg: int, index: int) -> None:
        self.graph(sg).ops[index] = None

    def add_tensor(self, sg: int, tensor: NewTensor) -> int:
        g = self.graph(sg)
        g.tensors.append(tensor)
        return g.n_tensors + len(g.tensors) - 1

    def replace_uses(self, sg: int, old: int, new: int) -> None:
        """Every reader of tensor ``old`` (ops, the subgraph's and signatures' outputs) reads ``new``."""
        g = self.graph(sg)
        for op in g.flat():
            if old in op.inputs:
                op.inputs = tuple(new if i == old else i for i in op.inputs)
        outputs = self.model.subgraphs[sg].outputs if g.outputs is None else g.outputs
        if old in outputs:
            g.outputs = tuple(new if t == old else t for t in outputs)
            self.signature_outputs[(sg, old)] = new

    def retarget(self, sg: int, old: int, new: int) -> None:
        """The op that writes tensor ``old`` writes ``new`` instead."""
        op = next(o for o in self.graph(sg).flat() if old in o.outputs)
        op.outputs = tuple(new if t == old else t for t in op.outputs)

    def edit_weight(self, sg: int, tensor: int, shape: tuple, data: bytes | None) -> None:
        """Overwrite a constant in place: same rank, same byte size."""
        self.weights.append((sg, tensor, tuple(shape), data))
