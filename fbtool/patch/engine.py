"""The patch planner: run the patterns, then the per-op rules, and apply what they return.

Match and rewrite are apart: rules and patterns (:mod:`.rules`) only look at a :class:`~.api.Graph`
and return a declared result; :func:`apply_result` is the one place that changes the IR, and it
first checks the result is sound: every tensor the replaced ops wrote is written again or read by
no one else, every operand is ready where the new ops go, a re-laid-out weight is edited in place
only when nothing else covers its bytes. One :class:`~.api.Outcome` per Flex or custom op says
what became of it.
"""
from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..flex.catalog import TensorInfo, load_catalog, version_tuple
from ..flex.decode import decode_ops
from ..reader.model import Model, coverage_of
from .api import Bypass, Const, Graph, Key, NoRule, Outcome, Relaid, Remove, Rewrite, Step, Temp, dtype_of
from .edit import Edit, NewTensor, Op
from .writer import data_span, vector_span


PASSES = 3              # rounds of per-op rules, while a removal may yet apply (its readers went later)
# builtins that do more than compute their outputs (state, control flow, I/O), never dropped as dead
EFFECTS = frozenset({"CALL_ONCE", "CALL", "IF", "WHILE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
                     "HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE", "RANDOM_UNIFORM",
                     "RANDOM_STANDARD_NORMAL", "MULTINOMIAL", "STABLEHLO_RNG_BIT_GENERATOR", "STABLEHLO_CUSTOM_CALL",
                     "STABLEHLO_COMPOSITE", "STABLEHLO_WHILE", "STABLEHLO_CASE", "DELEGATE", "CUSTOM"})


@dataclass
class Plan:
    edit: Edit
    outcomes: list[Outcome] = field(default_factory=list)   # one per Flex or custom op, in op order

    @property
    def rewrites(self) -> list[dict]:
        return [o.to_json() for o in self.outcomes if o.status != "kept"]

    @property
    def kept(self) -> list[dict]:
        return [o.to_json() for o in self.outcomes if o.status == "kept"]


