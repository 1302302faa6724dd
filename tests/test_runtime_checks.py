"""fbtool's verdict on each tests/runtime_cases.py model, held against what the TFLite runtime does with it.

The policy (fbtool/reader/checks.py): fbtool refuses (exit 2, one error line) what the runtime refuses
or what is unsafe to run or read, and warns about what the runtime runs. So, for every case:

- fbtool "ok" or "warning" => ai-edge-litert 2.3 runs the model (load, allocate_tensors, invoke, every
  signature), or stops only at a custom op no kernel is registered for (a kernel the user may add) or
  at its default XNNPACK delegate's refusal of a tensor the reference kernels run;
- litert refuses or crashes on the model => fbtool "error";
- fbtool "error" on a model litert runs => the case names the hazard (``unsafe``): a crash in TF 2.18.1
  or memory the runtime reads or writes out of bounds.

The runtimes are the independent source of truth: one subprocess per runtime runs every case, each in
a forked child (a crash is a signal, counted as a crash), and their outcomes must match the research
(EXPECT). TF 2.18.1 is checked when it is installed: it does not verify the FlatBuffer when loading from
a path, its GATHER does not check string offsets, and it crashed on some models litert survives.
"""
import json
import os
import subprocess
import sys
from importlib.util import find_spec
from typing import NamedTuple

import jsonschema
import pytest

from helpers import run_fbtool
from runtime_cases import CASES, build

SAME = None
NEEDS_KERNEL = "Encountered unresolved custom op"
# XNNPACK (on by default) refuses a tensor of 2^31+ elements that the reference kernels run
XNNPACK_ONLY = "XNNPack delegate failed to reshape runtime"


class E(NamedTuple):
    fbtool: str        # "ok", "warning: FRAGMENT" or "error: FRAGMENT"
    litert: str        # "runs", "refuses at STAGE: FRAGMENT" or "crashes at STAGE: SIGNAL"
    tf: str | tuple = SAME   # TF 2.18.1's outcome(s) where they differ from litert's
    unsafe: str = ""   # the hazard that makes fbtool refuse a model litert runs


# TF 2.18.1 takes a shape from memory nothing wrote: seen as a SIGSEGV, and as std::bad_alloc
GARBAGE = ("crashes at allocate: SIGSEGV", "refuses at allocate: MemoryError: std::bad_alloc")
REQ = "refuses at load: required_bytes <= bytes was not true"
OVERFLOW = "refuses at load: BytesRequired number of elements overflowed"

