"""Write an op graph as Graphviz DOT, GraphML (Gephi, yEd) or node-link JSON."""
from __future__ import annotations

import io
import json

import networkx as nx

from .analysis import Island
from .build import op_node

FORMATS = ("dot", "graphml", "json")
COLOURS = {"flex": "#f5a623", "custom": "#d0021b", "builtin": "#e8e8e8"}


def cut(g: nx.DiGraph, island: Island | None) -> nx.DiGraph:
    """The whole subgraph, or one island's ops with the tensors they read and write."""
    if island is None:
        return g
    keep = {op_node(i) for i in island.ops}
    keep |= {t for n in list(keep) for t in (*g.predecessors(n), *g.successors(n))}
    return g.subgraph(keep).copy()


def _node_id(node) -> str:
    return f"{node[0]}{node[1]}"


def _label(data: dict) -> str:
    if data["kind"] == "tensor":
        return f"{data['name'] or '#' + str(data['index'])}\n{data['dtype']}{data['shape']}"
    return f"{data['index']}: {data['opcode']}" + (f" v{data['version']}" if data["version"] != 1 else "")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g: nx.DiGraph) -> str:
    lines = [f"digraph {_quote('subgraph ' + str(g.graph['index']))} {{", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];']
    for node, data in g.nodes(data=True):
        if data["kind"] == "tensor":
            style = 'shape=ellipse, fontsize=8, color="#999999"' + (", style=dashed" if data["constant"] else "")
        else:
            style = f'shape=box, style="filled,rounded", fillcolor="{COLOURS.get(data["kind"], "#ffffff")}"'
        lines.append(f"  {_node_id(node)} [label={_quote(_label(data))}, {style}];")
    for a, b in g.edges():
        lines.append(f"  {_node_id(a)} -> {_node_id(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _relabel(g: nx.DiGraph, flat: bool) -> nx.DiGraph:
    """String node ids and a label and colour per node; with ``flat`` (GraphML holds scalars
    only) lists become JSON text and None an empty string."""
    def value(v):
        if not flat:
            return v
        return json.dumps(v) if isinstance(v, list) else ("" if v is None else v)

    out = nx.DiGraph()
    out.graph.update({k: value(v) for k, v in g.graph.items()})
    for node, data in g.nodes(data=True):
        attrs = {k: value(v) for k, v in data.items()}
        attrs["label"] = _label(data)
        if data["kind"] != "tensor":
            attrs["color"] = COLOURS.get(data["kind"], "#ffffff")
        out.add_node(_node_id(node), **attrs)
    for a, b, data in g.edges(data=True):
        out.add_edge(_node_id(a), _node_id(b), **data)
    return out


def to_graphml(g: nx.DiGraph) -> str:
    buf = io.BytesIO()
    nx.write_graphml(_relabel(g, flat=True), buf)
    return buf.getvalue().decode("utf-8")


def to_json(g: nx.DiGraph) -> str:
    data = nx.node_link_data(_relabel(g, flat=False), edges="links")
    return json.dumps(data) + "\n"


def export(g: nx.DiGraph, fmt: str) -> str:
    return {"dot": to_dot, "graphml": to_graphml, "json": to_json}[fmt](g)
