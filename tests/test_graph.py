"""The networkx op graph: islands, partitions, crossing bytes, unused ops and layers,
against values worked out by hand from `fbtool inspect --ops` listings of the fixtures."""
import json
import re
import xml.etree.ElementTree as ET

import networkx as nx
import pytest

from conftest import FIXTURES
from fbtool import open_model
from fbtool.graph import build_graph, find_islands, layer_of, partitions, unused_ops
from helpers import mutated, run_fbtool


def graph(name, sg=0):
    with open_model(FIXTURES / f"{name}.tflite") as m:
        return build_graph(m).subgraphs[sg]


def test_mixed_flex_islands_by_hand():
    # ops: 0 FC, 1 TANH, 2 RESHAPE, 3 FlexMatrixDeterminant [13]->[14], 4 RESHAPE, 5 STRIDED_SLICE,
    #      6 FlexRoll [12, const 7, const 6]->[17], 7 CONCATENATION, 8 FC
    g = graph("mixed_flex")
    islands = find_islands(g)
    assert [i.ops for i in islands] == [[3], [6]]
    assert (islands[0].inputs, islands[0].outputs) == ([13], [14])
    assert (islands[1].inputs, islands[1].outputs) == ([12], [17])   # constants 6, 7 do not cross
    assert (islands[1].input_bytes, islands[1].output_bytes) == (9 * 4, 9 * 4)  # [-1,9] float32, batch 1
    assert islands[1].dynamic
    assert partitions(g) == 1   # FlexRoll only waits for TANH: the runtime runs it with op 3


RUNTIME_LOG = (FIXTURES / "logs" / "tf2.18_flex_partitions.log").read_text()


@pytest.mark.parametrize("name", ["mixed_flex", "string_flex", "select_only_cnn", "tensorlist_flex"])
def test_partitions_match_the_flex_delegates_own_count(name):
    """TF 2.18.1's interpreter logs 'N nodes delegated out of M nodes with K partitions' for subgraph 0."""
    line = next(l for l in RUNTIME_LOG.splitlines() if l.startswith(f"{name}.tflite:"))
    delegated, total, count = map(int, re.search(r"(\d+) nodes delegated out of (\d+) nodes with (\d+) partitions",
                                                  line).groups())
    g = graph(name)
    assert sum(1 for _, k in g.nodes(data="kind") if k == "flex") == delegated
    assert sum(1 for _, k in g.nodes(data="kind") if k != "tensor") == total
    assert partitions(g) == count


def test_string_flex_islands_differ_from_partitions():
    # ops: 0 FlexStringLength [0]->[3], 1 CAST [3]->[4], 2 FlexAsString [4]->[5],
    #      3 FlexStringJoin [0,2,5]->[6], 4 FlexStringToNumber [0]->[7], 5 MUL, 6 ADD
    g = graph("string_flex")
    assert [i.ops for i in find_islands(g)] == [[0], [2, 3], [4]]
    assert partitions(g) == 2   # [0] then, after CAST, [2, 3, 4]


def test_select_only_model_is_one_island():
    g = graph("select_only_cnn")
    (island,) = find_islands(g)
    assert len(island.ops) == 41
    assert (island.inputs, island.outputs) == ([0], [60])
    assert (island.input_bytes, island.output_bytes) == (16 * 16 * 3 * 4, 10 * 4)
    assert partitions(g) == 1


def test_builtin_model_has_no_islands():
    g = graph("builtin_cnn")
    assert find_islands(g) == [] and partitions(g) == 0


def test_control_flow_calls():
    with open_model(FIXTURES / "while_loop.tflite") as m:
        calls = build_graph(m).calls
    assert sorted(calls.edges()) == [(0, 1), (0, 2)]
    assert all(d["op"] == 0 for _, _, d in calls.edges(data=True))


def test_unused_op(tmp_path):
    def change(m):  # make the subgraph output the FC before the softmax: softmax (op 2) is left unused
        sg = m.subgraphs[0]
        sg.outputs = [sg.operators[1].outputs[0]]
    path = mutated(tmp_path, "builtin_mlp.tflite", change)
    with open_model(path) as m:
        assert unused_ops(build_graph(m).subgraphs[0]) == [2]


@pytest.mark.parametrize("name,layer", [
    ("sequential_1/dense_1/MatMul", ("dense_1", "sequential_1/dense_1")),
    ("sequential_1/layer_normalization_1/moments/mean", ("layer_normalization_1", "sequential_1/layer_normalization_1/moments")),
    ("sequential_6_1/dense_12_1/MatMul;sequential_6_1/dense_12_1/Relu", ("dense_12_1", "sequential_6_1/dense_12_1")),
    ("dense/BiasAdd", ("dense", "dense")),
    ("StatefulPartitionedCall_1:0", (None, None)),
    ("Identity", (None, None)),
])
def test_layer_from_tensor_name(name, layer):
    assert layer_of(name) == layer


def test_dot_export_marks_flex_ops(tmp_path):
    out = tmp_path / "g.dot"
    r = run_fbtool("graph", FIXTURES / "mixed_flex.tflite", "-o", out)
    assert r.returncode == 0, r.stderr
    dot = out.read_text()
    assert dot.count('fillcolor="#f5a623"') == 2 and "FlexRoll" in dot


def test_graphml_and_json_exports_read_back(tmp_path):
    for fmt in ("graphml", "json"):
        r = run_fbtool("graph", FIXTURES / "select_only_cnn.tflite", "--format", fmt)
        assert r.returncode == 0, r.stderr
        if fmt == "graphml":
            g = nx.parse_graphml(r.stdout)
            ET.fromstring(r.stdout.encode())
        else:
            g = nx.node_link_graph(json.loads(r.stdout), edges="links")
        ops = [n for n, d in g.nodes(data=True) if d["kind"] != "tensor"]
        assert len(ops) == 41 and all(g.nodes[n]["kind"] == "flex" for n in ops)


def test_island_cut_and_bad_island():
    r = run_fbtool("graph", FIXTURES / "mixed_flex.tflite", "--island", "1")
    assert r.returncode == 0 and "FlexRoll" in r.stdout and "FlexMatrixDeterminant" not in r.stdout
    r = run_fbtool("graph", FIXTURES / "mixed_flex.tflite", "--island", "7")
    assert r.returncode == 2 and r.stderr.startswith("fbtool: error: ") and "no island 7" in r.stderr


def test_graphviz_reads_the_dot(tmp_path):
    import shutil
    import subprocess
    if not shutil.which("dot"):
        pytest.skip("Graphviz not installed (apt-get install graphviz)")
    out = tmp_path / "g.dot"
    run_fbtool("graph", FIXTURES / "select_only_cnn.tflite", "-o", out)
    svg = subprocess.run(["dot", "-Tsvg", str(out)], capture_output=True, text=True, check=True).stdout
    assert svg.count("FlexConv2D") == 2
