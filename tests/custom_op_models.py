"""One-op models, each a single CUSTOM op, to ask the stock runtimes which custom ops they run
(tests/test_custom_ops.py). Built with the TFLite schema's object API that ai-edge-litert ships.

``MODELS``: custom code -> a function returning the .tflite bytes; the op's inputs are valid for
its kernel (shapes, dtypes, options), so a failure means "unresolved", not "bad input".
"""
import struct

import numpy as np
from flatbuffers import Builder, flexbuffers

MODELS = {}


def _schema():
    from ai_edge_litert import schema_py_generated
    return schema_py_generated


class _Graph:
    def __init__(self):
        self.S = _schema()
        self.tensors, self.buffers, self.inputs, self.outputs = [], [self.S.BufferT()], [], []

    def tensor(self, name, shape, dtype=np.float32, data=None, role=None, scale=None):
        S = self.S
        t = S.TensorT()
        t.name, t.shape = name.encode(), list(shape)
        t.type = {np.float32: S.TensorType.FLOAT32, np.int32: S.TensorType.INT32,
                  np.int8: S.TensorType.INT8}[np.dtype(dtype).type]
        t.buffer = 0
        if data is not None:
            b = S.BufferT()
            b.data = list(np.asarray(data, dtype).tobytes())
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            t.quantization = S.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [scale], [0]
        self.tensors.append(t)
        index = len(self.tensors) - 1
        (self.inputs if role == "in" else self.outputs if role == "out" else []).append(index)
        return index

    def model(self, code, inputs, outputs, options=b"", version=1) -> bytes:
        S = self.S
        oc = S.OperatorCodeT()
        oc.builtinCode = oc.deprecatedBuiltinCode = S.BuiltinOperator.CUSTOM
        oc.customCode, oc.version = code.encode(), version
        op = S.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs, op.customOptions = 0, inputs, outputs, list(options)
        sg = S.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators = self.tensors, self.inputs, self.outputs, [op]
        m = S.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, [oc], [sg], self.buffers
        b = Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def model(code):
    def register(fn):
        MODELS[code] = lambda: fn(_Graph(), code)
        return fn
    return register


def _pool(padding=2, stride=2, size=2):
    return struct.pack("<10i", padding, stride, stride, size, size, 0, 0, 0, 0, 0)   # TfLitePoolParams


@model("Convolution2DTransposeBias")
def _(g, code):
    x = g.tensor("x", [1, 4, 4, 2], role="in")
    w = g.tensor("w", [3, 2, 2, 2], data=np.random.default_rng(1).normal(size=(3, 2, 2, 2)))
    b = g.tensor("b", [3], data=[0.5, -1.0, 2.0])
    return g.model(code, [x, w, b], [g.tensor("y", [1, 8, 8, 3], role="out")], struct.pack("<3i", 1, 2, 2))


@model("MaxPoolingWithArgmax2D")
def _(g, code):
    x = g.tensor("x", [1, 4, 4, 2], role="in")
    outs = [g.tensor("values", [1, 2, 2, 2], role="out"), g.tensor("indices", [1, 2, 2, 2], role="out")]
    return g.model(code, [x], outs, _pool())


@model("MaxUnpooling2D")
def _(g, code):
    ins = [g.tensor("values", [1, 2, 2, 2], role="in"), g.tensor("indices", [1, 2, 2, 2], role="in")]
    return g.model(code, ins, [g.tensor("y", [1, 4, 4, 2], role="out")], _pool())


@model("Mfcc")
def _(g, code):
    ins = [g.tensor("spectrogram", [1, 10, 257], role="in"), g.tensor("rate", [1], np.int32, [16000])]
    return g.model(code, ins, [g.tensor("mfcc", [1, 10, 13], role="out")], flexbuffers.Dumps(
        {"upper_frequency_limit": 4000, "lower_frequency_limit": 20, "filterbank_channel_count": 40,
         "dct_coefficient_count": 13}))