def plan(model: Model, only: set[str] | None = None, skip: set[str] | None = None, decoded=None) -> Plan:
    """What would change. ``only``/``skip``: rule names (a TF op name or a pattern name);
    ``decoded``: :func:`~fbtool.flex.decode.decode_ops` of the model, when already at hand."""
    from .rules import PATTERNS, RULES

    catalog = load_catalog()
    edit = Edit(model)
    allowed = lambda name: (only is None or name in only) and name not in (skip or ())  # noqa: E731
    outcomes: dict[Key, Outcome] = {}
    flex: dict[int, dict] = {}            # subgraph -> original index -> (tf_op, attrs, verdict)
    twice = _written_twice(model)
    dequantized = _dequantized(model)
    verdicts = {}
    for d in decoded if decoded is not None else decode_ops(model):
        key = (d.subgraph, d.index)
        op = model.subgraphs[d.subgraph].operators[d.index]
        kept = Outcome(key, d.custom_code, d.tf_op, "kept")
        touched = sorted(t for t in (*op.inputs, *op.outputs) if (d.subgraph, t) in twice)
        if d.kind != "flex" or d.error:
            kept.reason = d.error or "custom op: no rule rewrites custom ops"
        elif touched:
            kept.reason = f"tensor {touched[0]} is written by more than one op (a model warning): fbtool does not " \
                          "rewire around it"
        outcomes[key] = kept
        if kept.reason:
            continue
        attrs = {**((catalog.entry(d.tf_op) or {}).get("attr_defaults") or {}), **d.attrs}
        infos = tuple(_info(model, d.subgraph, t, dequantized) for t in op.inputs if t >= 0)
        # decode_ops hands identical NodeDefs the same attrs object: a long chain of one op is judged once
        vkey = (d.tf_op, id(d.attrs), infos)
        if vkey not in verdicts:
            verdicts[vkey] = catalog.assess(d.tf_op, d.attrs, list(infos))
        flex.setdefault(d.subgraph, {})[d.index] = (d.tf_op, attrs, verdicts[vkey])
    graphs = {sg: Graph(model, edit, sg, ops) for sg, ops in flex.items()}
    for g in graphs.values():
        g.siblings = list(graphs.values())
    done: set[Key] = set()

    for pattern in PATTERNS:
        if not allowed(pattern.name):
            continue
        for sg, g in graphs.items():
            for index in sorted(flex[sg]):
                node = g.at(index)
                if node is None or not node.candidate or node.tf_op not in pattern.anchors or node.key in done:
                    continue
                result = pattern.match(node, g)
                # a pattern takes no op that is taken already or whose TF op the user skipped
                if result is None or any(k in done or k[1] not in flex.get(k[0], {}) or flex[k[0]][k[1]][0] in
                                         (skip or ()) for k in result.ops):
                    continue
                try:
                    made = apply_result(g, result, pattern.name)
                except NoRule:
                    continue
                _record(outcomes, made)
                done.update(made)

    for _ in range(PASSES):       # removals wait for what read the op to be rewritten first
        before = len(done)
        for sg, g in graphs.items():
            for index in sorted(flex[sg]):
                key = (sg, index)
                if key in done:
                    continue
                node = g.at(index)
                try:
                    made = _single(node, g, catalog, RULES, allowed)
                except NoRule as e:
                    outcomes[key].reason = str(e)
                    continue
                _record(outcomes, made)
                done.update(made)
        retry = any(getattr(RULES.get(flex[k[0]][k[1]][0]), "kind", None) == "remove"
                    for k in outcomes if k not in done and k[1] in flex.get(k[0], {}))
        if len(done) == before or not retry:
            break

    for g in graphs.values():
        _drop_dead(g)
        _cancel_shape_pairs(g)
    result = Plan(edit, [outcomes[k] for k in sorted(outcomes)])
    for o in result.outcomes:
        if o.status in ("rewritten", "removed"):
            needs = [catalog.min_runtime(*_name_version(b)) for b in ([f"{o.builtin} v{o.version}"] if o.builtin
                                                                       else []) + o.inserted]
            needs = [n for n in needs if n]
            o.min_runtime = max(needs, key=version_tuple) if needs else None
    for o in result.outcomes:      # a fused op needs what the op it is fused into needs
        if o.status == "fused":
            o.min_runtime = outcomes[(o.key[0], o.fused_into)].min_runtime
    return result


def _cancel_shape_pairs(g: Graph) -> None:
    """A new RESHAPE (or SQUEEZE) straight into a new RESHAPE (or EXPAND_DIMS) that gives the shape
    back (a Conv1D's own after the one before it, once what stood between them is fused away):
    both go, as the converter drops them."""
    shaping = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
    for s in [op for ops in g.ir.before.values() for op in ops if op.builtin in shaping]:
        if s not in g.ir.slot:
            continue
        readers = g.ir.readers_of(s.outputs[0])
        if len(readers) != 1 or readers[0].builtin not in shaping or g.pinned(s.outputs[0]):
            continue
        e = readers[0]
        if e not in g.ir.slot or e.inputs[0] != s.outputs[0] or g.pinned(e.outputs[0]) \
                or g.shape(e.outputs[0]) != g.shape(s.inputs[0]):
            continue
        g.ir.replace_uses(e.outputs[0], s.inputs[0])
        g.ir.drop(e)
        g.ir.drop(s)


def _drop_dead(g: Graph) -> None:
    """Original builtins whose readers all went (a DEQUANTIZE of a constant a rewrite folded, the
    ops computing a size a decomposition found static) run for no one: they go too, last first,
    so what fed only them goes as well. Ops with effects stay, and so does what was dead from the
    start."""
    for index in reversed(range(len(g.ir.ops))):
        op = g.ir.ops[index]
        if op is None or op.builtin is not None:
            continue
        builtin = g.node(op).builtin
        if builtin is None or builtin in EFFECTS or not op.outputs \
                or any(g.readers(t) or g.pinned(t) for t in op.outputs) or not _was_read(g, index):
            continue
        g.ir.put(index, None)


def _was_read(g: Graph, index: int) -> bool:
    """Whether the original op's outputs had readers (a DEQUANTIZE dead from the start stays as it was)."""
    sg = g.model.subgraphs[g.sg]
    outs = set(sg.operators[index].outputs)
    return any(outs & set(op.inputs) for op in sg.operators) or bool(outs & set(sg.outputs))


