"""Models that each break one thing fbtool/reader/checks.py judges, for tests/test_runtime_checks.py.

Each case is a function ``change(model)`` on LiteRT's object API (``schema_py_generated.ModelT``, as
``helpers.mutated`` hands it) registered with its base model and a one-line description that says
where LiteRT (google-ai-edge/LiteRT @ 19a1585ff, tflite/...) enforces it, or "not enforced". A case
registered with ``raw=True`` gets the base file's bytes instead and returns new bytes.

Bases: fbtool fixtures, plus two models TF 2.18.1's converter writes (fixtures/make_check_bases.py):
``checks/string_gather`` (GATHER over a constant string[3]: count 3, offsets 20, 21, 23, 26, "abbccc")
and ``checks/reshape_scalar`` (RESHAPE's shape operand is an int32[0] constant with an EMPTY data vector).

builtin_mlp: T0 input [1,16] -FC(T0,T2)-> T3 -FC(T3,T1)-> T4 -SOFTMAX-> T5 (output); T2 is [32,16] float32
(2048 bytes of data). sparse: T1 [64,64] float32, traversal [0,1], dims DENSE 64 + CSR, into DENSIFY.

    python tests/runtime_cases.py OUTDIR      # write every case to OUTDIR/NAME.tflite
"""
from __future__ import annotations

import copy
import pathlib
import struct
import sys
from collections.abc import Callable
from typing import NamedTuple

from ai_edge_litert import schema_py_generated as S
from ai_edge_litert.tools import flatbuffer_utils

from conftest import FIXTURES
from helpers import mutated

MLP, SPARSE, CUSTOM = "builtin_mlp.tflite", "sparse.tflite", "custom_op.tflite"
WHILE, IF = "while_loop.tflite", "if_cond.tflite"
STRING, RESHAPE = "checks/string_gather.tflite", "checks/reshape_scalar.tflite"


class Case(NamedTuple):
    change: Callable
    base: str    # relative to FIXTURES
    desc: str
    raw: bool


CASES: dict[str, Case] = {}


def case(base: str, desc: str, raw: bool = False):
    def register(fn):
        CASES[fn.__name__] = Case(fn, base, desc, raw)
        return fn
    return register


def build(name: str, out_dir: pathlib.Path) -> pathlib.Path:
    """Write case NAME to OUT_DIR/NAME.tflite."""
    c = CASES[name]
    if not c.raw:
        return mutated(out_dir, c.base, c.change, f"{name}.tflite")
    out = out_dir / f"{name}.tflite"
    out.write_bytes(c.change(bytearray((FIXTURES / c.base).read_bytes())))
    return out


def new_buffer(m, data: bytes) -> int:
    b = S.BufferT()
    b.data = list(data)
    m.buffers.append(b)
    return len(m.buffers) - 1


def new_tensor(m, shape, ttype=S.TensorType.FLOAT32, data: bytes | None = None) -> int:
    """Append a tensor to subgraph 0 (with a new buffer holding DATA, if given); return its index."""
    t = S.TensorT()
    t.shape, t.type, t.name = list(shape), ttype, b"crafted"
    t.buffer = 0 if data is None else new_buffer(m, data)
    m.subgraphs[0].tensors.append(t)
    return len(m.subgraphs[0].tensors) - 1


def _data(m, tensor: int) -> bytes:
    return bytes(bytearray(m.buffers[m.subgraphs[0].tensors[tensor].buffer].data))


def _set_data(m, tensor: int, data: bytes):
    m.buffers[m.subgraphs[0].tensors[tensor].buffer].data = list(data)


# ---------------------------------------------------------------- controls

@case(MLP, "unmodified builtin_mlp (control)")
def baseline_mlp(m):
    pass


@case(STRING, "unmodified string_gather (control)")
def baseline_string(m):
    pass


# ---------------------------------------------------------------- model level

@case(MLP, "Model.version = 2; interpreter_builder.cc:898-903 'Model provided is schema version'")
def version_2(m):
    m.version = 2


@case(MLP, "no subgraphs (signatures dropped too); interpreter_builder.cc:919-921 'No subgraph in the model'")
def no_subgraphs(m):
    m.subgraphs, m.signatureDefs = [], []


@case(MLP, "an extra CUSTOM operator code without custom_code, used by no operator; op_resolver.cc:50-55, "
           "from interpreter_builder.cc:252-290 which resolves every code")
