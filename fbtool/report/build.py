"""``fbtool report``: gather, draw, render, and write the page atomically."""
from __future__ import annotations

from ..errors import ModelError, UsageError
from ..output import write_text
from . import changes as ch
from . import sections
from .drawing import draw, focus_on
from .gather import ModelFacts, gather
from .graphs import graph_section
from .html import page

COLLAPSE = ("auto", "always", "never")


def _subgraph_title(m: ModelFacts, index: int, label: str) -> str:
    name = m.inspect["subgraphs"][index]["name"]
    return f"{label}subgraph {index}" + (f" {name!r}" if name else "")


def _check_focus(m: ModelFacts, subgraph: int | None, island: int | None) -> None:
    count = len(m.graphs)
    if subgraph is not None and not 0 <= subgraph < count:
        raise ModelError(f"no subgraph {subgraph} (the model has {count})", path=m.path)
    if island is not None:
        have = len(m.islands[subgraph or 0])
        if not 0 <= island < have:
            raise ModelError(f"no island {island} in subgraph {subgraph or 0} (it has {have})", path=m.path)


def _notes(m: ModelFacts, sg: int) -> dict:
    """One tooltip line per Flex/custom op: its TF op, island and verdict."""
    out = {}
    for o in m.flex["ops"]:
        if o["subgraph"] == sg:
            island = "" if o["island"] is None else f", island {o['island']}"
            verdict = f"-> {o['builtin'] or 'removed'}" if o["rewritable"] else "must stay"
            out[o["index"]] = f"TF op {o['tf_op']}{island}; {verdict}: {o['reason']}"
    return out


def _drawings(a: ModelFacts, b: ModelFacts | None, diff: dict | None, subgraph, island, collapse):
    """Per subgraph shown: its drawing, and beside it the patched one."""
    chosen = [subgraph if subgraph is not None else 0] if subgraph is not None or island is not None \
        else range(len(a.graphs))
    out = []
    for sg in chosen:
        focus = a.islands[sg][island] if island is not None else None
        before, after = ch.marks(diff, sg) if diff else ({}, {})
        label = "original · " if b is not None else ""
        title = _subgraph_title(a, sg, label) + (f" · island {island}" if island is not None else "")
        group = [(draw(a.graphs[sg], a.islands[sg], f"o{sg}", title, focus, collapse, before, _notes(a, sg)),
                  a, "original")]
        if b is not None and sg < len(b.graphs):
            focus_b = focus_on(ch.matching_ops(diff, sg, focus.ops)) if focus is not None else None
            title = _subgraph_title(b, sg, "patched · ")
            title += f" · ops of island {island}" if island is not None else ""
            group.append((draw(b.graphs[sg], b.islands[sg], f"p{sg}", title, focus_b, collapse, after,
                               _notes(b, sg)), b, "patched"))
        out.append(group)
    return out


def build_report(model: str, patched: str | None = None, subgraph: int | None = None, island: int | None = None,
                 collapse: str = "auto", verify=None) -> str:
    """The page for ``model`` (before/after when ``patched`` is given) as a string.

    ``verify(original, patched) -> dict`` (fbtool.verify.compare.verify_models) runs when given.
    Raises ModelError for a bad model or focus, UsageError for bad options.
    """
    if collapse not in COLLAPSE:
        raise UsageError(f"--collapse takes {', '.join(COLLAPSE)}, not {collapse}")
    a = gather(model)
    _check_focus(a, subgraph, island)
    if patched is None:
        focus = _focus_text(a, subgraph, island)
        body = [sections.summary(a), sections.histogram(a), sections.flex_ops(a),
                graph_section(_drawings(a, None, None, subgraph, island, collapse), focus)]
        return page(f"fbtool report: {a.name}", a.path, body)
    b = gather(patched, with_plan=True)
    diff = ch.compare(a.inspect, b.inspect, b.plan)
    result = verify(a.path, b.path) if verify is not None else None
    body = [sections.compare_summary(a, b), sections.changes(a, b, diff), sections.verification(result),
            sections.histogram(a, b),
            graph_section(_drawings(a, b, diff, subgraph, island, collapse), _focus_text(a, subgraph, island))]
    return page(f"fbtool report: {a.name} → {b.name}", f"{a.path} patched into {b.path}", body)


def _focus_text(m: ModelFacts, subgraph, island) -> str:
    if island is not None:
        return f"island {island} of subgraph {subgraph or 0} and the tensors it reads and writes"
    if subgraph is not None:
        return f"subgraph {subgraph}"
    return "every subgraph" if len(m.graphs) > 1 else "subgraph 0"


def write_report(path: str, text: str) -> None:
    """Atomically, through :func:`fbtool.output.write_text`: a reader never sees half a page."""
    write_text(path, text)
