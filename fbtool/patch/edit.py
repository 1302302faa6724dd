"""What a patch changes, as a small graph IR over the original model (nothing is written here).

Each subgraph's operators are a list of :class:`Op`: an original operator, maybe with new
inputs or a new op code, or a new one. Tensors are never renumbered: new tensors (constants,
such as a bias or re-laid-out weights) get the next indices, and a tensor nothing uses any
more stays in the table, unused. So ``tensor index`` is a stable name across a patch, which
is how a report matches the ops of the original and of the patched model.

The IR is the one place that knows who writes and who reads each tensor: every change goes
through :class:`SubgraphEdit`'s methods, which keep ``producer`` and ``readers`` right, so a
rewrite never has to work out (or get wrong) who else sees a tensor it touches. Tensors the
outside world names keep their index and their writer: the subgraph's inputs and outputs (a
WHILE or IF calls a subgraph by their positions) and every tensor a signature names.
:mod:`.emit` turns an :class:`Edit` into bytes.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..reader.model import Model


@dataclass(eq=False)
class Op:
    """One operator of the patched subgraph; compared by identity, like a node."""
    original: int | None               # index in the original subgraph, None for a new op
    opcode: int | tuple[str, int]      # original opcode index, or (builtin name, version)
    inputs: tuple[int, ...]            # change only through SubgraphEdit, which keeps the use lists
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
    quantization: tuple[list, list, int] | None = None   # (scales, zero points, quantized dimension)


class Unkeepable(Exception):
    """A tensor the outside world names would lose its writer; the message says which."""


class SubgraphEdit:
    def __init__(self, model: Model, sg: int):
        s = model.subgraphs[sg]
        self.ops: list[Op | None] = [Op(o.index, o.opcode_index, o.inputs, o.outputs) for o in s.operators]
        self.before: dict[int, list[Op]] = {}            # new ops run before an original one
        self.slot: dict[Op, int] = {}                    # new op -> the original position it runs before
        self.n_tensors = len(s.tensors)
        self.tensors: list[NewTensor] = []
        signed = {t for sig in model.signatures if sig.subgraph == sg for t in (*sig.inputs.values(), *sig.outputs.values())}
        self.pinned = frozenset(s.inputs) | frozenset(s.outputs) | signed
        self.producer: dict[int, Op] = {}
        self.readers: dict[int, dict[Op, None]] = {}     # an insertion-ordered set per tensor
        for op in self.ops:
            self._link(op)

    # -- the use lists -------------------------------------------------------------------------
    def _link(self, op: Op) -> None:
        for t in op.inputs:
            if t >= 0:
                self.readers.setdefault(t, {})[op] = None
        for t in op.outputs:
            self.producer[t] = op

    def _unlink(self, op: Op) -> None:
        for t in op.inputs:
            if t >= 0:
                self.readers.get(t, {}).pop(op, None)
        for t in op.outputs:
            if self.producer.get(t) is op:
                del self.producer[t]

    def readers_of(self, tensor: int) -> list[Op]:
        return list(self.readers.get(tensor, ()))

    def set_io(self, op: Op, inputs=None, outputs=None) -> None:
        """Give ``op`` new inputs and/or outputs."""
        self._unlink(op)
        if inputs is not None:
            op.inputs = tuple(inputs)
        if outputs is not None:
            op.outputs = tuple(outputs)
        self._link(op)

    def flat(self) -> list[Op]:
        """The patched subgraph's operators, in execution order."""
        return [o for i, op in enumerate(self.ops) for o in (*self.before.get(i, ()), op) if o is not None]

    # -- changes -------------------------------------------------------------------------------
    def put(self, index: int, op: Op | None) -> None:
        """Stand ``op`` (or nothing) at original position ``index``."""
        old = self.ops[index]
        if old is not None:
            self._unlink(old)
        self.ops[index] = op
        if op is not None:
            self._link(op)

    def insert_before(self, index: int, op: Op) -> None:
        self.before.setdefault(index, []).append(op)
        self.slot[op] = index
        self._link(op)

    def drop(self, op: Op) -> None:
        """Take out an op a rewrite inserted."""
        self._unlink(op)
        self.before[self.slot.pop(op)].remove(op)

    def replace_uses(self, old: int, new: int) -> None:
        """Every reader of tensor ``old`` reads ``new``. A pinned tensor is never given up this way."""
        if old in self.pinned:
            raise Unkeepable(f"tensor {old} is a subgraph input or output or a signature's: it keeps its readers")
        for op in self.readers_of(old):
            self.set_io(op, inputs=[new if t == old else t for t in op.inputs])

    def retarget(self, old: int, new: int) -> None:
        """The op that writes ``old`` writes ``new`` instead."""
        op = self.producer[old]
        self.set_io(op, outputs=[new if t == old else t for t in op.outputs])

    def bypass_plan(self, op: Op) -> list[tuple[int, int, str]]:
        """How to delete an op that passes each input through to the output at its position (Identity
        and its kin), keeping every pinned tensor's index and writer: per (input, output) pair,
        ``rewire`` (readers of the output read the input), ``retarget`` (the input's producer writes
        the pinned output, and the input's readers read it) or ``copy`` (the output stays a tensor of
        its own, written by a copy: a pinned input or output, or nothing produces the input)."""
        steps = []
        retargeted = set()
        for src, out in zip(op.inputs, op.outputs):
            if out not in self.pinned:
                steps.append((src, out, "rewire"))
            elif src not in self.pinned and src in self.producer and src not in retargeted \
                    and self.producer[src] is not op:
                steps.append((src, out, "retarget"))
                retargeted.add(src)
            else:
                steps.append((src, out, "copy"))
        return steps