@model("AudioSpectrogram")
def _(g, code):
    return g.model(code, [g.tensor("audio", [1024, 1], role="in")], [g.tensor("s", [1, 7, 129], role="out")],
                   flexbuffers.Dumps({"window_size": 256, "stride": 128, "magnitude_squared": True}))


@model("TFLite_Detection_PostProcess")
def _(g, code):
    n = 10
    anchors = np.stack([np.linspace(0.1, 0.9, n), np.linspace(0.1, 0.9, n), np.full(n, 0.2), np.full(n, 0.2)], 1)
    ins = [g.tensor("boxes", [1, n, 4], role="in"), g.tensor("scores", [1, n, 3], role="in"),
           g.tensor("anchors", [n, 4], data=anchors)]
    outs = [g.tensor(name, shape, role="out") for name, shape in
            (("boxes_out", [1, 5, 4]), ("classes", [1, 5]), ("scores_out", [1, 5]), ("count", [1]))]
    return g.model(code, ins, outs, flexbuffers.Dumps(
        {"max_detections": 5, "max_classes_per_detection": 1, "detections_per_class": 100, "use_regular_nms": False,
         "nms_score_threshold": 0.0, "nms_iou_threshold": 0.6, "num_classes": 2, "y_scale": 10.0, "x_scale": 10.0,
         "h_scale": 5.0, "w_scale": 5.0}))


@model("NumericVerify")
def _(g, code):
    ins = [g.tensor("q", [4], np.int8, role="in", scale=0.1), g.tensor("ref", [4], role="in")]
    return g.model(code, ins, [g.tensor("diff", [4], role="out")],
                   flexbuffers.Dumps({"tolerance": 1000.0, "log_if_failed": False}))


@model("aeq.hadamard_rotation")
def _(g, code):
    return g.model(code, [g.tensor("x", [2, 8], role="in")], [g.tensor("y", [2, 8], role="out")],
                   flexbuffers.Dumps({"hadamard_size": 8, "random_binary_vector": [1, -1, 1, 1, -1, 1, -1, 1]}))


@model("odml.scaled_dot_product_attention")
def _(g, code):
    ins = [g.tensor(n, [1, 4, 2, 8], role="in") for n in "qkv"]
    return g.model(code, ins, [g.tensor("out", [1, 4, 2, 8], role="out")], flexbuffers.Dumps({"scale": 0.35}))


@model("Landmarks2TransformMatrix")
def _(g, code):
    return g.model(code, [g.tensor("landmarks", [1, 468, 3], role="in")], [g.tensor("m", [1, 4, 4], role="out")],
                   flexbuffers.Dumps({"subset_idxs": [33, 263], "left_rotation_idx": 0, "right_rotation_idx": 1,
                                      "target_rotation_radians": 0.0, "output_height": 64, "output_width": 64,
                                      "scale_x": 1.0, "scale_y": 1.0}), version=2)


@model("TransformLandmarks")
def _(g, code):
    ins = [g.tensor("landmarks", [1, 1, 10, 3], role="in"), g.tensor("m", [1, 1, 4, 4], role="in")]
    return g.model(code, ins, [g.tensor("out", [1, 1, 10, 3], role="out")], flexbuffers.Dumps({}), version=2)


@model("TransformTensorBilinear")
def _(g, code):
    ins = [g.tensor("image", [1, 16, 16, 4], role="in"), g.tensor("m", [1, 1, 4, 4], role="in")]
    return g.model(code, ins, [g.tensor("out", [1, 8, 8, 4], role="out")],
                   flexbuffers.Dumps({"output_height": 8, "output_width": 8}), version=2)


@model("Resampler")
def _(g, code):
    ins = [g.tensor("data", [1, 8, 8, 1], role="in"), g.tensor("warp", [1, 4, 4, 2], role="in")]
    return g.model(code, ins, [g.tensor("out", [1, 4, 4, 1], role="out")])
