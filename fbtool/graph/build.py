"""Build networkx graphs from a model.

Per subgraph, one bipartite ``nx.DiGraph``: operator nodes ``("op", i)`` and tensor
nodes ``("t", j)``; an edge tensor -> operator for each input (attribute ``slot``) and
operator -> tensor for each output. Tensors are nodes, not edge labels, because one
tensor feeds many operators and carries its own facts (dtype, shape, bytes,
constness). Omitted optional inputs (-1) get no edge. Control flow is kept apart in
``ModelGraph.calls``: a ``DiGraph`` of subgraph indices with an edge caller -> callee
for each WHILE/IF/CALL_ONCE/StableHLO reference (attributes ``op``, the operator index).
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ..reader.checks import subgraph_refs
from ..reader.model import TYPE_BITS, Model, SCHEMA


def op_node(i: int) -> tuple[str, int]:
    return ("op", i)


def tensor_node(j: int) -> tuple[str, int]:
    return ("t", j)


@dataclass
class ModelGraph:
    subgraphs: list[nx.DiGraph]
    calls: nx.DiGraph


def tensor_bytes(dtype_code: int, shape) -> int | None:
    """Runtime size of a tensor from its shape (-1 dims count as 1); None for strings and unknown types."""
    bits = TYPE_BITS.get(SCHEMA.enum_name("TensorType", dtype_code) or "")
    if bits is None:
        return None
    n = 1
    for d in shape:
        n *= max(d, 1)
    return (n * bits + 7) // 8


def build_graph(model: Model) -> ModelGraph:
    graphs = []
    calls = nx.DiGraph()
    for sg in model.subgraphs:
        g = nx.DiGraph(index=sg.index, name=sg.name, inputs=list(sg.inputs), outputs=list(sg.outputs))
        calls.add_node(sg.index, name=sg.name)
        for t in sg.tensors:
            constant = model.is_constant(t)
            g.add_node(tensor_node(t.index), kind="tensor", index=t.index, name=t.name, dtype=t.dtype,
                       shape=list(t.shape_signature), constant=constant,
                       bytes=tensor_bytes(t.type_code, t.shape_signature))
        for op in sg.operators:
            callees = subgraph_refs(op.options)
            g.add_node(op_node(op.index), kind=op.opcode.kind, index=op.index, opcode=op.opcode.name,
                       version=op.opcode.version, calls=callees)
            for slot, ti in enumerate(op.inputs):
                if ti >= 0:
                    g.add_edge(tensor_node(ti), op_node(op.index), slot=slot)
            for slot, ti in enumerate(op.outputs):
                g.add_edge(op_node(op.index), tensor_node(ti), slot=slot)
            for callee in callees:
                calls.add_edge(sg.index, callee, op=op.index)
        graphs.append(g)
    return ModelGraph(graphs, calls)
