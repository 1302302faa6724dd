"""``fbtool verify ORIGINAL PATCHED``: both models on the same seeded random inputs, outputs compared.

The models run in a separate Python process (``python``: one with TensorFlow 2.18.1 when a
model has Flex ops, since no later Python runtime has the Flex delegate); a model without
Flex ops runs on ai-edge-litert when it is installed. A crash or a missing runtime is
reported, not raised from inside fbtool.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from ..errors import UsageError
from ..reader.model import open_model

RUNNER = os.path.join(os.path.dirname(__file__), "runner.py")
RTOL, ATOL = 1e-5, 1e-6


def _has_flex(path: str) -> bool:
    with open_model(path) as m:
        return any(op.opcode.kind == "flex" for sg in m.subgraphs for op in sg.operators)


def verify_models(original: str, patched: str, python: str | None = None, seed: int = 0, runs: int = 3,
                  rtol: float = RTOL, atol: float = ATOL, timeout: int = 600) -> dict:
    flex = [_has_flex(original), _has_flex(patched)]
    cmd = [python or sys.executable, RUNNER, original, patched, str(seed), str(runs), json.dumps(flex)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"the runtime did not finish within {timeout} s"}
    except OSError as e:
        raise UsageError(f"cannot run {cmd[0]}: {e.strerror or e}") from None
    if r.returncode < 0:
        return {"ok": False, "error": f"the runtime crashed (signal {-r.returncode}) running the models"}
    if r.returncode != 0:
        errors = [line for line in r.stderr.splitlines() if "Error" in line or "error" in line]
        last = (errors or r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        return {"ok": False, "error": f"the runtime failed: {last}"}
    report = json.loads(r.stdout.strip().splitlines()[-1])
    for out in report["outputs"].values():
        out["ok"] = out["shape_equal"] and out["dtype_equal"] and (out["max_abs"] <= atol or out["max_rel"] <= rtol)
    report.update(ok=all(o["ok"] for o in report["outputs"].values()) and bool(report["outputs"]),
                  rtol=rtol, atol=atol, seed=seed, flex=flex)
    return report