EXPECT = {
    "baseline_mlp": E("ok", "runs"),
    "baseline_string": E("ok", "runs"),
    "version_2": E("error: model: schema version 2, only version 3 is readable",
                   "refuses at load: Model provided is schema version 2 not equal to supported version 3"),
    "no_subgraphs": E("error: model: no subgraphs", "refuses at load: No subgraph in the model"),
    "custom_no_code_unused": E("error: operator code 2: CUSTOM operator code without a custom_code",
                               "refuses at load: Operator with CUSTOM builtin_code has no custom_code"),
    "custom_empty_code_used": E("warning: operator code 2: CUSTOM operator code with an empty custom_code",
                                f"refuses at allocate: {NEEDS_KERNEL}: ."),
    "dim_neg2_unused": E("error: tensor 6 ('crafted'): negative dimension -2 in shape [-2, 3]", OVERFLOW),
    "dim_neg1_input": E("error: tensor 0 ('serving_default_keras_tensor:0'): negative dimension -1", OVERFLOW),
    "dim_neg1_string_unused": E("warning: tensor 6 ('crafted'): negative dimension -1 in shape [-1] of a string",
                                "runs"),
    "overflow32_unused": E("warning: shape [65536, 65536] has more than 2^31 elements", "runs"),
    # the reference kernels run it (the research ran it without the default XNNPACK delegate): a warning
    "overflow32_intermediate": E("warning: shape [65536, 65536] has more than 2^31 elements",
                                 f"refuses at allocate: {XNNPACK_ONLY}"),
    "overflow64_unused": E("error: shape [2147483647, 2147483647, 2147483647] overflows a 64-bit", OVERFLOW),
    "sparse_index_oob": E("error: sparse dimension segments or indices out of range", "runs",
                          unsafe="FormatConverter::Populate writes past the densified buffer "
                                 "(sparsity_format_converter.cc:324): a silent heap overflow"),
    "sparse_index_huge": E("error: sparse dimension segments or indices out of range",
                           "crashes at allocate: SIGSEGV"),
    "sparse_traversal_oob": E("error: sparsity traversal order is not a permutation", "runs",
                              unsafe="Populate indexes a rank-2 vector with 5 (orig_idx[traversal_order[i]]): "
                                     "an out-of-bounds write that changes the outputs"),
    "data_too_small": E("error: shape [32, 16] x float32 needs 2048 bytes", REQ),
    "data_too_large": E("warning: shape [32, 16] x float32 needs 2048 bytes, buffer 3 holds 2052", "runs"),
    "string_offset_past_end": E("error: string tensor offsets are not increasing within the buffer",
                                "refuses at invoke: gather.cc:213 end_offset <= input->bytes",
                                tf="crashes at invoke: SIGBUS"),
    "string_offset_into_header": E("error: string tensor offsets are not increasing within the buffer", "runs",
                                   unsafe="offsets 20 then 0 give string 0 a negative length, which TF 2.18.1's "
                                          "GATHER does not check (it read past the buffer on a bad offset: SIGBUS)"),
    "string_first_offset_in_header": E("warning: string tensor offsets run from 4 to 26", "runs"),
    "string_empty_vector": E("error: string tensor buffer shorter than its header",
                             "refuses at invoke: gather.cc:198 input->bytes >= sizeof(int32_t)",
                             tf="refuses at invoke: gather.cc:192 pos < num_strings"),
    "resource_const": E("warning: tensor 6 ('crafted'): constant data of type resource", "runs"),
    "unknown_type_const": E("error: tensor 6 ('crafted'): unsupported tensor type 99",
                            "refuses at load: Unsupported data type 99 in tensor"),
    "unproduced_nonempty_buf0": E("error: operator 0 (FULLY_CONNECTED): input tensor 6 is used before any operator",
                                  "refuses at invoke: Input tensor 6 lacks data"),
    "string_unproduced_buf0": E("error: operator 0 (GATHER): input tensor 1 is used before any operator",
                                "refuses at invoke: gather.cc:198 input->bytes >= sizeof(int32_t)",
                                tf="crashes at invoke: SIGSEGV"),
    "unproduced_nonempty_emptyvec": E("error: shape [1, 16] x float32 needs 64 bytes", REQ),
    "cycle_read_later_output": E("error: operator 0 (FULLY_CONNECTED): input tensor 4 is read before operator 1",
                                 "runs", tf=GARBAGE,
                                 unsafe="both read a tensor nothing wrote yet: TF 2.18.1 takes "
                                        "a shape from it and fails at allocate"),
    "zero_elem_emptyvec": E("ok", "runs"),
    "zero_elem_buf0": E("ok", "runs"),
    "output_constant_mid": E("error: operator 0 (FULLY_CONNECTED): output tensor 3 is a constant",
                             "crashes at invoke: SIGSEGV"),
    "output_variable_mid": E("warning: operator 0 (FULLY_CONNECTED): output tensor 3 is a variable", "runs"),
    "output_is_sg_input": E("warning: operator 2 (SOFTMAX): output tensor 5 is a subgraph input", "runs"),
    "output_is_sg_input_t0": E("error: output tensor 0 is a subgraph input that an earlier operator reads",
                               "refuses at signature: Tensor data is null", tf=GARBAGE),
    "produced_twice": E("warning: operator 3 (SOFTMAX): output tensor 5 is also produced by operator 2", "runs"),
    "in_and_out_same_op": E("error: operator 2 (SOFTMAX): tensor 4 is both an input and an output",
                            "refuses at allocate: Tensor 4 is both input 0 and output 0"),
    "in_and_out_same_op_noopts": E("warning: subgraph 2 operator 2 (SQRT): tensor 3 is both an input and an output",
                                   "runs"),
    "in_and_out_same_custom_op": E("warning: operator 3 (Erfinv): tensor 6 is both an input and an output",
                                   f"refuses at allocate: {NEEDS_KERNEL}: Erfinv"),
    "neg1_output": E("error: operator 2: output tensor -1 out of range",
                     "refuses at allocate: Tensor at index 0 was optional but was expected"),
    "if_then_self": E("error: model: control flow recurses: subgraph 0 calls subgraph 0",
                      "crashes at allocate: SIGSEGV"),
    "while_cond_is_body": E("error: WHILE's condition and body are the same subgraph 2",
                            "refuses at allocate: kernels/while.cc:88 op_data->cond_subgraph_index != "
                            "op_data->body_subgraph_index"),
    "opcode_index_oob": E("error: operator 0: opcode index 99 out of range (2 operator codes)",
                          "refuses at load: Missing registration for opcode_index 99"),
    "op_input_oob": E("error: operator 0: input tensor 9999 out of range (6 tensors)",
                      "refuses at allocate: Invalid tensor index 9999 in node inputs"),
    "op_intermediate_oob": E("error: operator 0: intermediate tensor 9999 out of range", "runs",
                             unsafe="kernels that use intermediates (LSTM, quantized) index context->tensors "
                                    "with them unchecked"),
    "metadata_buffer_oob": E("warning: metadata 'crafted': buffer 99 out of range (9 buffers): the entry is ignored",
                             "runs"),
    "signature_tensor_oob": E("error: signature 'serving_default': tensor 9999 of 'keras_tensor' out of range",
                              "refuses at signature: Invalid tensor index 9999 exceeds max tensor index"),
    "signature_subgraph_oob": E("error: signature 'serving_default': subgraph 5 out of range",
                                "crashes at signature: SIGSEGV"),
    "fb_vector_len_corrupt": E("error: buffers[3].data: vector of 2147483632 elements of 1 bytes overruns the file",
                               "refuses at load: The model is not a valid Flatbuffer buffer", tf="runs"),
}

