"""``fbtool ops``: the kernels one or many models need, for selective builds."""
from __future__ import annotations

import json

from ..untrusted import deep
from .style import error


def add_parser(sub) -> None:
    p = sub.add_parser("ops", help="builtin (op, version) pairs and Flex ops used by models",
                       description="List the kernels a set of models needs, to build a TFLite runtime or "
                                   "Flex delegate with only those.")
    p.add_argument("models", nargs="+")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON document (schemas/ops.schema.json)")
    fmt.add_argument("--list-flex-ops", action="store_true",
                     help="the Flex TF ops as the JSON list TensorFlow's list_flex_ops tool prints")
    p.add_argument("--no-verify", action="store_true", help="skip the semantic checks (bounds checks always run)")
    p.set_defaults(run=run)


def run(args, out) -> int:
    from ..flex.oplist import list_flex_ops_format, list_ops

    doc = list_ops(args.models, verify=not args.no_verify)
    if args.json:
        out.write(json.dumps(doc) + "\n")
    elif args.list_flex_ops:
        out.write(list_flex_ops_format(doc))
    else:
        doc = deep(doc)
        read = len(doc["models"]) - len(doc["errors"])
        lines = [f"{read} model(s)" + (f" ({len(doc['errors'])} could not be read)" if doc["errors"] else ""),
                 "builtin ops (op version):"]
        lines += [f"  {b['op']} {b['version']}" for b in doc["builtin"]]
        lines.append(f"Flex ops ({len(doc['flex'])}):" if doc["flex"] else "Flex ops: none")
        lines += [f"  {f['tf_op']}" for f in doc["flex"]]
        lines.append(f"custom ops ({len(doc['custom'])}):" if doc["custom"] else "custom ops: none")
        lines += [f"  {c['custom_code']}" for c in doc["custom"]]
        out.write("\n".join(lines) + "\n")
    for e in doc["errors"]:
        error(f"{e['model']}: {e['error']}")
    return 2 if doc["errors"] else 0