class Edit:
    def __init__(self, model: Model):
        self.model = model
        self.subgraphs: dict[int, SubgraphEdit] = {}
        self.weights: list[tuple[int, int, tuple, bytes | None]] = []   # (sg, tensor, shape, bytes)

    def graph(self, sg: int) -> SubgraphEdit:
        if sg not in self.subgraphs:
            self.subgraphs[sg] = SubgraphEdit(self.model, sg)
        return self.subgraphs[sg]

    def op(self, sg: int, index: int) -> Op:
        """The op that stands at original position ``index`` (original ops are never reordered)."""
        return self.graph(sg).ops[index]

    # -- changes -------------------------------------------------------------------------------
    def replace(self, sg: int, index: int, builtin: str, version: int, inputs, outputs=None,
                options: tuple[str, dict] | None = None) -> None:
        old = self.op(sg, index)
        self.graph(sg).put(index, Op(old.original, (builtin, version), tuple(inputs),
                                     tuple(old.outputs if outputs is None else outputs), options))

    def insert_before(self, sg: int, index: int, op: Op) -> None:
        self.graph(sg).insert_before(index, op)

    def remove(self, sg: int, index: int) -> None:
        self.graph(sg).put(index, None)

    def add_tensor(self, sg: int, tensor: NewTensor) -> int:
        g = self.graph(sg)
        g.tensors.append(tensor)
        return g.n_tensors + len(g.tensors) - 1

    def replace_uses(self, sg: int, old: int, new: int) -> None:
        self.graph(sg).replace_uses(old, new)

    def retarget(self, sg: int, old: int, new: int) -> None:
        self.graph(sg).retarget(old, new)

    def bypass(self, sg: int, index: int, copy) -> list[Op]:
        """Delete the pass-through op at ``index`` (see :meth:`SubgraphEdit.bypass_plan`); ``copy(src,
        out)`` makes the op that copies where a pinned tensor needs one (it raises when it cannot, and
        then nothing has changed). Returns the copies made."""
        g = self.graph(sg)
        op = g.ops[index]
        steps = g.bypass_plan(op)
        copies = [copy(src, out) for src, out, how in steps if how == "copy"]
        g.put(index, None)
        for new in copies:
            g.insert_before(index, new)
        for src, out, how in steps:     # rewires first: a retarget then carries their readers along
            if how == "rewire":
                g.replace_uses(out, src)
        for src, out, how in steps:
            if how == "retarget":
                g.replace_uses(src, out)
                g.retarget(src, out)
        return copies

    def edit_weight(self, sg: int, tensor: int, shape: tuple, data: bytes | None) -> None:
        """Overwrite a constant in place: same rank, same byte size."""
        self.weights.append((sg, tensor, tuple(shape), data))