# One runtime, every case: a forked child per model (the runtime is imported once), which reports the
# stage it enters on a pipe; the parent turns a signal or a timeout into "crashes at STAGE".
PROBE = r'''
import json, os, resource, select, signal, sys, time
from importlib.metadata import version
runtime, timeout, paths = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
import numpy as np
if runtime == "tf":
    import tensorflow as tf
    Interpreter, release = tf.lite.Interpreter, tf.__version__
else:
    from ai_edge_litert.interpreter import Interpreter
    release = version("ai-edge-litert")


def ones(d):
    if d["dtype"] in (np.bytes_, np.object_, np.str_):
        return np.full([int(x) for x in d["shape"]], b"x", dtype=object)
    return np.ones([int(x) for x in d["shape"]], d["dtype"])


def run(path, stage):
    stage("load")
    it = Interpreter(model_path=path)
    stage("allocate")
    it.allocate_tensors()
    stage("invoke")
    for d in it.get_input_details():
        it.set_tensor(d["index"], ones(d))
    it.invoke()
    for d in it.get_output_details():
        it.get_tensor(d["index"])
    for key in it.get_signature_list():
        stage("signature")
        runner = it.get_signature_runner(key)
        runner(**{name: ones(d) for name, d in runner.get_input_details().items()})


def child(path, w):
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))   # a runaway allocation fails, not the machine
    say = lambda line: os.write(w, (line + "\n").encode())
    try:
        run(path, lambda name: say("STAGE " + name))
        say("RUNS")
    except Exception as e:
        say("ERROR " + " ".join(f"{type(e).__name__}: {e}".split()))
    os._exit(0)


def probe(path):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        child(path, w)
    os.close(w)
    out, deadline = b"", time.monotonic() + timeout
    while select.select([r], [], [], max(0, deadline - time.monotonic()))[0]:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        out += chunk
    else:
        os.kill(pid, signal.SIGKILL)
    os.close(r)
    status, stage = os.waitpid(pid, 0)[1], "load"
    for line in out.decode().splitlines():
        word, _, rest = line.partition(" ")
        if word == "STAGE":
            stage = rest
        elif word == "RUNS":
            return "runs"
        elif word == "ERROR":
            return f"refuses at {stage}: {rest}"
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status))
        return f"crashes at {stage}: " + (f"timeout after {timeout:g} s" if sig == signal.SIGKILL else sig.name)
    return f"crashes at {stage}: exit status {os.WEXITSTATUS(status)}"


print(json.dumps({"version": release, "outcomes": {os.path.basename(p)[:-7]: probe(p) for p in paths}}))
'''

RELEASES = {"litert": "2.3.", "tf": "2.18.1"}   # the research's runtimes: what EXPECT records


@pytest.fixture(scope="session")
def case_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("runtime_cases")
    return {name: build(name, out) for name in CASES}


