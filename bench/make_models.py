"""Synthesize the benchmark .tflite models without TensorFlow.

    python bench/make_models.py OUTDIR [--check]

Writes into OUTDIR:
  big_weights.tflite    FC(10240->8192, RELU) -> FC(8192->16) -> ADD; 336 MB of inline float32 weights
  small_weights.tflite  the same 3-op graph with 512 wide layers; ~1 MB of weights
  many_ops.tflite       a chain of 10,000 ops on a [1,16] float32 tensor (ADD/MUL/TANH/SUB/LOGISTIC,
                        4 of them CUSTOM "FlexAddV2"), one constant per binary op, named tensors,
                        one subgraph, a "serving_default" signature

--check loads every model with ai_edge_litert's Interpreter (allocate_tensors + invoke) and
flatbuffer_utils.read_model. many_ops cannot be allocated by a runtime without the Flex delegate;
for it the check expects exactly that error.
"""

import argparse
import os

import flatbuffers
from flatbuffers import flexbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

F32 = fb.TensorType.FLOAT32
OP = fb.BuiltinOperator
OPTIONS = {  # builtin -> (union type, options class)
    OP.ADD: (fb.BuiltinOptions.AddOptions, fb.AddOptionsT),
    OP.SUB: (fb.BuiltinOptions.SubOptions, fb.SubOptionsT),
    OP.MUL: (fb.BuiltinOptions.MulOptions, fb.MulOptionsT),
    OP.FULLY_CONNECTED: (fb.BuiltinOptions.FullyConnectedOptions, fb.FullyConnectedOptionsT),
}


class AlignedBufferT(fb.BufferT):
    """BufferT whose data is 16-byte aligned in the file, as schema.fbs asks (force_align: 16)."""

    def Pack(self, builder):
        if self.data is not None:
            builder.Prep(16, len(self.data))  # the uint8 vector that follows then starts 16-aligned
        return super().Pack(builder)


class GraphBuilder:
    """Accumulates one subgraph plus the model-level operator codes and buffers."""

    def __init__(self):
        self.tensors, self.operators, self.opcodes = [], [], []
        self.buffers = [fb.BufferT()]  # buffers[0]: the empty sentinel

    def tensor(self, name, shape, data=None):
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), F32, 0
        if data is not None:
            buf = AlignedBufferT()
            buf.data = np.ascontiguousarray(data, dtype="<f4").reshape(-1).view(np.uint8)
            t.buffer = len(self.buffers)
            self.buffers.append(buf)
        self.tensors.append(t)
        return len(self.tensors) - 1

    def opcode(self, builtin, custom_code=None):
        for i, c in enumerate(self.opcodes):
            if c.builtinCode == builtin and c.customCode == custom_code:
                return i
        c = fb.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode = builtin, min(builtin, OP.PLACEHOLDER_FOR_GREATER_OP_CODES)
        c.customCode, c.version = custom_code, 1
        self.opcodes.append(c)
        return len(self.opcodes) - 1

    def op(self, builtin, inputs, output, custom_code=None, custom_options=None, **options):
        o = fb.OperatorT()
        o.opcodeIndex = self.opcode(builtin, custom_code)
        o.inputs, o.outputs = list(inputs), [output]
        if builtin in OPTIONS:
            o.builtinOptionsType, cls = OPTIONS[builtin]
            o.builtinOptions = cls()
            for k, v in options.items():
                setattr(o.builtinOptions, k, v)
        if custom_options is not None:
            o.customOptions = np.frombuffer(custom_options, dtype=np.uint8)
            o.customOptionsFormat = fb.CustomOptionsFormat.FLEXBUFFERS
        self.operators.append(o)
        return output

    def write(self, path, description, inp, out):
        sg = fb.SubGraphT()
        sg.name, sg.tensors, sg.operators = "main", self.tensors, self.operators
        sg.inputs, sg.outputs = [inp], [out]
        sig = fb.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = "serving_default", 0
        sig.inputs, sig.outputs = [tensor_map("x", inp)], [tensor_map("output_0", out)]
        m = fb.ModelT()
        m.version, m.description = 3, description
        m.operatorCodes, m.subgraphs, m.buffers, m.signatureDefs = self.opcodes, [sg], self.buffers, [sig]
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        with open(path, "wb") as f:
            f.write(b.Output())


def tensor_map(name, index):
    t = fb.TensorMapT()
    t.name, t.tensorIndex = name, index
    return t


