"""``fbtool verify ORIGINAL PATCHED``: both models on the same seeded random inputs, outputs compared.

Two levels: the whole models on the same inputs, and each group of rewritten Flex ops
(:mod:`.groups`) against TensorFlow running the ops' own NodeDefs. The models run in a separate Python process (``python``: one with TensorFlow 2.18.1 when a
model has Flex ops, since no later Python runtime has the Flex delegate); a model without
Flex ops runs on ai-edge-litert when it is installed. A crash or a missing runtime is
reported, not raised from inside fbtool.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from ..errors import UsageError
from ..reader.model import open_model
from .groups import half_weights, rewrite_groups

RUNNER = os.path.join(os.path.dirname(__file__), "runner.py")
RTOL, ATOL = 1e-5, 1e-6
F16_RTOL = 1e-3      # half precision carries ~3 decimal digits


def _has_flex(path: str) -> bool:
    with open_model(path) as m:
        return any(op.opcode.kind == "flex" for sg in m.subgraphs for op in sg.operators)


def within(entry: dict, rtol: float, atol: float, dtype: str | None = None) -> bool:
    """Close enough: the largest difference within ``atol + rtol * (largest reference value)``
    (elementwise relative error means nothing next to zeros); integers and booleans exactly."""
    if not (entry["shape_equal"] and entry["dtype_equal"]):
        return False
    if dtype and dtype[0] in "iub":
        return entry["max_abs"] == 0
    rtol = max(rtol, F16_RTOL) if dtype == "float16" else rtol
    return entry["max_abs"] <= atol + rtol * entry.get("max_ref", 0.0)


def verify_models(original: str, patched: str, python: str | None = None, seed: int = 0, runs: int = 3,
                  rtol: float = RTOL, atol: float = ATOL, timeout: int = 600, inputs: str | None = None,
                  per_op: bool = True, shapes: dict[str, tuple[int, ...]] | None = None) -> dict:
    """Run both models (every signature, ``runs`` seeded random input sets plus the arrays of
    ``inputs``, an .npz keyed by input name) and, with ``per_op``, check each rewritten group of
    Flex ops against TensorFlow; the report of ``fbtool verify --json``. Random inputs take
    ``shapes`` (input name -> dims) where given, else the model's stored shape for dynamic dims.

    A model that cannot run gives ``{"ok": False, "error", "model": "original"|"patched"}``.
    Raises UsageError for settings that cannot work (no runs, unknown input names, bad shapes).
    """
    if runs < 0 or rtol < 0 or atol < 0 or not (runs or inputs):
        raise UsageError("verify needs runs >= 0 (or inputs when 0), rtol >= 0 and atol >= 0")
    flex = [_has_flex(original), _has_flex(patched)]
    with open_model(original) as m:
        if half_weights(m):        # float16 weights: ~3 digits, and a patch may round folded ones again
            rtol = max(rtol, F16_RTOL)
    if inputs:
        _check_inputs(original, inputs)
    if shapes:
        _check_shapes(original, shapes)
    with tempfile.TemporaryDirectory(prefix="fbtool-verify-") as scratch:
        cfg = {"original": os.path.abspath(original), "patched": os.path.abspath(patched), "flex": flex,
               "seed": seed, "runs": runs, "inputs": inputs and os.path.abspath(inputs), "groups": None,
               "shapes": {k: list(v) for k, v in (shapes or {}).items()}}
        if per_op:
            with open_model(original) as a, open_model(patched) as b:
                cfg["groups"], constants = rewrite_groups(a, b)
            if constants:
                cfg["constants"] = os.path.join(scratch, "constants.npz")
                np.savez(cfg["constants"], **constants)
        config = os.path.join(scratch, "config.json")
        with open(config, "w") as f:
            json.dump(cfg, f)
        report = _run([python or sys.executable, RUNNER, config], timeout)
    if not report.get("ok", True):
        return report
    for out in report["outputs"].values():
        out["ok"] = within(out, rtol, atol)
    first = None
    for group in (report.get("per_op") or {}).get("groups", []):
        group["ok"] = "error" not in group and within(group, rtol, atol)
        if not group["ok"] and first is None:
            first = group
    report.update(ok=all(o["ok"] for o in report["outputs"].values()) and bool(report["outputs"]) and first is None,
                  rtol=rtol, atol=atol, seed=seed, flex=flex, first_divergence=first)
    return report


def _input_tensors(m) -> dict:
    """Input name -> tensor, over every signature (subgraph 0's inputs for a model without)."""
    if m.signatures:
        return {n: m.subgraphs[s.subgraph].tensors[i] for s in m.signatures for n, i in s.inputs.items()}
    sg = m.subgraphs[0]
    return {sg.tensors[i].name: sg.tensors[i] for i in sg.inputs}


def _check_shapes(model: str, shapes: dict) -> None:
    """Every --shape names an input, with its rank and its fixed dimensions."""
    with open_model(model) as m:
        signatures = {name: t.shape_signature for name, t in _input_tensors(m).items()}
    for name, dims in shapes.items():
        want = signatures.get(name)
        if want is None:
            raise UsageError(f"--shape {name}: {model} has no input {name!r} (inputs: {', '.join(sorted(signatures))})")
        if len(dims) != len(want) or any(w >= 0 and w != d for w, d in zip(want, dims)):
            shown = "[" + ",".join("?" if w < 0 else str(w) for w in want) + "]"
            raise UsageError(f"--shape {name}={','.join(map(str, dims))} does not fit the input's shape {shown}")


def _check_inputs(model: str, path: str) -> None:
    """The user's .npz must hold an array for every signature input (by name or ``input:<name>``)."""
    try:
        with np.load(path) as data:
            keys = set(data.files)
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: not a readable .npz file ({e})") from None
    with open_model(model) as m:
        names = set(_input_tensors(m))
    missing = sorted(n for n in names if n not in keys and f"input:{n}" not in keys)
    if missing:
        raise UsageError(f"{path}: no array for input(s) {', '.join(missing)} (has: {', '.join(sorted(keys)) or 'none'})")


def _run(cmd: list[str], timeout: int) -> dict:
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
    return json.loads(r.stdout.strip().splitlines()[-1])