def custom_no_code_unused(m):
    oc = S.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = S.BuiltinOperator.CUSTOM
    oc.version = 1
    m.operatorCodes.append(oc)


@case(MLP, "SOFTMAX made a CUSTOM op with custom_code ''; not enforced (only verifier.cc:764-767, never run): "
           "an unresolved custom op")
def custom_empty_code_used(m):
    oc = S.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = S.BuiltinOperator.CUSTOM
    oc.customCode, oc.version = b"", 1
    m.operatorCodes.append(oc)
    op = m.subgraphs[0].operators[2]
    op.opcodeIndex, op.builtinOptionsType, op.builtinOptions = len(m.operatorCodes) - 1, 0, None


# ---------------------------------------------------------------- tensors

@case(MLP, "an unused float32 tensor of shape [-2, 3]; util.cc:218-257 BytesRequired, from subgraph.cc:2004-2028")
def dim_neg2_unused(m):
    new_tensor(m, [-2, 3])


@case(MLP, "graph input T0 shape [-1, 16] in shape, not only shape_signature; util.cc:218-257 BytesRequired")
def dim_neg1_input(m):
    t = m.subgraphs[0].tensors[0]
    t.shape = t.shapeSignature = [-1, 16]


@case(MLP, "an unused STRING tensor of shape [-1]; not enforced: subgraph.cc:2019-2028 skips BytesRequired for "
           "string/resource/variant")
def dim_neg1_string_unused(m):
    new_tensor(m, [-1], S.TensorType.STRING)


@case(MLP, "an unused float32 tensor [65536, 65536] (2^32 elements); not enforced (size_t arithmetic; "
           "only verifier.cc:660-679)")
def overflow32_unused(m):
    new_tensor(m, [65536, 65536])


@case(MLP, "FC output T3 [65536, 65536] (FC's Prepare resizes it); refused by the XNNPACK delegate at allocate "
           "('failed to reshape runtime'); the TFLite kernels alone run it")
def overflow32_intermediate(m):
    m.subgraphs[0].tensors[3].shape = [65536, 65536]


@case(MLP, "an unused float32 tensor [2^31-1]*3, past 2^64 elements; util.cc:203-229 MultiplyAndCheckOverflow")
def overflow64_unused(m):
    new_tensor(m, [0x7FFFFFFF] * 3)


@case(SPARSE, "last CSR index 63 -> 255 in a 64-wide dim; not enforced: sparsity_format_converter.cc:324 writes "
              "past the densified buffer (CVE-2022-23560 class)")
def sparse_index_oob(m):
    m.subgraphs[0].tensors[1].sparsity.dimMetadata[1].arrayIndices.values[-1] = 255


@case(SPARSE, "CSR indices as Int32Vector, the last one 100000000; not enforced "
              "(sparsity_format_converter.cc:304-350)")
def sparse_index_huge(m):
    d = m.subgraphs[0].tensors[1].sparsity.dimMetadata[1]
    v = S.Int32VectorT()
    v.values = [int(x) for x in d.arrayIndices.values[:-1]] + [100_000_000]
    d.arrayIndicesType, d.arrayIndices = S.SparseIndexVector.Int32Vector, v


@case(SPARSE, "traversal_order [0, 5] for rank 2; not enforced (interpreter_builder.cc:609-675 ParseSparsity "
              "checks presence and types only)")
def sparse_traversal_oob(m):
    m.subgraphs[0].tensors[1].sparsity.traversalOrder = [0, 5]


@case(MLP, "T2 [32,16] float32 data 2048 -> 2044 bytes; subgraph.cc:1965 'required_bytes <= bytes'")
def data_too_small(m):
    _set_data(m, 2, _data(m, 2)[:-4])


@case(MLP, "T2 [32,16] float32 data 2048 -> 2052 bytes; allowed by subgraph.cc:1965 (only verifier.cc:482, never "
           "run, wants ==)")
def data_too_large(m):
    _set_data(m, 2, _data(m, 2) + bytes(4))


@case(STRING, "string offsets 20,21,23,26 -> 20,21,100000,26; not enforced at load (subgraph.cc:1958-1966 skips "
              "strings); litert 2.3's GATHER checks each read (gather.cc:213)")
def string_offset_past_end(m):
    raw = bytearray(_data(m, 1))
    struct.pack_into("<I", raw, 12, 100000)
    _set_data(m, 1, raw)


