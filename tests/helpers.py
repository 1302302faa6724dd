"""Shared test helpers: run the real CLI, and build broken models from fixtures."""
import os
import subprocess
import sys

from conftest import FIXTURES, ROOT


def run_fbtool(*args, env=None, timeout=60):
    """Run ``python -m fbtool ARGS`` as a user would; return the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "fbtool", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def fbtool_peak_rss(args, **run) -> tuple[subprocess.CompletedProcess, int]:
    """Run fbtool ARGS in a process of its own; return it and its peak RSS in KB. VmHWM, not
    ru_maxrss: Linux carries the parent's (pytest's, hundreds of MB) peak over exec into the latter."""
    probe = ("import runpy, sys\nsys.argv = ['fbtool', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('fbtool', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
             "print(hwm.split()[1], file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", probe, *map(str, args)], capture_output=True, text=True, env=env, **run)
    return r, int(r.stderr.strip().splitlines()[-1])


def mutated(tmp_path, fixture, change, name="bad.tflite"):
    """Write ``fixture`` re-packed through LiteRT's object API after ``change(model)``."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray((FIXTURES / fixture).read_bytes()))
    change(model)
    out = tmp_path / name
    out.write_bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return out


def litert_loads(path) -> bool:
    """Does LiteRT's own interpreter load and allocate the model? Run apart: models are programs."""
    code = ("import sys; from ai_edge_litert.interpreter import Interpreter\n"
            "i = Interpreter(model_path=sys.argv[1]); i.allocate_tensors()")
    try:
        r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


LITERT_RUN = """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.interpreter import OpResolverType
data = np.load(sys.argv[2])
resolver = OpResolverType[sys.argv[4]] if len(sys.argv) > 4 else OpResolverType.AUTO
interp = Interpreter(model_path=sys.argv[1], experimental_op_resolver_type=resolver)
feeds = {k.split(":", 1)[1]: v for k, v in data.items() if k.startswith("input:")}
out = {}
for key in interp.get_signature_list():       # every signature, fed the arrays named like its inputs
    runner = interp.get_signature_runner(key)
    got = runner(**{name: feeds[name] for name in runner.get_input_details()})
    out.update({name: value for name, value in got.items()})
np.savez(sys.argv[3], **out)
"""


def run_on_litert(model, npz, out, resolver="AUTO"):
    """Outputs of every signature of ``model`` on ai-edge-litert (no Flex delegate) for the ``input:*``
    arrays of ``npz`` (signatures' output names must differ); in a process of its own, since LiteRT
    and TensorFlow do not share one well. ``resolver``: an OpResolverType name (AUTO applies
    XNNPACK, which flushes subnormal floats to zero; BUILTIN_WITHOUT_DEFAULT_DELEGATES does not)."""
    import numpy as np

    r = subprocess.run([sys.executable, "-c", LITERT_RUN, str(model), str(npz), str(out), resolver],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return dict(np.load(out))
