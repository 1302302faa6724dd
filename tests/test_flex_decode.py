"""The TF-free Flex/custom decoder against TensorFlow's own NodeDef parsing (fixtures/flex_golden.json,
made by fixtures/make_flex_golden.py with TF 2.18.1), and against malformed bytes."""
import json

import pytest
from flatbuffers import flexbuffers
from hypothesis import given, settings, strategies as st

from conftest import FIXTURES, MODELS
from fbtool import open_model
from fbtool.flex.decode import decode_ops
from fbtool.flex.flexbuffer import FlexBufferError, loads
from fbtool.flex.nodedef import parse_nodedef
from fbtool.flex.protobuf import ProtoError

GOLDEN = json.loads((FIXTURES / "flex_golden.json").read_text())
LOG_FLEX_OPS = json.loads((FIXTURES / "flex_ops_from_logs.json").read_text())


@pytest.mark.parametrize("model", MODELS, ids=[m.stem for m in MODELS])
def test_decoded_ops_match_tensorflow(model):
    with open_model(model) as m:
        ours = decode_ops(m)
    expected = GOLDEN.get(model.name, [])
    assert [(d.subgraph, d.index, d.kind, d.custom_code, d.tf_op) for d in ours] == [
        (g["subgraph"], g["index"], g["kind"], g["custom_code"], g["tf_op"]) for g in expected]
    for d, g in zip(ours, expected):
        assert d.error is None
        assert d.attrs == g["attrs"], (d.index, d.tf_op)
        if d.kind == "flex":
            assert d.num_inputs == g["num_inputs"]


def test_flex_ops_match_the_converters_own_warning():
    with open_model(FIXTURES / "mixed_flex.tflite") as m:
        ours = sorted({d.custom_code for d in decode_ops(m)})
    for log, ops in LOG_FLEX_OPS.items():
        if log.startswith("tf2"):
            assert ours == sorted(ops), log


def test_conv2d_attrs_by_hand():
    with open_model(FIXTURES / "select_only_cnn.tflite") as m:
        conv = next(d for d in decode_ops(m) if d.tf_op == "Conv2D")
    assert conv.attrs["T"] == "float32" and conv.attrs["data_format"] == "NHWC"
    assert conv.attrs["strides"] == [1, 1, 1, 1] and conv.attrs["explicit_paddings"] == []


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_flexbuffer_reader_only_raises_its_error(data):
    try:
        loads(data)
    except FlexBufferError:
        pass


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_nodedef_parser_only_raises_its_error(data):
    try:
        parse_nodedef(data)
    except ProtoError:
        pass


KEYS = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=8)  # flexbuffers keys: ASCII, no NUL


@given(st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, width=32)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=5),
                    max_leaves=20))
@settings(max_examples=300, deadline=None)
def test_flexbuffer_reader_agrees_with_flatbuffers_package(value):
    data = bytes(flexbuffers.Dumps(value))
    assert _strings_to_text(loads(data)) == flexbuffers.Loads(data)


@given(st.lists(st.binary(max_size=70_000) | st.text(max_size=600), min_size=1, max_size=4))
@settings(max_examples=60, deadline=None)
def test_long_strings_and_blobs_agree_with_flatbuffers_package(values):
    """A string's size field counts bytes whatever width stores it: 256 bytes and more (a NodeDef with
    a long Keras scope in its debug info) was refused as overrunning the buffer."""
    builder = flexbuffers.Builder()
    with builder.Vector():
        for v in values:
            (builder.Blob if isinstance(v, bytes) else builder.String)(v)
    data = bytes(builder.Finish())
    assert [bytes(x) if isinstance(v, bytes) else x.decode() for v, x in zip(values, loads(data))] == \
        [bytes(x) if isinstance(x, (bytes, bytearray, memoryview)) else x for x in flexbuffers.Loads(data)]


