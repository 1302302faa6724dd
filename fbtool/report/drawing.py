"""The op graph drawn for the report: laid out by Graphviz ``dot``, handed back as inline SVG.

Operators are the boxes; a tensor that links two operators becomes the edge between them
(its name and shape in the edge's tooltip), so that a few hundred ops stay readable. Only
the tensors at the border of the drawing stay nodes: inputs, outputs, tensors from or to
operators outside it. Constants are left out. Flex islands are dashed boxes, or one node
each when the drawing is large (``collapse``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

import networkx as nx

from ..graph import Island, op_node
from ..graph.export import COLOURS, cut, to_dot

COLLAPSE_OVER = 200   # ops in one drawing above which "auto" draws each island as one node
QUICK_OVER = 120      # nodes above which dot is told to stop improving early: its crossing
                      # minimisation and network simplex take minutes on ~500 ops with fan-outs
QUICK = {"mclimit": 0.2, "nslimit": 2, "nslimit1": 2}
FANOUT = 8            # a tensor read by more ops gets a small copy beside each reader: one tensor
                      # with edges to ops far apart tangles the whole layout (and dot takes minutes)
MAX_NODES = 3000      # dot needs minutes beyond this: the page lists the operators instead
DOT_TIMEOUT = 120     # seconds
REWRITTEN = "#7ed321"

SVG_NS = "http://www.w3.org/2000/svg"
# What dot writes for the attributes used here; anything else means the SVG is not what we
# asked for, and it is not put into the page.
SVG_TAGS = {"svg", "g", "title", "polygon", "polyline", "path", "ellipse", "text"}


class DrawingUnavailable(Exception):
    """Graphviz is missing or failed; the message is shown in the page."""


@dataclass
class Drawing:
    key: str                     # unique in the page: the prefix of the SVG element ids
    title: str
    subgraph: int
    ops: list[int]               # operators shown (collapsed islands included)
    svg: str | None = None       # None: see ``note``; the page then lists ``ops`` as a table
    note: str | None = None
    collapsed: list[int] = field(default_factory=list)   # islands drawn as one node


def dot_program() -> str | None:
    return shutil.which("dot")


def _contract_tensors(g: nx.DiGraph) -> nx.DiGraph:
    """Operators as nodes, linking tensors as edges (attribute ``tensors``), border tensors kept."""
    d = nx.DiGraph(**g.graph)
    ends = set(g.graph["inputs"]) | set(g.graph["outputs"])
    for node, data in g.nodes(data=True):
        if data["kind"] != "tensor":
            d.add_node(node, **data)

    def link(a, b, t):
        if d.has_edge(a, b):
            d.edges[a, b]["tensors"].append(t)
        else:
            d.add_edge(a, b, tensors=[t])

    for t, data in g.nodes(data=True):
        if data["kind"] != "tensor" or data["constant"]:
            continue
        producers, consumers = list(g.predecessors(t)), list(g.successors(t))
        if len(consumers) > FANOUT:
            d.add_node(t, **data, fanout=len(consumers))
            for p in producers:
                link(p, t, t[1])
            for c in consumers:
                ref = ("ref", f"{t[1]}_{c[1]}")
                d.add_node(ref, **data, ref=True)
                link(ref, c, t[1])
        elif producers and consumers and t[1] not in ends:
            for p in producers:
                for c in consumers:
                    link(p, c, t[1])
        elif producers or consumers or t[1] in ends:
            d.add_node(t, **data)
            for p in producers:
                link(p, t, t[1])
            for c in consumers:
                link(t, c, t[1])
    return d


def _collapse(d: nx.DiGraph, islands: list[Island]) -> list[int]:
    """Each island of two or more ops becomes one node ``("island", k)``; returns their indices."""
    done = []
    for isl in islands:
        members = {node for i in isl.ops if (node := op_node(i)) in d}
        if len(members) < 2:
            continue
        node = ("island", isl.index)
        d.add_node(node, kind="island", index=isl.index, ops=sorted(n[1] for n in members),
                   opcodes=sorted(d.nodes[n]["opcode"] for n in members))
        for m in members:
            for p, _, data in list(d.in_edges(m, data=True)):
                if p not in members:
                    d.add_edge(p, node, tensors=d.edges[p, node]["tensors"] + data["tensors"]
                               if d.has_edge(p, node) else list(data["tensors"]))
            for _, s, data in list(d.out_edges(m, data=True)):
                if s not in members:
                    d.add_edge(node, s, tensors=d.edges[node, s]["tensors"] + data["tensors"]
                               if d.has_edge(node, s) else list(data["tensors"]))
        d.remove_nodes_from(members)
        done.append(isl.index)
    return done


def _is_op(data: dict) -> bool:
    return data["kind"] not in ("tensor", "island")


def _describe_tensor(data: dict) -> str:
    return f"tensor #{data['index']} {data['name'] or ''} {data['dtype']}{data['shape']}".replace("  ", " ")


def _node_title(d: nx.DiGraph, node, notes: dict) -> str:
    data = d.nodes[node]
    if data["kind"] == "island":
        kinds = ", ".join(f"{n} {name}" for name, n in sorted(Counter(data["opcodes"]).items(), key=lambda kv: -kv[1]))
        return f"island {data['index']}: ops {', '.join(map(str, data['ops']))}\n{kinds}"
    if data["kind"] == "tensor":
        return _describe_tensor(data)
    text = f"op {data['index']}: {data['opcode']} v{data['version']} ({data['kind']})"
    return text + (f"\n{notes[data['index']]}" if data["index"] in notes else "")


def draw(g: nx.DiGraph, islands: list[Island], key: str, title: str, focus: Island | None = None,
         collapse: str = "auto", marks: dict | None = None, notes: dict | None = None) -> Drawing:
    """Lay out subgraph ``g`` (or the ops of ``focus`` and their tensors) with dot.

    ``marks`` maps op index -> ``"rewritten"`` (drawn green); ``notes`` op index -> a line for
    its tooltip. Raises nothing: a missing or failing dot gives a Drawing with a ``note``.
    """
    marks, notes = marks or {}, notes or {}
    d = _contract_tensors(cut(g, focus))
    ops = sorted(n[1] for n, data in d.nodes(data=True) if _is_op(data))
    drawing = Drawing(key, title, g.graph["index"], ops)
    if collapse == "always" or (collapse == "auto" and len(ops) > COLLAPSE_OVER):
        drawing.collapsed = _collapse(d, islands)
    if d.number_of_nodes() > MAX_NODES:
        drawing.note = (f"{d.number_of_nodes()} nodes are too many to lay out here: choose a part with "
                        f"--subgraph or --island, or --collapse always")
        return drawing
    try:
        drawing.svg = _to_svg(d, islands, key, marks, notes, g)
    except DrawingUnavailable as e:
        drawing.note = str(e)
    return drawing


def _dot_text(d: nx.DiGraph, islands: list[Island], marks: dict) -> str:
    def attrs(node, data):
        if data.get("ref"):
            return {"label": data["name"] or f"#{data['index']}", "shape": "plaintext", "fontcolor": "#777777"}
        if data.get("fanout"):
            return {"label": f"{data['name'] or '#' + str(data['index'])}\n{data['dtype']}{data['shape']}\n"
                             f"read by {data['fanout']} ops (copies beside them)"}
        if data["kind"] == "island":
            return {"label": f"island {data['index']}\n{len(data['ops'])} Flex ops", "shape": "box3d",
                    "style": "filled", "fillcolor": COLOURS["flex"], "penwidth": 2}
        extra = {"fontcolor": "white"} if data["kind"] == "custom" else {}
        if data.get("calls"):   # control flow: which subgraphs it runs
            version = f" v{data['version']}" if data["version"] != 1 else ""
            extra["label"] = (f"{data['index']}: {data['opcode']}{version}\n"
                              f"calls subgraph {', '.join(map(str, data['calls']))}")
        if marks.get(data["index"]) == "rewritten" and _is_op(data):
            if data["kind"] == "builtin":
                return {**extra, "fillcolor": REWRITTEN}
            return {**extra, "color": "#3d8b00", "penwidth": 3}
        return extra

    clusters = []
    for isl in islands:
        members = [op_node(i) for i in isl.ops if op_node(i) in d]
        if members:
            clusters.append((f"island{isl.index}", f"island {isl.index}", members))
    look = {"fontname": "Helvetica", "nodesep": 0.25, "ranksep": 0.35, "bgcolor": "transparent"}
    return to_dot(d, clusters, attrs, {**look, **(QUICK if d.number_of_nodes() > QUICK_OVER else {})})


def _run_dot(text: str) -> str:
    program = dot_program()
    if program is None:
        raise DrawingUnavailable("Graphviz `dot` was not found on PATH, so the graph is listed as a table; "
                                 "install Graphviz (Debian: apt-get install graphviz) for the drawing")
    try:
        r = subprocess.run([program, "-Tsvg"], input=text.encode("utf-8"), capture_output=True,
                           timeout=DOT_TIMEOUT, env={**os.environ, "LC_ALL": "C"})
    except subprocess.TimeoutExpired:
        raise DrawingUnavailable(f"Graphviz took more than {DOT_TIMEOUT} s to lay the graph out; "
                                 "choose a part with --subgraph or --island, or --collapse always") from None
    except OSError as e:
        raise DrawingUnavailable(f"Graphviz `dot` could not run: {e.strerror or e}") from None
    if r.returncode != 0:
        last = (r.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit {r.returncode}"])[-1]
        raise DrawingUnavailable(f"Graphviz `dot` failed: {last}")
    return r.stdout.decode("utf-8")


def _to_svg(d: nx.DiGraph, islands: list[Island], key: str, marks: dict, notes: dict, g: nx.DiGraph) -> str:
    raw = _run_dot(_dot_text(d, islands, marks))
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as e:
        raise DrawingUnavailable(f"Graphviz wrote SVG that does not parse ({e})") from None
    by_id = {f"{n[0]}{n[1]}": n for n in d}
    q = f"{{{SVG_NS}}}"
    for el in root.iter():
        tag = el.tag.removeprefix(q)
        if tag not in SVG_TAGS or any(a.lower().startswith("on") or "href" in a.lower() for a in el.attrib):
            raise DrawingUnavailable(f"Graphviz wrote an unexpected SVG element <{tag}>; not drawn")
    for group in root.iter(q + "g"):
        kind = group.get("class")
        title = group.find(q + "title")
        name = title.text if title is not None else ""
        if kind == "node" and name in by_id:
            node = by_id[name]
            data = d.nodes[node]
            classes = ["node", "op", data["kind"]] if _is_op(data) else ["node", data["kind"]]
            if _is_op(data) and marks.get(data["index"]):
                classes.append(marks[data["index"]])
            group.set("class", " ".join(classes))
            group.set("id", f"{key}-{name}")
            group.set("data-node", name)
            title.text = _node_title(d, node, notes)
        elif kind == "edge" and "->" in name:
            a, b = (by_id.get(x) for x in name.split("->", 1))
            group.attrib.pop("id", None)
            if a is not None and b is not None and d.has_edge(a, b):
                title.text = "\n".join(_describe_tensor(g.nodes[("t", t)]) for t in d.edges[a, b]["tensors"])
        elif kind == "cluster":
            group.set("class", "cluster island")
            group.set("id", f"{key}-{name.removeprefix('cluster_')}")
        else:
            group.attrib.pop("id", None)
    for attr in ("width", "height"):
        root.attrib.pop(attr, None)
    root.set("class", "graph-svg")
    root.set("role", "img")
    ET.register_namespace("", SVG_NS)
    return ET.tostring(root, encoding="unicode")


def focus_on(ops: list[int]) -> Island:
    """A focus on any ``ops`` (the patched model's ops that match an original island's)."""
    return Island(0, sorted(ops), [], [], 0, 0, False)
