"""Write an op graph as Graphviz DOT, GraphML (Gephi, yEd) or node-link JSON."""
from __future__ import annotations

import io
import json
import re

import networkx as nx

from .analysis import Island
from ..untrusted import for_xml
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
    """A DOT string: the characters Graphviz cannot hold (NUL cut the file) or that would be invalid
    in the SVG it writes are escaped, then quotes, backslashes and line breaks."""
    text = for_xml(text).replace("\r", "\\x0d")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_value(key: str, value) -> str:
    text = str(value)
    if key not in ("label", "tooltip") and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*|-?[0-9.]+", text):
        return text
    return _quote(text)


def _dot_attrs(attrs: dict) -> str:
    return ", ".join(f"{k}={_dot_value(k, v)}" for k, v in attrs.items())


def _node_style(data: dict) -> dict:
    if data["kind"] == "tensor":
        dashed = {"style": "dashed"} if data["constant"] else {}
        return {"shape": "ellipse", "fontsize": 8, "color": "#999999", **dashed}
    return {"shape": "box", "style": "filled,rounded", "fillcolor": COLOURS.get(data["kind"], "#ffffff")}


def to_dot(g: nx.DiGraph, clusters=(), node_attrs=None, graph_attrs=None) -> str:
    """DOT text of ``g``. The report draws with the same writer and adds: ``clusters``, boxes of
    ``(name, label, nodes)`` (Flex islands); ``node_attrs(node, data)``, DOT attributes that add
    to or override a node's (a ``label`` replaces the generated one); ``graph_attrs``."""
    lines = [f"digraph {_quote('subgraph ' + str(g.graph['index']))} {{", "  rankdir=TB;"]
    if graph_attrs:
        lines.append(f"  graph [{_dot_attrs(graph_attrs)}];")
    lines.append('  node [fontname="Helvetica", fontsize=10];')

    def node_line(node, data, indent="  ") -> str:
        extra = dict(node_attrs(node, data)) if node_attrs else {}
        attrs = {"label": extra.pop("label", None) or _label(data), **_node_style(data), **extra}
        return f"{indent}{_node_id(node)} [{_dot_attrs(attrs)}];"

    boxed = set()
    for name, label, members in clusters:
        lines.append(f"  subgraph {_quote('cluster_' + name)} {{")
        lines.append(f'    label={_quote(label)}; style="dashed,rounded"; color="#c77c00"; fontcolor="#8a5300";')
        for node in members:
            lines.append(node_line(node, g.nodes[node], "    "))
            boxed.add(node)
        lines.append("  }")
    for node, data in g.nodes(data=True):
        if node not in boxed:
            lines.append(node_line(node, data))
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
        v = json.dumps(v) if isinstance(v, list) else ("" if v is None else v)
        return for_xml(v) if isinstance(v, str) else v

    out = nx.DiGraph()
    out.graph.update({k: value(v) for k, v in g.graph.items()})
    for node, data in g.nodes(data=True):
        attrs = {k: value(v) for k, v in data.items()}
        attrs["label"] = value(_label(data))
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