@case(STRING, "string offsets -> 20,0,23,26: the gathered string starts in the header; not enforced (only "
              "verifier.cc:76-131 VerifyStringTensorBuffer, never run)")
def string_offset_into_header(m):
    raw = bytearray(_data(m, 1))
    struct.pack_into("<I", raw, 8, 0)
    _set_data(m, 1, raw)


@case(STRING, "string offsets -> 4,21,23,26: the first string overlaps the header, all in order and in bounds; "
              "not enforced (only verifier.cc VerifyStringTensorBuffer, never run)")
def string_first_offset_in_header(m):
    raw = bytearray(_data(m, 1))
    struct.pack_into("<I", raw, 4, 4)
    _set_data(m, 1, raw)


@case(STRING, "the string constant's data vector emptied (a 0-byte constant); not enforced at load; gather.cc:198 "
              "at invoke")
def string_empty_vector(m):
    _set_data(m, 1, b"")


@case(MLP, "an unused RESOURCE [1] tensor with 4 bytes of data; not enforced: subgraph.cc:1958-1966 skips the "
           "size of resource/variant data")
def resource_const(m):
    new_tensor(m, [1], S.TensorType.RESOURCE, b"\1\0\0\0")


@case(MLP, "an unused tensor of type 99 with data; flatbuffer_conversions.cc:1038-1115 ConvertTensorType, from "
           "interpreter_builder.cc:735-739 for every tensor")
def unknown_type_const(m):
    new_tensor(m, [1], 99, b"\1\0\0\0")


# ---------------------------------------------------------------- dataflow

@case(MLP, "op 0 reads a new float32[1,16] T6 in buffer 0 that nothing produces; subgraph.cc:1735-1753 "
           "'Input tensor 6 lacks data' at invoke")
def unproduced_nonempty_buf0(m):
    m.subgraphs[0].operators[0].inputs[0] = new_tensor(m, [1, 16])


@case(STRING, "GATHER's string[3] operand moved to buffer 0; not enforced (subgraph.cc:1735 tests bytes > 0, and "
              "a string tensor has 0); litert 2.3's gather.cc:198 at invoke")
def string_unproduced_buf0(m):
    m.subgraphs[0].tensors[1].buffer = 0


@case(MLP, "op 0 reads a new float32[1,16] T6 whose buffer has an empty data vector: a 0-byte constant "
           "(interpreter_builder.cc:758); subgraph.cc:1965 'required_bytes <= bytes'")
def unproduced_nonempty_emptyvec(m):
    m.subgraphs[0].operators[0].inputs[0] = new_tensor(m, [1, 16], data=b"")


@case(MLP, "op 0 reads T4, which op 1 produces later; not enforced (nodes run in op order)")
def cycle_read_later_output(m):
    m.subgraphs[0].operators[0].inputs[0] = 4


@case(RESHAPE, "unmodified reshape_scalar: RESHAPE's shape int32[0] has an empty data vector, a valid 0-byte "
               "constant (interpreter_builder.cc:758)")
def zero_elem_emptyvec(m):
    pass


@case(RESHAPE, "RESHAPE's shape int32[0] moved to buffer 0 (no data, no producer); allowed: subgraph.cc:1735 only "
               "wants data when bytes > 0")
def zero_elem_buf0(m):
    m.subgraphs[0].tensors[1].buffer = 0


@case(MLP, "op 0's output T3 given 128 bytes of data; not enforced: subgraph.cc:1813-1858 ResizeTensor returns "
           "early, so the kernel writes into the read-only file mapping")
def output_constant_mid(m):
    m.subgraphs[0].tensors[3].buffer = new_buffer(m, bytes(128))


@case(MLP, "op 0's output T3 is_variable; not enforced (variables are writable arena tensors)")
def output_variable_mid(m):
    m.subgraphs[0].tensors[3].isVariable = True


@case(MLP, "subgraph inputs [0, 5]: SOFTMAX's output T5 is a graph input too; not enforced")
def output_is_sg_input(m):
    m.subgraphs[0].inputs = [0, 5]


@case(MLP, "SOFTMAX writes graph input T0, which op 0 read, and T0 is the graph output; not enforced")
def output_is_sg_input_t0(m):
    m.subgraphs[0].operators[2].outputs = [0]
    m.subgraphs[0].outputs = [0]


