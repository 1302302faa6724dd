"""What the op graph tells about Flex ops: islands, delegate partitions, unused ops."""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import networkx as nx

from .build import op_node


def ops(g: nx.DiGraph) -> list[int]:
    """Operator indices in execution (stored) order."""
    return sorted(n[1] for n, kind in g.nodes(data="kind") if kind != "tensor")


def op_dependencies(g: nx.DiGraph) -> nx.DiGraph:
    """Operators only: an edge producer -> consumer for each tensor that links them."""
    deps = nx.DiGraph()
    deps.add_nodes_from(ops(g))
    for node, kind in g.nodes(data="kind"):
        if kind != "tensor":
            continue
        producers = [p[1] for p in g.predecessors(node)]
        for p in producers:
            for c in g.successors(node):
                deps.add_edge(p, c[1], tensor=node[1])
    return deps


@dataclass
class Island:
    index: int
    ops: list[int]                     # operator indices, in execution order
    inputs: list[int]                  # non-constant tensors flowing in from outside
    outputs: list[int]                 # tensors leaving: used outside or subgraph outputs
    input_bytes: int
    output_bytes: int
    dynamic: bool                      # some crossing tensor has a dynamic dimension (-1 counted as 1)


def find_islands(g: nx.DiGraph, kinds=("flex",)) -> list[Island]:
    """Maximal groups of ``kinds`` operators connected through tensors, numbered by first op."""
    deps = op_dependencies(g)
    members = [i for i in ops(g) if g.nodes[op_node(i)]["kind"] in kinds]
    groups = sorted((sorted(c) for c in nx.weakly_connected_components(deps.subgraph(members))), key=lambda c: c[0])
    graph_outputs = set(g.graph["outputs"])
    islands = []
    for k, group in enumerate(groups):
        inside = {op_node(i) for i in group}
        ins, outs = set(), set()
        for i in group:
            for t in g.predecessors(op_node(i)):
                if not g.nodes[t]["constant"] and not set(g.predecessors(t)) & inside:
                    ins.add(t)
            for t in g.successors(op_node(i)):
                if t[1] in graph_outputs or set(g.successors(t)) - inside:
                    outs.add(t)
        size = lambda ts: sum(g.nodes[t]["bytes"] or 0 for t in ts)  # noqa: E731
        dynamic = any(-1 in g.nodes[t]["shape"] for t in ins | outs)
        islands.append(Island(k, group, sorted(t[1] for t in ins), sorted(t[1] for t in outs),
                              size(ins), size(outs), dynamic))
    return islands


def partitions(g: nx.DiGraph, kinds=("flex",)) -> int:
    """How many partitions the runtime cuts the ``kinds`` operators into: delegate kernels.

    Mirrors TFLite's greedy PartitionGraphIntoIndependentNodeSubsets (LiteRT
    tflite/graph_info.cc): each subset starts with the lowest-numbered ready node and
    takes every node of the same kind that becomes ready, so independent Flex ops far
    apart in the stored order still share a partition. Control edges between stateful
    ops are not modelled.
    """
    waiting = {}
    ready: dict[bool, list[int]] = {True: [], False: []}
    deps = op_dependencies(g)
    for i in ops(g):
        waiting[i] = deps.in_degree(i)
        if not waiting[i]:
            heapq.heappush(ready[g.nodes[op_node(i)]["kind"] in kinds], i)
    count = 0
    while ready[True] or ready[False]:
        current = min((q[0], t) for t, q in ready.items() if q)[1]
        count += current
        queue = ready[current]
        while queue:
            i = heapq.heappop(queue)
            for j in deps.successors(i):
                waiting[j] -= 1
                if not waiting[j]:
                    heapq.heappush(ready[g.nodes[op_node(j)]["kind"] in kinds], j)
    return count


def unused_ops(g: nx.DiGraph) -> list[int]:
    """Operators with outputs, none of which is consumed or a subgraph output."""
    graph_outputs = set(g.graph["outputs"])
    unused = []
    for i in ops(g):
        outs = list(g.successors(op_node(i)))
        if outs and not any(g.out_degree(t) or t[1] in graph_outputs for t in outs):
            unused.append(i)
    return unused
