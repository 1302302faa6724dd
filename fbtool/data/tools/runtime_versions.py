"""Build ``fbtool/data/runtime_versions.json`` from LiteRT's ``runtime_version.cc`` (dev-time tool).

The C++ file holds a map ``{{BuiltinOperator_<OP>, <version>}, "<min runtime>"}``; this reads those
entries as text, so no TensorFlow or LiteRT build is needed::

    python fbtool/data/tools/runtime_versions.py runtime_version.cc \\
        --source "google-ai-edge/LiteRT tflite/converter/tools/versioning/runtime_version.cc @ <commit>" \\
        > fbtool/data/runtime_versions.json
"""
import argparse
import json
import pathlib
import re

ENTRY = re.compile(r'\{\{BuiltinOperator_(\w+),\s*(\d+)\},\s*"(\d+(?:\.\d+)*)"\}')


def parse(text: str) -> dict[str, dict[str, str]]:
    """Map builtin name -> {version: min runtime}; a repeated key keeps its first value, as std::map does."""
    ops: dict[str, dict[int, str]] = {}
    for name, version, runtime in ENTRY.findall(text):
        ops.setdefault(name, {}).setdefault(int(version), runtime)
    return {name: {str(v): rt for v, rt in sorted(versions.items())} for name, versions in sorted(ops.items())}


def dumps(source: str, ops: dict[str, dict[str, str]]) -> str:
    """The JSON document, one builtin per line."""
    rows = ",\n".join(f"  {json.dumps(name)}: {json.dumps(versions)}" for name, versions in ops.items())
    return f'{{\n "source": {json.dumps(source)},\n "ops": {{\n{rows}\n }}\n}}\n'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runtime_version_cc", type=pathlib.Path)
    ap.add_argument("--source", required=True, help='"<repo> <path> @ <commit>" of the file read')
    args = ap.parse_args()
    print(dumps(args.source, parse(args.runtime_version_cc.read_text(encoding="utf-8"))), end="")


if __name__ == "__main__":
    main()
