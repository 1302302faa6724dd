"""What Keras preprocessing layers leave behind: DenseBincount (CategoryEncoding multi_hot and
count, lookups in multi_hot mode, tf.math.bincount) and integer hash-table lookups (IntegerLookup,
tf.lookup.StaticHashTable with integer keys), computed by builtins.

DenseBincount (bincount_op.cc): ``out[..., j]`` counts (or, binary, flags) the ids equal to j,
each weighted when weights are given; ids at or past ``size`` are ignored (negative ids make
TensorFlow fail; here they are ignored too). ONE_HOT then SUM (or REDUCE_MAX) over the ids.
``size`` must be static: a constant, or Keras' ``min(max(n, V), V)`` (:meth:`Graph.static_value`).

A lookup (lookup_table_op.cc, HashTable::Find): each key becomes its value, or the default when
it is not in the table. The keys and values are the constants LookupTableImportV2 gives the
table in the session-initializer subgraph (the one CALL_ONCE runs); the table is found by its
``shared_name``. Sorted keys make it a BUCKETIZE (a binary search), a GATHER of the key and value
found there, and a SELECT_V2 of the default where the key differs; BUCKETIZE compares in float32,
so keys beyond 2^24 in magnitude take EQUAL against every key instead. Once no lookup reads a
table, its HashTableV2 and LookupTableImportV2 ops are removed.
"""
from __future__ import annotations

import numpy as np

from ..api import Build, Graph, Node, NoRule, Remove, Rewrite
from .common import rules

EXACT_IN_FLOAT32 = 2 ** 24
TABLE_OPS = {"HashTableV2", "LookupTableImportV2", "LookupTableFindV2"}


def dense_bincount(node: Node, g: Graph) -> Rewrite:
    b = Build(node, g)
    ids, size_t, weights = node.inputs[:3]
    shape = list(g.shape(ids))
    if len(shape) not in (1, 2):
        raise NoRule("DenseBincount of rank-1 or rank-2 ids only")
    size = g.static_value(size_t)
    if size is None or size < 0:
        raise NoRule("DenseBincount's size is computed at run time and is not a fixed number")
    dtype = g.dtype(node.outputs[0])
    weighted = int(np.prod(g.shape(weights))) != 0
    binary = bool(node.attrs.get("binary_output"))
    if weighted and (binary or g.shape(weights) != tuple(shape)):
        raise NoRule("DenseBincount with weights is decomposed for counts of same-shaped weights only")
    if weighted:       # the weight where the id matches, else 0 (0 * an infinite weight would be NaN)
        match = b("ONE_HOT", ids, b.const(size, "int32"), b.const(True, "bool"), b.const(False, "bool"),
                  dtype="bool", shape=shape + [size], options=("OneHotOptions", {"axis": -1}))
        hot = b.where(match, b("EXPAND_DIMS", weights, b.const(-1, "int32"), shape=shape + [1]), b.const(0, dtype))
    else:
        hot = b("ONE_HOT", ids, b.const(size, "int32"), b.const(1, dtype), b.const(0, dtype), dtype=dtype,
                shape=shape + [size], options=("OneHotOptions", {"axis": -1}))
    reduce = "REDUCE_MAX" if binary else "SUM"
    out = b(reduce, hot, b.const([len(shape) - 1], "int32"), shape=shape[:-1] + [size],
            options=("ReducerOptions", {"keep_dims": False}))
    return b.rewrite(out)


def _table_of(g: Graph, handle: int) -> tuple | None:
    op = g.producer(handle)
    return None if op is None or op.tf_op != "HashTableV2" else _name(op)


def _name(op: Node) -> tuple | None:
    shared = op.attrs.get("shared_name")
    return (op.attrs.get("container", ""), shared) if shared else None


def _uses(g: Graph, table: tuple) -> list[tuple[Graph, Node]]:
    """Every op, in any subgraph, reading a handle of ``table``."""
    return [(other, reader) for other in g.graphs() for n in other.flex_nodes("HashTableV2") if _name(n) == table
            for reader in other.readers(n.outputs[0])]


