"""``fbtool graph``: the op graph as DOT, GraphML or JSON, Flex and custom ops marked."""
from __future__ import annotations


from ..errors import ModelError
from .options import count
from .style import note


def add_parser(sub) -> None:
    p = sub.add_parser("graph", help="export the op graph (DOT, GraphML, JSON)",
                       description="Export one subgraph's op graph; Flex ops orange, custom ops red.")
    p.add_argument("model")
    p.add_argument("--format", choices=("dot", "graphml", "json"), default="dot")
    p.add_argument("-o", "--output", help="write here instead of stdout")
    p.add_argument("--subgraph", type=count, default=0, help="which subgraph (default 0)")
    p.add_argument("--island", type=count, help="only this Flex island (see `fbtool flex`) and its tensors")
    p.add_argument("--no-verify", action="store_true", help="skip the semantic checks (bounds checks always run)")
    p.set_defaults(run=run)


def run(args, out) -> int:
    from ..graph import build_graph, find_islands
    from ..graph.export import cut, export
    from ..output import write_text
    from ..reader.model import open_model

    with open_model(args.model, verify=not args.no_verify) as model:
        graphs = build_graph(model).subgraphs
        if not 0 <= args.subgraph < len(graphs):
            raise ModelError(f"no subgraph {args.subgraph} (the model has {len(graphs)})")
        g = graphs[args.subgraph]
        island = None
        if args.island is not None:
            islands = find_islands(g)
            if not 0 <= args.island < len(islands):
                raise ModelError(f"no island {args.island} in subgraph {args.subgraph} (it has {len(islands)})")
            island = islands[args.island]
        text = export(cut(g, island), args.format)
    if args.output:
        write_text(args.output, text)
        note(f"wrote {args.output}")
    else:
        out.write(text)
    return 0