def _info(model: Model, sg: int, t: int, dequantized: set) -> TensorInfo:
    """An input as the catalog judges it: a DEQUANTIZE of a constant is a constant too (quantized
    models feed their weights that way)."""
    tensor = model.subgraphs[sg].tensors[t]
    return TensorInfo(tensor.dtype, tuple(tensor.shape_signature), model.is_constant(tensor) or (sg, t) in dequantized)


def _dequantized(model: Model) -> set[tuple[int, int]]:
    out = set()
    for sg in model.subgraphs:
        for op in sg.operators:
            if op.opcode.name == "DEQUANTIZE" and len(op.inputs) == 1 and op.outputs \
                    and model.is_constant(sg.tensors[op.inputs[0]]):
                out.add((sg.index, op.outputs[0]))
    return out


def _written_twice(model: Model) -> set[tuple[int, int]]:
    """(subgraph, tensor) for tensors more than one op writes: the runtime runs such models (a
    warning), but which write a reader sees depends on op order, so no rewrite touches them."""
    out = set()
    for sg in model.subgraphs:
        seen = set()
        for op in sg.operators:
            for t in op.outputs:
                (out.add((sg.index, t)) if t in seen else seen.add(t))
    return out


def _name_version(text: str) -> tuple[str, int]:
    name, version = text.rsplit(" v", 1)
    return name, int(version)


def _single(node, g: Graph, catalog, rules: dict, allowed) -> dict[Key, Outcome]:
    """One Flex op through its per-op rule; NoRule says why it stays."""
    tf_op, verdict = node.tf_op, node.verdict
    kind = (catalog.entry(tf_op) or {}).get("rewrite")
    rule = rules.get(tf_op)
    if not verdict.rewritable:
        raise NoRule(verdict.reason)
    if not allowed(tf_op):
        raise NoRule("left out by --only/--skip")
    if rule is None:
        target = f"builtin {verdict.builtin}" if verdict.builtin else "a decomposition"
        raise NoRule(f"{target} exists, but fbtool does not yet do this '{kind}' rewrite")
    result = rule.rewrite(node, g)
    return apply_result(g, result, kind or rule.kind)


def _record(outcomes: dict[Key, Outcome], made: dict[Key, Outcome]) -> None:
    for key, o in made.items():
        old = outcomes[key]
        o.custom_code, o.tf_op = old.custom_code, old.tf_op
        outcomes[key] = o


# -- applying a result ---------------------------------------------------------------------------------
def apply_result(g: Graph, result: Rewrite | Bypass | Remove, rule: str) -> dict[Key, Outcome]:
    """Make the change a rule declared; raise NoRule (having changed nothing) when it is not sound."""
    if isinstance(result, Bypass):
        return _bypass(g, result, rule)
    if isinstance(result, Remove):
        return _remove(g, result, rule)
    ir, keys = g.ir, list(result.ops)
    old = [ir.ops[k[1]] for k in keys]
    if any(op is None for op in old):
        raise NoRule("an op of the rewrite is gone already")
    first = min(k[1] for k in keys)
    written = {t for op in old for t in op.outputs}
    outs = {t for s in result.steps for t in s.outputs if isinstance(t, int)}
    if outs - written:
        raise NoRule(f"the rewrite would write tensor {min(outs - written)}, which another op writes")
    for t in written - outs:       # a tensor no one writes any more: only the replaced ops may read it
        if not g.only_within([t], keys):
            raise NoRule(f"tensor {t} would be left without a writer")
    made = _Materials(g, set(keys), first, old, outs)
    steps = [made.step(s) for s in result.steps]     # may raise NoRule: nothing changed yet
    made.commit()
    g.known.update(result.shapes)
    for s in steps:
        s.resolve()
    for index in sorted(k[1] for k in keys):
        ir.put(index, None)
    for s in made.before + steps:
        ir.insert_before(first, s)
    main = result.steps[result.main]
    inserted = [f"{s.builtin} v{s.version}" for s in result.steps if s is not main] + made.inserted
    primary = keys[0]
    outcomes = {primary: Outcome(primary, "", "", "rewritten", rule, main.builtin, main.version, inserted=inserted)}
    for k in keys[1:]:
        outcomes[k] = Outcome(k, "", "", "fused", rule, fused_into=primary[1])
    return outcomes