def _contents(g: Graph, table: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The keys and values the one LookupTableImportV2 of ``table`` loads, both constants; NoRule
    when anything else writes into the table."""
    uses = _uses(g, table)
    imports = [(other, r) for other, r in uses if r.tf_op == "LookupTableImportV2"]
    others = sorted({r.tf_op or r.builtin or "a custom op" for _, r in uses} - set(TABLE_OPS))
    if others or len(imports) != 1:
        raise NoRule(f"table {table[1]!r} is also used by {', '.join(others)}" if others else
                     f"table {table[1]!r} is filled by {len(imports)} LookupTableImportV2 ops, not one")
    other, imp = imports[0]
    keys, values = other.constant(imp.inputs[1]), other.constant(imp.inputs[2])
    if keys is None or values is None or keys.shape != values.shape or keys.ndim != 1:
        raise NoRule("the table's keys and values are not constants of one length")
    return keys, values


def lookup_find(node: Node, g: Graph) -> Rewrite:
    table = _table_of(g, node.inputs[0])
    if table is None:
        raise NoRule("the table handle does not come from a HashTableV2 with a shared name")
    keys, values = _contents(g, table)
    default = g.constant(node.inputs[2])
    if default is None or default.size != 1:
        raise NoRule("the default value is not a constant scalar")
    x = node.inputs[1]
    if keys.dtype.kind not in "iu" or g.dtype(x) != keys.dtype.name:
        raise NoRule("only integer keys are looked up with builtins (string tables have HASHTABLE builtins)")
    b = Build(node, g)
    shape = list(g.shape(x))
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    default = default.reshape(()).astype(values.dtype)
    if keys.size and np.abs(keys.astype(np.float64)).max() <= EXACT_IN_FLOAT32:
        at = b("BUCKETIZE", x, dtype="int32", shape=shape,
               options=("BucketizeOptions", {"boundaries": keys.astype(np.float32).tolist()}))
        key_at = np.concatenate([keys[:1], keys])          # slot 0: below every key, never equal to x there
        value_at = np.concatenate([default[None], values])
        found_key = b("GATHER", b.const(key_at, keys.dtype.name), at, shape=shape,
                      options=("GatherOptions", {"axis": 0, "batch_dims": 0}))
        hit = b.test("EQUAL", found_key, x)
    else:
        wide = b("EXPAND_DIMS", x, b.const(-1, "int32"), shape=shape + [1])
        equal = b.test("EQUAL", wide, b.const(keys, keys.dtype.name))
        at = b("ARG_MAX", b("CAST", equal, dtype="int32", shape=shape + [keys.size]), b.const(-1, "int32"),
               dtype="int32", shape=shape, options=("ArgMaxOptions", {"output_type": 2}))
        at = b("ADD", at, b.const(1, "int32"))
        value_at = np.concatenate([default[None], values])
        hit = b("REDUCE_ANY", equal, b.const([-1], "int32"), shape=shape, options=("ReducerOptions", {"keep_dims": False}))
    value = b("GATHER", b.const(value_at, values.dtype.name), at, shape=shape,
              options=("GatherOptions", {"axis": 0, "batch_dims": 0}))
    return b.rewrite(b.where(hit, value, b.const(default, values.dtype.name)))


def table(node: Node, g: Graph) -> Remove:
    """A HashTableV2, and the LookupTableImportV2 filling it, once no op anywhere reads the table."""
    name = _name(node)
    live = [r for _, r in _uses(g, name)] if name else g.readers(node.outputs[0])
    live = [r for r in live if r.tf_op != "LookupTableImportV2"]
    if live:
        raise NoRule(f"the table is still read by {live[0].tf_op or live[0].builtin or 'a custom op'}")
    return Remove((node.key, *(r.key for r in g.readers(node.outputs[0]))))


RULES = {**rules("decompose", DenseBincount=dense_bincount, LookupTableFindV2=lookup_find),
         **rules("remove", HashTableV2=table)}
