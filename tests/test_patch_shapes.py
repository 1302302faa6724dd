"""`fbtool patch` on the graph shapes real models have (fixtures/shapes, made by fixtures/make_shapes.py
with TF 2.18.1's converter): a model output also read by another op, the same tensor output twice,
two outputs of one op, an output that is a model input, two signatures sharing ops, Flex ops in
control-flow branches. Before the IR kept use lists, six of these came out with an op reading a
tensor nobody wrote (or an internal error). The truth is each .npz's outputs, computed by the
tf.function itself at fixture time; the patched model runs on ai-edge-litert, which has no Flex
delegate."""
import json

import numpy as np
import pytest
from ai_edge_litert.tools import flatbuffer_utils

from conftest import FIXTURES, ROOT
from fbtool import open_model
from fbtool.patch.rewrite import patch_model
from helpers import run_fbtool, run_on_litert
from test_patch import FLEX_PYTHON, needs_flex_runtime

SHAPES = FIXTURES / "shapes"
SCHEMA = json.loads((ROOT / "schemas" / "patch.schema.json").read_text())
# fixture -> (Flex ops left, CAST copies the patch must insert): a copy only where a model output
# cannot be written by its producer (fixtures/README.md, shapes/)
EXPECTED = {
    "select_embedding_logits": ([], 0),
    "select_argmax_one_hot": ([], 0),
    "select_same_output_twice": ([], 0),
    "select_two_identities": ([], 1),       # two outputs copy one Relu: one takes it, the other a copy
    "select_top_k": ([], 0),
    "select_passthrough": ([], 1),          # x_out is the model input x: only a copy can write it
    "select_multi_signature": ([], 0),
    "frame_select_only": ([], 0),
    "cond_select_only": ([], 0),            # its MatrixDeterminant is decomposed
}


def io_tables(path):
    """Per subgraph (inputs, outputs), and per signature its tensor maps: what the outside world sees."""
    with open_model(path) as m:
        return ([(tuple(sg.inputs), tuple(sg.outputs)) for sg in m.subgraphs],
                [(s.key, s.subgraph, s.inputs, s.outputs) for s in m.signatures])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_graph_shape_patches_and_runs_without_flex(name, tmp_path):
    src, out = SHAPES / f"{name}.tflite", tmp_path / f"{name}.tflite"
    doc = patch_model(src, out)
    kept, copies = EXPECTED[name]
    assert sorted(k["tf_op"] for k in doc["kept"]) == kept
    assert sum(r.get("inserted", []).count("CAST v1") for r in doc["rewrites"]) == copies
    # every tensor the outside world names keeps its index: subgraph inputs and outputs, signatures
    assert io_tables(out) == io_tables(src)
    ref = flatbuffer_utils.convert_bytearray_to_object(bytearray(out.read_bytes()))
    for sg in ref.subgraphs:       # every op input is a constant, a subgraph input or an earlier output
        known = set(sg.inputs) | {i for i, t in enumerate(sg.tensors) if ref.buffers[t.buffer].data is not None}
        for op in sg.operators:
            assert all(i == -1 or i in known or int(np.prod(sg.tensors[i].shape)) == 0 for i in op.inputs)
            known |= set(op.outputs)
        assert set(sg.outputs) <= known
    if kept:
        return
    got = run_on_litert(out, SHAPES / f"{name}.npz", tmp_path / "out.npz")
    want = {k.split(":", 1)[1]: v for k, v in np.load(SHAPES / f"{name}.npz").items() if k.startswith("output:")}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(value).max()), err_msg=key)


@needs_flex_runtime
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_graph_shape_verifies_against_the_flex_original(name, tmp_path):
    r = run_fbtool("patch", SHAPES / f"{name}.tflite", "-o", tmp_path / "p.tflite", "--json",
                   "--python", FLEX_PYTHON, timeout=600)
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)["verification"]
    assert v["ok"] and v["first_divergence"] is None, v


def test_no_builtin_is_left_with_custom_options(tmp_path):
    """A rewritten op is a new table without custom_options: with even an empty vector the runtime logs
    "Found builtin operator X with custom options" once per op."""
    out = tmp_path / "p.tflite"
    patch_model(FIXTURES / "select_only_cnn.tflite", out)
    ref = flatbuffer_utils.convert_bytearray_to_object(bytearray(out.read_bytes()))
    assert all(op.customOptions is None for sg in ref.subgraphs for op in sg.operators)
