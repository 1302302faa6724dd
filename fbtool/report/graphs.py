"""The graph section: each drawing with its pan/zoom controls, or the ops as a table when
Graphviz is missing or the graph is too large to lay out."""
from __future__ import annotations

from .drawing import Drawing
from .gather import ModelFacts
from .html import esc, kind_badge, rows_shown, table

LEGEND = ('<p class="legend"><span class="swatch kind-builtin"></span>builtin '
          '<span class="swatch kind-flex"></span>Flex <span class="swatch kind-custom"></span>custom '
          '<span class="swatch island"></span>Flex island '
          '<span class="swatch rewritten"></span>rewritten by the patch (a green border on the original) '
          '<span class="swatch tensor"></span>input/output tensor. Edges are tensors (hover for names and shapes). '
          "Drag to pan, Ctrl+wheel or the buttons to zoom, wheel to scroll.</p>")


def _ops_table(d: Drawing, facts: ModelFacts) -> str:
    sg = facts.inspect["subgraphs"][d.subgraph]
    island_of = {i: isl.index for isl in facts.islands[d.subgraph] for i in isl.ops}
    rows = []
    shown, more = rows_shown(d.ops)
    for i in shown:
        op = sg["operators"][i]
        rows.append(f'<tr class="op-row kind-{esc(op["kind"])}" data-index="{i}" data-kind="{esc(op["kind"])}">'
                    f'<td class="num">{i}</td><td>{esc(op["opcode"])} v{op["version"]}</td>'
                    f'<td>{kind_badge(op["kind"])}</td>'
                    f'<td>{island_of.get(i, "")}</td><td>{esc(", ".join(map(str, op["inputs"])))}</td>'
                    f'<td>{esc(", ".join(map(str, op["outputs"])))}</td></tr>')
    return table(["op", "op type", "kind", "island", "input tensors", "output tensors"], rows, "ops op-table",
                 more=more)


def _figure(d: Drawing, facts: ModelFacts, side: str, said: str | None) -> str:
    head = f'<figcaption><b>{esc(d.title)}</b>'
    if d.collapsed:
        head += f" · islands {esc(', '.join(map(str, d.collapsed)))} drawn as one node each"
    head += "</figcaption>"
    attrs = (f'class="graph" id="fig-{esc(d.key)}" data-key="{esc(d.key)}" data-subgraph="{d.subgraph}" '
             f'data-model="{side}" data-ops="{len(d.ops)}"')
    if d.svg is None:
        note = f'<p class="notice">{esc(d.note)}</p>' if d.note != said else ""
        return f'<figure {attrs} data-drawn="false">{head}{note}{_ops_table(d, facts)}</figure>'
    tools = "".join(f'<button type="button" data-act="{act}" title="{esc(tip)}">{esc(label)}</button>'
                    for act, label, tip in (("top", "Top", "back to the top at a readable size"),
                                            ("fit", "Fit", "the whole graph"), ("in", "+", "zoom in"),
                                            ("out", "−", "zoom out")))
    # the SVG comes from _to_svg: parsed, checked against an element allowlist and re-serialised
    return (f'<figure {attrs} data-drawn="true">{head}<div class="toolbar">{tools}</div>'
            f'<div class="viewport">{d.svg}</div></figure>')


def graph_section(groups: list[list[tuple[Drawing, ModelFacts, str]]], focus: str) -> str:
    """``groups``: per subgraph, its drawing and (before/after) the patched model's beside it."""
    notes = sorted({d.note for group in groups for d, _, _ in group if d.svg is None and d.note})
    said = notes[0] if notes else None   # said once above the figures (Graphviz missing: said for all)
    notice = f'<p class="notice" id="graph-notice">{esc(said)}</p>' if said else ""
    figures = "".join(
        "".join(_figure(d, facts, side, said) for d, facts, side in group) if len(group) == 1 else
        '<div class="pair graphs">' + "".join(f"<div>{_figure(d, facts, side, said)}</div>" for d, facts, side in group)
        + "</div>" for group in groups)
    return f'<section id="graph"><h2>Graph: {esc(focus)}</h2>{notice}{LEGEND}{figures}</section>'