def test_aliased_strings_are_refused_in_linear_time():
    """2,000 vector slots sharing one 5,000-byte string: 11 KB that would decode to 10 MB (a 1.5 MB model
    built this way needed 3 GB). Decoded bytes are charged against the input's size."""
    builder = flexbuffers.Builder(share_strings=True)
    with builder.Vector():
        for _ in range(2000):
            builder.String("y" * 5000)
    with pytest.raises(FlexBufferError, match="aliased"):
        loads(bytes(builder.Finish()))


def test_a_converter_made_nodedef_of_256_bytes_or_more_decodes_and_patches(tmp_path):
    """Ops under a long name scope carry it in their NodeDef's debug info: 324-byte NodeDefs here."""
    tf = pytest.importorskip("tensorflow")

    def f(x):
        with tf.name_scope("a_really_long_keras_layer_scope_name_" * 8):
            return tf.nn.relu(x) + 1.0
    fn = tf.function(f, input_signature=[tf.TensorSpec([2, 4])])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.SELECT_TF_OPS]
    path = tmp_path / "long.tflite"
    path.write_bytes(converter.convert())
    with open_model(path) as m:
        decoded = decode_ops(m)
        sizes = [len(loads(m.read(op.custom_options))[1]) for op in m.subgraphs[0].operators]
    assert max(sizes) >= 256 and [d.error for d in decoded] == [None] * len(decoded)
    assert [d.tf_op for d in decoded] == ["Relu", "AddV2", "Identity"]
    from fbtool.patch.rewrite import patch_model
    assert patch_model(path, tmp_path / "p.tflite")["flex_after"] == 0


def _strings_to_text(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, dict):
        return {k: _strings_to_text(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_strings_to_text(x) for x in v]
    return v


@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_corrupted_flex_options_are_reported_not_raised(tmp_path_factory, data):
    """Flip bytes inside the real Flex options of a fixture: decode_ops records an error or succeeds."""
    src = (FIXTURES / "select_only_cnn.tflite").read_bytes()
    with open_model(FIXTURES / "select_only_cnn.tflite") as m:
        spans = [op.custom_options for op in m.subgraphs[0].operators]
    span = data.draw(st.sampled_from(spans))
    buf = bytearray(src)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = span.offset + data.draw(st.integers(0, span.size - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("flex") / "m.tflite"
    path.write_bytes(bytes(buf))
    with open_model(path) as m:
        for d in decode_ops(m):
            assert d.error is None or d.error.startswith("options do not decode")


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


@pytest.mark.parametrize("attr_value", [
    bytes([4 << 3 | 0, 5]),                  # AttrValue.f as a varint instead of fixed32
    bytes([2 << 3 | 0, 7]),                  # AttrValue.s as a varint instead of bytes
    _field(8, _field(1, b"xx")),             # TensorProto.dtype as bytes instead of a varint
    _field(1, bytes([3 << 3 | 1]) + bytes(8)),   # ListValue.i as fixed64
])
def test_wrong_wire_types_are_proto_errors(attr_value):
    """Well-framed protobuf with a field of the wrong wire type: a ProtoError, not a TypeError."""
    raw = _field(2, b"Op") + _field(5, _field(1, b"T") + _field(2, attr_value))
    with pytest.raises(ProtoError):
        parse_nodedef(raw)


@given(st.binary(min_size=1, max_size=64), st.integers(1 << 16, 1 << 20))
@settings(max_examples=20, deadline=None)
def test_long_inputs_decode_in_linear_time(unit, size):
    """Up to a megabyte of repeated bytes through both decoders: an error or a value, fast (the
    FlexBuffer reader stops at 100,000 values, and charges decoded bytes against the input)."""
    import time
    data = (unit * (size // len(unit) + 1))[:size]
    for decode, error in ((loads, FlexBufferError), (parse_nodedef, ProtoError)):
        start = time.perf_counter()
        try:
            decode(data)
        except error:
            pass
        assert time.perf_counter() - start < 5, decode.__name__


def test_a_wide_flexbuffer_vector_stops_at_the_item_limit():
    builder = flexbuffers.Builder()
    with builder.Vector():
        for i in range(150_000):
            builder.Int(i)
    with pytest.raises(FlexBufferError, match="more than 100000 values"):
        loads(bytes(builder.Finish()))