def _remove(g: Graph, result: Remove, rule: str) -> dict[Key, Outcome]:
    keys = list(result.ops)
    ops = [g.ir.ops[k[1]] for k in keys]
    if any(op is None for op in ops) or any(k[0] != g.sg for k in keys):
        raise NoRule("an op to remove is gone already, or in another subgraph")
    if not g.only_within([t for op in ops for t in op.outputs], keys):
        raise NoRule("what the ops compute is still read")
    for k in keys:
        g.ir.put(k[1], None)
    return {k: Outcome(k, "", "", "removed", rule, unread=True) for k in keys}


def _order(ir, op: Op) -> float:
    """Where ``op`` runs, by original position (a new op runs just before the slot it was put at)."""
    return op.original if op.original is not None else ir.slot[op] - 0.5


def _bypass(g: Graph, result: Bypass, rule: str) -> dict[Key, Outcome]:
    from .rules.identity import copy_op      # the copy a pinned tensor needs

    copies = g.edit.bypass(g.sg, result.op[1], lambda src, out: copy_op(g, src, out))
    return {result.op: Outcome(result.op, "", "", "removed", rule,
                               inserted=[f"{op.builtin} v{op.opcode[1]}" for op in copies])}


class _Materials:
    """The new tensors and in-place weight edits a rewrite's operands need: worked out first
    (NoRule if impossible), committed only once the whole rewrite is known to be sound."""

    def __init__(self, g: Graph, keys: set, first: int, old: list, outs: set):
        self.g, self.keys, self.first, self.old, self.outs = g, keys, first, old, outs
        self.ids: dict[int, object] = {}
        self.new: list = []            # (placeholder, NewTensor) to add, in order
        self.edits: list = []          # (tensor, shape, bytes) in-place weight edits
        self.before: list[Op] = []     # DEQUANTIZE ops a rewrite needs before its own
        self.inserted: list[str] = []

    def step(self, s: Step) -> Op:
        return _PendingOp(s.builtin, s.version, [self.operand(t) for t in s.inputs],
                          [self.operand(t) for t in s.outputs], s.options)

    def operand(self, t):
        if isinstance(t, int):
            return self._ready(t)
        if id(t) not in self.ids:
            if isinstance(t, Const):
                v = np.asarray(t.values)       # (ascontiguousarray would make a scalar 1-D)
                self.ids[id(t)] = self._add(NewTensor(t.name, dtype_of(v), v.shape, v.tobytes()))
            elif isinstance(t, Temp):
                self.ids[id(t)] = self._add(NewTensor(t.name, t.dtype, tuple(t.shape)))
            elif isinstance(t, Relaid):
                self.ids[id(t)] = self._relaid(t)
            else:
                raise TypeError(f"not an operand: {t!r}")
        return self.ids[id(t)]

    def _ready(self, t: int):
        """An existing tensor, written before where the rewrite goes; a DEQUANTIZE of a constant that
        runs later (quantized models dequantize each weight just before its reader) is run again
        here instead."""
        ir = self.g.ir
        producer = ir.producer.get(t) if t >= 0 and t not in self.outs else None
        if producer is None or producer in self.old or _order(ir, producer) < self.first:
            return t
        deq = self.g.node(producer)
        if deq.builtin != "DEQUANTIZE" or self.g.weight(t) is None:
            raise NoRule(f"tensor {t} is written after where the rewrite goes")
        if ("late", t) not in self.ids:
            out = self._add(NewTensor(f"{self.g.name(t)}/early", self.g.dtype(t), self.g.shape(t)))
            self._dequantize(deq, deq.inputs[0], out)
            self.ids[("late", t)] = out
        return self.ids[("late", t)]

    def _dequantize(self, deq, stored, out) -> None:
        version = deq.op.opcode[1] if deq.op.builtin else self.g.model.operator_codes[deq.op.opcode].version
        self.before.append(_PendingOp("DEQUANTIZE", version, [stored], [out], None))
        self.inserted.append(f"DEQUANTIZE v{version}")

    def _add(self, tensor: NewTensor):
        holder = [None]
        self.new.append((holder, tensor))
        return holder

    def _relaid(self, r: Relaid):
        g = self.g
        w = g.weight(r.tensor)
        if w is None:
            raise NoRule(f"input tensor {r.tensor} is not a constant fbtool can read")
        raw = g._stored(w.stored)
        new = np.ascontiguousarray(r.transform(raw))
        quant = None
        if raw.dtype in (np.float32, np.float16):
            if r.scale is not None:
                new = (new.astype(np.float32) * _along(r.scale, r.channel_axis, new.ndim)).astype(raw.dtype)
        else:
            scale, zero, _ = g.quantization(w.stored)
            if scale.size > 1:
                if scale.size != new.shape[r.channel_axis]:
                    raise NoRule("a weight quantized per channel along another axis than its output channels")
                axis = r.channel_axis
            elif r.scale is not None:
                raise NoRule("a weight quantized per tensor cannot take a per-channel factor exactly")
            else:
                axis = 0
            if r.scale is not None:
                scale = scale * np.asarray(r.scale, np.float32)
            quant = ([float(x) for x in scale], [int(x) for x in zero], axis)
        name = f"{g.name(w.stored)}/{r.suffix}"
        data = new.tobytes()
        if quant is None and self._in_place(w, len(data)):
            self.edits.append((w.stored, new.shape, data))
            stored = w.stored
        else:
            stored = self._add(NewTensor(name, dtype_of(new), new.shape, data, quant))
        if w.dequantize is None:
            return stored
        # a DEQUANTIZE of its own, just before the rewrite; the old one goes when nothing reads it
        out = self._add(NewTensor(f"{name}/dequantize", "float32", new.shape))
        self._dequantize(w.dequantize, stored, out)
        return out

    def _in_place(self, w, size: int) -> bool:
        """Only these ops read it (through its DEQUANTIZE, which then has no reader left), no other
        tensor uses its buffer, nothing else covers its bytes."""
        g = self.g
        model = g.model
        if w.stored >= g.ir.n_tensors or (w.dequantize is not None and w.dequantize.key is None):
            return False
        readers = {w.dequantize.key} if w.dequantize is not None else set()
        if not g.only_within([w.tensor], self.keys) or (w.dequantize is not None and
                                                        not g.only_within([w.stored], readers)):
            return False
        tensors = model.subgraphs[g.sg].tensors
        t = tensors[w.stored]
        buf = model.buffers[t.buffer]
        span = buf.data or buf.external
        if span is None or span.size != size or buffer_users(model)[t.buffer] != 1:
            return False
        coverage = coverage_of(model)
        spans = [data_span(span, not buf.data)]
        for ti in {w.stored}:
            table = tensors[ti].t
            for name in ("shape", "shape_signature"):
                at = table.field_pos(name)
                if at is not None:
                    spans.append(vector_span(table.buf, at + int.from_bytes(table.buf[at:at + 4], "little"), 4))
        return all(coverage.exclusive(*s) for s in spans)

    def commit(self) -> None:
        g = self.g
        for holder, tensor in self.new:
            holder[0] = g.edit.add_tensor(g.sg, tensor)
        for tensor, shape, data in self.edits:
            g.edit.edit_weight(g.sg, tensor, shape, data)
        for op in self.before:
            op.resolve()


class _PendingOp(Op):
    """A new op whose new tensors get their indices at commit."""

    def __init__(self, builtin, version, inputs, outputs, options):
        super().__init__(None, (builtin, version), (), (), options)
        self._ins, self._outs = inputs, outputs

    def resolve(self) -> None:
        real = lambda t: t[0] if isinstance(t, list) else t  # noqa: E731
        self.inputs = tuple(real(t) for t in self._ins)
        self.outputs = tuple(real(t) for t in self._outs)


def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(values, np.float64).reshape(shape)


_USERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def buffer_users(model: Model) -> Counter:
    """Buffer index -> tensors using it, counted once per model (per weight would be quadratic)."""
    if model not in _USERS:
        _USERS[model] = Counter(t.buffer for sg in model.subgraphs for t in sg.tensors)
    return _USERS[model]