@case(MLP, "a second SOFTMAX(T4) -> T5 appended: T5 produced twice; not enforced")
def produced_twice(m):
    m.subgraphs[0].operators.append(copy.deepcopy(m.subgraphs[0].operators[2]))


@case(MLP, "SOFTMAX(T4) -> T4, graph output T4; subgraph.cc:951-969 CheckInputAndOutputForOverlap for builtins "
           "with options (CVE-2020-15210), surfacing at AllocateTensors")
def in_and_out_same_op(m):
    m.subgraphs[0].operators[2].outputs = [4]
    m.subgraphs[0].outputs = [4]


@case(IF, "then-branch SQRT(T3) -> T3 (SQRT has no builtin options); not enforced: subgraph.cc:1126-1129 checks "
          "only ops with builtin_data")
def in_and_out_same_op_noopts(m):
    sg = m.subgraphs[2]
    sg.operators[2].outputs = [3]
    sg.outputs = [3]


@case(CUSTOM, "custom Erfinv(T6) -> T6; not enforced for custom ops (subgraph.cc:1122-1125)")
def in_and_out_same_custom_op(m):
    sg = m.subgraphs[0]
    op = sg.operators[3]
    op.outputs = [op.inputs[0]]
    sg.outputs = [op.inputs[0]]


@case(MLP, "SOFTMAX outputs [-1]; not enforced at load (subgraph.cc:916-940 accepts -1), SOFTMAX's Prepare "
           "refuses it (CVE-2020-15211)")
def neg1_output(m):
    m.subgraphs[0].operators[2].outputs = [-1]


# ---------------------------------------------------------------- control flow

@case(IF, "IF then_subgraph_index 2 -> 0, its own subgraph; not enforced: if.cc:113 Prepare recurses unguarded")
def if_then_self(m):
    m.subgraphs[0].operators[2].builtinOptions.thenSubgraphIndex = 0


@case(WHILE, "WHILE cond_subgraph_index = body = 2; while.cc:87-88 (CVE-2021-29591)")
def while_cond_is_body(m):
    m.subgraphs[0].operators[0].builtinOptions.condSubgraphIndex = 2


# ---------------------------------------------------------------- out-of-range indices (check_bounds)

@case(MLP, "op 0 opcode_index 99 (2 operator codes); interpreter_builder.cc:345-350 'Missing registration'")
def opcode_index_oob(m):
    m.subgraphs[0].operators[0].opcodeIndex = 99


@case(MLP, "op 0 input 0 -> 9999; subgraph.cc:916-940 CheckTensorIndices, surfacing at AllocateTensors")
def op_input_oob(m):
    m.subgraphs[0].operators[0].inputs[0] = 9999


@case(MLP, "op 0 intermediates [9999]; not enforced (intermediates are never index-checked)")
def op_intermediate_oob(m):
    m.subgraphs[0].operators[0].intermediates = [9999]


@case(MLP, "a metadata entry naming buffer 99, past the last; model_builder_base.h:532 ReadAllMetadata skips it")
def metadata_buffer_oob(m):
    md = S.MetadataT()
    md.name, md.buffer = b"crafted", 99
    m.metadata.append(md)


@case(MLP, "signature input tensor_index 0 -> 9999; only interpreter_wrapper.cc:53-59 (Python signature runner)")
def signature_tensor_oob(m):
    m.signatureDefs[0].inputs[0].tensorIndex = 9999


@case(MLP, "signature subgraph_index 0 -> 5; not enforced: interpreter_wrapper.cc:54 dereferences "
           "Interpreter::subgraph(5), a nullptr")
def signature_subgraph_oob(m):
    m.signatureDefs[0].subgraphIndex = 5


# ---------------------------------------------------------------- structure (FlatBuffers verifier)

@case(MLP, "byte patch: T2's data vector length 2048 -> 0x7FFFFFF0; model_builder_base.h:423 VerifyModelBuffer "
           "(litert, path and content; TF 2.18.1's BuildFromFile skips it)", raw=True)
def fb_vector_len_corrupt(data):
    m = flatbuffer_utils.convert_bytearray_to_object(data)
    payload = _data(m, 2)
    pos = data.find(payload)
    assert pos >= 4 and struct.unpack_from("<I", data, pos - 4)[0] == len(payload)
    struct.pack_into("<I", data, pos - 4, 0x7FFFFFF0)
    return bytes(data)


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name in CASES:
        build(name, out)
    print(f"wrote {len(CASES)} cases to {out}")
