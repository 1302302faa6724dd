"""Bad models give one `fbtool: error: FILE: where: what` line and exit 2; each case is built by hand."""
import struct

import flatbuffers
import pytest
from ai_edge_litert import schema_py_generated as fb

from conftest import FIXTURES
from helpers import litert_loads, mutated, run_fbtool


def assert_error(path, *fragments, args=()):
    r = run_fbtool("inspect", *args, path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"fbtool: error: {path}: ")
    assert "internal error" not in lines[0]
    for frag in fragments:
        assert frag in lines[0]
    return lines[0]


def test_missing_file(tmp_path):
    assert_error(tmp_path / "nope.tflite", "No such file")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.tflite"
    p.write_bytes(b"")
    assert_error(p, "empty file")


def test_directory(tmp_path):
    assert_error(tmp_path, "Is a directory")


def test_not_a_tflite_file(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(100))
    assert_error(p, "file identifier", "expected b'TFL3'")


def test_truncated_model(tmp_path):
    data = (FIXTURES / "builtin_cnn.tflite").read_bytes()
    p = tmp_path / "cut.tflite"
    p.write_bytes(data[: len(data) // 2])
    assert_error(p, "out of bounds")


def test_huge_string_length(tmp_path):
    """The facts note's example: a string length of 0x7FFFFFF0 that python flatbuffers reads past."""
    data = bytearray((FIXTURES / "builtin_mlp.tflite").read_bytes())
    root = struct.unpack_from("<I", data, 0)[0]
    model = fb.Model.GetRootAs(data, 0)
    desc_field = root + model._tab.Offset(10)  # Model.description is field 3: vtable slot 4 + 2 * 3
    desc = desc_field + struct.unpack_from("<I", data, desc_field)[0]
    data[desc:desc + 4] = struct.pack("<I", 0x7FFFFFF0)
    p = tmp_path / "longstr.tflite"
    p.write_bytes(bytes(data))
    assert_error(p, "description", "overruns the file")


@pytest.mark.parametrize("name", ["builtin_mlp", "while_loop", "builtin_cnn"])
def test_litert_loads_the_unbroken_fixtures(name):
    """The control for the `not litert_loads` checks below: LiteRT does load the originals."""
    assert litert_loads(FIXTURES / f"{name}.tflite")


def _first_op(model):
    return model.subgraphs[0].operators[0]


def test_input_tensor_out_of_range(tmp_path):
    def change(m):
        _first_op(m).inputs[0] = 9999
    p = mutated(tmp_path, "builtin_mlp.tflite", change)
    n = 6
    line = assert_error(p, f"subgraph 0 operator 0: input tensor 9999 out of range ({n} tensors)")
    # --no-verify skips semantics, never bounds
    assert assert_error(p, args=("--no-verify",)) == line
    assert not litert_loads(p)


def test_minus_one_as_output(tmp_path):
    """CVE-2020-15211: the optional-tensor marker -1 used as an output."""
    def change(m):
        _first_op(m).outputs[0] = -1
    p = mutated(tmp_path, "builtin_mlp.tflite", change)
    assert_error(p, "operator 0: output tensor -1 out of range")
    assert not litert_loads(p)


def test_opcode_index_out_of_range(tmp_path):
    def change(m):
        _first_op(m).opcodeIndex = 40
    assert_error(mutated(tmp_path, "builtin_mlp.tflite", change), "opcode index 40 out of range (2 operator codes)")


def test_buffer_index_out_of_range(tmp_path):
    def change(m):
        m.subgraphs[0].tensors[1].buffer = 500
    assert_error(mutated(tmp_path, "builtin_mlp.tflite", change), "tensor 1: buffer 500 out of range")


def test_tensor_both_input_and_output(tmp_path):
    """CVE-2020-15210."""
    def change(m):
        op = _first_op(m)
        op.outputs[0] = op.inputs[0]
    p = mutated(tmp_path, "builtin_mlp.tflite", change)
    assert_error(p, "operator 0 (FULLY_CONNECTED)", "tensor 0 is both an input and an output")
    assert not litert_loads(p)


def test_output_produced_twice_over_its_own_input(tmp_path):
    """Op 1 reads op 0's output and writes it too: both input and output of a builtin with options."""
    def change(m):
        ops = m.subgraphs[0].operators
        ops[1].outputs[0] = ops[0].outputs[0]
    p = mutated(tmp_path, "builtin_mlp.tflite", change)
    assert_error(p, "operator 1", "both an input and an output")
    assert not litert_loads(p)


def test_constant_data_size_mismatch(tmp_path):
    def change(m):
        t = max(m.subgraphs[0].tensors, key=lambda t: len(m.buffers[t.buffer].data if m.buffers[t.buffer].data is not None else []))
        t.shape[0] += 1
    p = mutated(tmp_path, "builtin_mlp.tflite", change)
    assert_error(p, "needs", "bytes, buffer", "holds")
    assert not litert_loads(p)


def test_while_body_is_its_own_caller(tmp_path):
    """CVE-2021-29591: a While whose body runs the subgraph the While is in."""
    def change(m):
        for op in m.subgraphs[0].operators:
            if isinstance(op.builtinOptions, fb.WhileOptionsT):
                op.builtinOptions.bodySubgraphIndex = 0
    p = mutated(tmp_path, "while_loop.tflite", change)
    assert_error(p, "control flow recurses")
    assert not litert_loads(p)


def test_while_subgraph_out_of_range(tmp_path):
    def change(m):
        for op in m.subgraphs[0].operators:
            if isinstance(op.builtinOptions, fb.WhileOptionsT):
                op.builtinOptions.condSubgraphIndex = 7
    assert_error(mutated(tmp_path, "while_loop.tflite", change), "WHILE refers to subgraph 7 (3 subgraphs)")


def test_external_buffer_outside_file(tmp_path):
    def change(m):
        b = next(b for b in m.buffers if b.offset > 1)
        b.offset = 1 << 40
    p = mutated(tmp_path, "buffer_offset.tflite", change)
    assert_error(p, "buffer", "lies outside the")


def test_aliased_shape_bomb(tmp_path):
    """A small file whose 2,000 tensors all share one 1M-element shape vector: rejected at once."""
    b = flatbuffers.Builder(0)
    fb.TensorStartShapeVector(b, 1 << 20)
    for _ in range(1 << 20):
        b.PrependInt32(1)
    shape = b.EndVector()
    tensors = []
    for _ in range(2000):
        fb.TensorStart(b)
        fb.TensorAddShape(b, shape)
        tensors.append(fb.TensorEnd(b))
    fb.SubGraphStartTensorsVector(b, len(tensors))
    for t in reversed(tensors):
        b.PrependUOffsetTRelative(t)
    tvec = b.EndVector()
    fb.SubGraphStart(b)
    fb.SubGraphAddTensors(b, tvec)
    sg = fb.SubGraphEnd(b)
    fb.ModelStartSubgraphsVector(b, 1)
    b.PrependUOffsetTRelative(sg)
    sgs = b.EndVector()
    fb.ModelStart(b)
    fb.ModelAddVersion(b, 3)
    fb.ModelAddSubgraphs(b, sgs)
    b.Finish(fb.ModelEnd(b), file_identifier=b"TFL3")
    p = tmp_path / "alias.tflite"
    p.write_bytes(b.Output())
    assert p.stat().st_size < 5 << 20
    assert_error(p, "aliased offsets", args=("--no-verify",))


def test_unknown_newer_builtin_and_dtype_are_shown(tmp_path):
    def change(m):
        m.operatorCodes[1].builtinCode = 250
        m.operatorCodes[1].deprecatedBuiltinCode = 127
        m.subgraphs[0].tensors[-1].type = 99
    p = mutated(tmp_path, "builtin_mlp.tflite", change)
    assert_error(p, "unsupported tensor type 99")     # the runtime refuses it: "Unsupported data type 99"
    assert not litert_loads(p)
    r = run_fbtool("inspect", "--ops", "--tensors", "--no-verify", p)    # still shown, past the semantic checks
    assert r.returncode == 0, r.stderr
    assert "BUILTIN_250(v1)" in r.stdout
    assert "type_99" in r.stdout