@pytest.fixture(scope="session")
def runtimes(case_files):
    """{runtime: {case: outcome}, or why it was not run} for ai-edge-litert and TF, both probes at once."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = {rt: subprocess.Popen([sys.executable, "-c", PROBE, rt, "60", *map(str, case_files.values())],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for rt, module in (("litert", "ai_edge_litert"), ("tf", "tensorflow")) if find_spec(module)}
    out = {"litert": "ai-edge-litert is not installed", "tf": "TensorFlow is not installed"}
    for rt, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        doc = json.loads(stdout)
        release_ok = doc["version"].startswith(RELEASES[rt])
        out[rt] = doc["outcomes"] if release_ok else f"{rt} {doc['version']} is not the {RELEASES[rt]} EXPECT records"
    return out


def outcomes(runtimes, rt) -> dict:
    if isinstance(runtimes[rt], str):
        pytest.skip(runtimes[rt])
    return runtimes[rt]


def fbtool_verdict(path, schema) -> str:
    """"error: WHERE: WHAT" (exit 2, one line), "warning: W1 | W2" or "ok", checking the text and JSON forms."""
    r = run_fbtool("inspect", path)
    if r.returncode == 2:
        lines = r.stderr.splitlines()
        prefix = f"fbtool: error: {path}: "
        assert r.stdout == "" and len(lines) == 1 and lines[0].startswith(prefix), r.stderr
        assert "internal error" not in lines[0]
        return "error: " + lines[0][len(prefix):]
    assert r.returncode == 0, r.stderr
    j = run_fbtool("inspect", "--json", path)
    assert j.returncode == 0, j.stderr
    doc = json.loads(j.stdout)
    jsonschema.validate(doc, schema)
    warnings = doc["warnings"]
    text = r.stdout.splitlines()
    heading = [i for i, line in enumerate(text) if line.startswith("Warnings (")]
    if not warnings:
        assert not heading, r.stdout
        return "ok"
    assert len(heading) == 1 and text[heading[0]].startswith(f"Warnings ({len(warnings)}): "), r.stdout
    assert text[heading[0] + 1:] == [f"  {w}" for w in warnings], r.stdout
    return "warning: " + " | ".join(warnings)


def matches(got: str, expected: str | tuple) -> bool:
    if isinstance(expected, tuple):
        return any(matches(got, e) for e in expected)
    head, _, fragment = expected.partition(": ")
    return got.split(": ", 1)[0] == head and fragment in got


def test_every_case_has_an_expectation():
    assert set(EXPECT) == set(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_verdict_matches_the_runtime(name, case_files, runtimes, inspect_schema):
    """fbtool's verdict and ai-edge-litert's outcome are the research's, and they agree with the policy."""
    want = EXPECT[name]
    got = fbtool_verdict(case_files[name], inspect_schema)
    lit = outcomes(runtimes, "litert")[name]
    problems = [f"{who}: expected {expected!r}\n    got {actual!r}"
                for who, actual, expected in (("fbtool", got, want.fbtool), ("litert", lit, want.litert))
                if not matches(actual, expected)]
    runs = lit == "runs" or NEEDS_KERNEL in lit or XNNPACK_ONLY in lit
    if got.startswith(("ok", "warning")) and not runs:
        problems.append(f"policy: fbtool passes a model litert does not run ({lit!r})")
    if got.startswith("error") and runs and not want.unsafe:
        problems.append("policy: fbtool refuses a model litert runs, and the case names no hazard")
    if problems:
        pytest.fail(f"{name}:\n" + "\n".join(problems), pytrace=False)


@pytest.mark.parametrize("name", list(CASES))
def test_tf_2_18_1_outcome(name, runtimes):
    """TF 2.18.1, the last runtime with the Flex delegate, where it parts from litert: the crashes behind
    several of fbtool's errors."""
    want = EXPECT[name].tf or EXPECT[name].litert
    got = outcomes(runtimes, "tf")[name]
    assert matches(got, want), f"expected {want!r}, got {got!r}"


@pytest.mark.parametrize("name", [n for n, e in EXPECT.items() if e.fbtool.startswith("warning")])
def test_other_commands_only_report_warnings(name, case_files):
    """A warning fails an audit only when denied; flex, graph, patch --dry-run and diff run as usual."""
    path = case_files[name]
    denied = run_fbtool("audit", "--jobs", "1", "--deny", "warnings", path)
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert EXPECT[name].fbtool.split(": ", 1)[1] in denied.stdout
    for args in (("audit", "--jobs", "1", path), ("flex", path), ("graph", path), ("patch", "--dry-run", path),
                 ("diff", path, path)):
        r = run_fbtool(*args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
