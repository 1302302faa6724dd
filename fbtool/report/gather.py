"""What the report shows about one model, read in one pass: the ``inspect`` and ``flex``
documents, the op graphs and their Flex islands, and (for a patched model) the patch plan."""
from __future__ import annotations

import os
from dataclasses import dataclass

import networkx as nx

from ..flex.analyze import describe_flex
from ..flex.catalog import load_catalog, version_tuple
from ..graph import Island, build_graph, find_islands
from ..inspect import describe
from ..reader.model import open_model


@dataclass
class ModelFacts:
    path: str
    inspect: dict                     # schemas/inspect.schema.json
    flex: dict                        # schemas/flex.schema.json
    graphs: list[nx.DiGraph]          # one per subgraph, from fbtool.graph.build
    islands: list[list[Island]]       # per subgraph
    required_runtime: str | None      # the newest runtime its builtin (op, version) pairs need
    plan: tuple[list[dict], list[dict]] | None = None   # fbtool patch's (rewrites, kept)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def flex_op(self, subgraph: int, index: int) -> dict | None:
        return next((o for o in self.flex["ops"] if (o["subgraph"], o["index"]) == (subgraph, index)), None)


def required_runtime(inspect: dict) -> str | None:
    catalog = load_catalog()
    needs = [catalog.min_runtime(h["opcode"], h["version"]) for h in inspect["op_histogram"] if h["kind"] == "builtin"]
    needs = [n for n in needs if n]
    return max(needs, key=version_tuple) if needs else None


def gather(path: str | os.PathLike, with_plan: bool = False) -> ModelFacts:
    """Read and verify the model at ``path`` (raises ModelError); ``with_plan`` also asks
    ``fbtool patch`` what it would still rewrite and why it keeps the rest."""
    path = os.fspath(path)
    with open_model(path) as model:
        inspect = describe(model)
        flex = describe_flex(model)
        graphs = build_graph(model).subgraphs
        planned = None
        if with_plan:
            from ..patch.rewrite import plan   # only the before/after page needs the patcher
            result = plan(model)   # (rewrites, kept), or an object carrying both (newer patcher)
            planned = (result.rewrites, result.kept) if hasattr(result, "kept") else tuple(result)
    return ModelFacts(path, inspect, flex, graphs, [find_islands(g) for g in graphs], required_runtime(inspect),
                      planned)
