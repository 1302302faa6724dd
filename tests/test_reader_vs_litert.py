"""fbtool's reader against an independent one: LiteRT's flatc-generated object API.

``flatbuffer_utils.read_model`` renumbers buffers (it compacts empty ones), so
the raw object API (``convert_bytearray_to_object``) is the reference here.
"""
import pytest

from fbtool import open_model

flatbuffer_utils = pytest.importorskip("ai_edge_litert.tools.flatbuffer_utils")


def _s(value):
    return value.decode() if isinstance(value, bytes) else (value or "")


def _list(value):
    return [] if value is None else [int(v) for v in value]


def test_reader_matches_flatbuffer_utils(fixture_model):
    assert_same_as_litert(fixture_model)


def assert_same_as_litert(path):
    ref = flatbuffer_utils.convert_bytearray_to_object(bytearray(path.read_bytes()))
    with open_model(path) as m:
        assert m.version == ref.version
        assert m.description == _s(ref.description)
        assert [(oc.code, _s(oc.custom_code) or None, oc.version) for oc in m.operator_codes] == [
            (max(oc.deprecatedBuiltinCode, oc.builtinCode), _s(oc.customCode) or None, oc.version)
            for oc in ref.operatorCodes
        ]
        assert len(m.subgraphs) == len(ref.subgraphs)
        for sg, rsg in zip(m.subgraphs, ref.subgraphs):
            assert sg.name == _s(rsg.name)
            assert list(sg.inputs) == _list(rsg.inputs)
            assert list(sg.outputs) == _list(rsg.outputs)
            assert [(t.name, t.type_code, list(t.shape), list(t.t.get("shape_signature", ())), t.buffer, t.is_variable)
                    for t in sg.tensors] == [
                (_s(r.name), r.type, _list(r.shape), _list(r.shapeSignature), r.buffer, bool(r.isVariable))
                for r in rsg.tensors
            ]
            assert [(op.opcode_index, list(op.inputs), list(op.outputs), list(op.intermediates))
                    for op in sg.operators] == [
                (r.opcodeIndex, _list(r.inputs), _list(r.outputs), _list(r.intermediates)) for r in rsg.operators
            ]
            for t, r in zip(sg.tensors, rsg.tensors):
                q = t.quantization
                if r.quantization is None or r.quantization.scale is None:
                    assert q is None or not q.has("scale")
                else:
                    assert list(q.get("scale")) == pytest.approx(list(r.quantization.scale))
                    assert list(q.get("zero_point")) == _list(r.quantization.zeroPoint)
                assert (t.sparsity is not None) == (r.sparsity is not None)
        assert [b.size for b in m.buffers] == [
            len(b.data) if b.data is not None else (b.size if b.offset > 1 else 0) for b in ref.buffers
        ]
        assert m.metadata == [(_s(md.name), md.buffer) for md in (ref.metadata or [])]
        assert [(s.key, s.subgraph, s.inputs, s.outputs) for s in m.signatures] == [
            (_s(s.signatureKey), s.subgraphIndex,
             {_s(t.name): t.tensorIndex for t in s.inputs or []},
             {_s(t.name): t.tensorIndex for t in s.outputs or []})
            for s in (ref.signatureDefs or [])
        ]