def mlp(path, n_in, n_hidden, n_out=16, flex_add=False):
    """input -> FC(n_in->n_hidden, RELU) -> FC(n_hidden->n_out) -> ADD const -> output
    (the ADD as a FlexAddV2 with ``flex_add``, for the patch bench)."""
    rng = np.random.default_rng(0)

    def weights(*shape):
        return rng.standard_normal(shape, dtype=np.float32) * 0.01

    g = GraphBuilder()
    x = g.tensor("serving_default_x:0", [1, n_in])
    h = g.op(OP.FULLY_CONNECTED,
             [x, g.tensor("dense/MatMul", [n_hidden, n_in], weights(n_hidden, n_in)),
              g.tensor("dense/BiasAdd/ReadVariableOp", [n_hidden], weights(n_hidden))],
             g.tensor("dense/Relu", [1, n_hidden]), fusedActivationFunction=fb.ActivationFunctionType.RELU)
    y = g.op(OP.FULLY_CONNECTED,
             [h, g.tensor("dense_1/MatMul", [n_out, n_hidden], weights(n_out, n_hidden)),
              g.tensor("dense_1/BiasAdd/ReadVariableOp", [n_out], weights(n_out))],
             g.tensor("dense_1/BiasAdd", [1, n_out]))
    add = dict(custom_code="FlexAddV2", custom_options=flex_addv2_options()) if flex_add else {}
    out = g.op(OP.CUSTOM if flex_add else OP.ADD, [y, g.tensor("add/y", [n_out], weights(n_out))],
               g.tensor("StatefulPartitionedCall:0", [1, n_out]), **add)
    g.write(path, f"fbtool bench: mlp {n_in}x{n_hidden}x{n_out}", x, out)


def flex_addv2_options():
    """FlexBuffer vector [op name, serialized NodeDef] as the converter writes for a Flex op."""
    float_attr = b"\x0a\x01T" + b"\x12\x02" + b"\x30\x01"  # map entry {key: "T", value: AttrValue{type: DT_FLOAT}}
    node_def = b"\x12\x05AddV2" + b"\x1a\x00" * 2 + b"\x2a" + bytes([len(float_attr)]) + float_attr
    fbb = flexbuffers.Builder()
    with fbb.Vector():
        fbb.String("AddV2")
        fbb.String(node_def.decode("ascii"))  # all bytes < 0x80, so the string keeps them unchanged
    return bytes(fbb.Finish())


def many_ops(path, n_ops=10_000, flex_every=2_500):
    rng = np.random.default_rng(0)
    cycle = [(OP.ADD, "add"), (OP.MUL, "mul"), (OP.TANH, "tanh"), (OP.SUB, "sub"), (OP.LOGISTIC, "sigmoid")]
    flex_options = flex_addv2_options()
    g = GraphBuilder()
    x = cur = g.tensor("serving_default_x:0", [1, 16])
    for i in range(n_ops):
        builtin, name = cycle[i % len(cycle)]
        if i % flex_every == flex_every // 2:
            builtin, name = OP.CUSTOM, "AddV2"
        name = f"block_{i // len(cycle)}/{name}"
        inputs = [cur]
        if builtin in (OP.ADD, OP.MUL, OP.SUB, OP.CUSTOM):
            inputs.append(g.tensor(name + "/y", [16], rng.uniform(0.5, 1.5, 16)))
        out = g.tensor("StatefulPartitionedCall:0" if i == n_ops - 1 else name, [1, 16])
        if builtin == OP.CUSTOM:
            cur = g.op(builtin, inputs, out, custom_code="FlexAddV2", custom_options=flex_options)
        else:
            cur = g.op(builtin, inputs, out)
    g.write(path, f"fbtool bench: {n_ops} op chain", x, cur)


MODELS = {
    "big_weights.tflite": lambda p: mlp(p, 10240, 8192),
    "small_weights.tflite": lambda p: mlp(p, 512, 512),
    "many_ops.tflite": many_ops,
    "big_flex.tflite": lambda p: mlp(p, 10240, 8192, flex_add=True),
    "many_flex.tflite": lambda p: many_ops(p, flex_every=1),
}


def check(outdir):
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.tools import flatbuffer_utils

    for name in MODELS:
        path = os.path.join(outdir, name)
        model = flatbuffer_utils.read_model(path)
        n_ops = len(model.subgraphs[0].operators)
        del model
        interp = Interpreter(model_path=path)
        try:
            interp.allocate_tensors()
        except RuntimeError as e:
            if name != "many_ops.tflite" or "Select TensorFlow op" not in str(e):
                raise
            print(f"{name}: {n_ops} ops, read_model ok; Interpreter: Flex ops need the Flex delegate (expected)")
            continue
        inp = interp.get_input_details()[0]
        interp.set_tensor(inp["index"], np.ones(inp["shape"], np.float32))
        interp.invoke()
        y = interp.get_tensor(interp.get_output_details()[0]["index"])
        print(f"{name}: {n_ops} ops, read_model ok, invoke ok, output[:3]={y.ravel()[:3]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--check", action="store_true", help="load every model in LiteRT after writing")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    for name, make in MODELS.items():
        path = os.path.join(args.outdir, name)
        make(path + ".tmp")
        os.replace(path + ".tmp", path)  # never leave a half-written model behind
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")
    if args.check:
        check(args.outdir)


if __name__ == "__main__":
    main()
