"""The report's sections as HTML: summary, op-type histogram, Flex/custom ops, before/after changes
and verification. Cells carry ``data-*`` attributes naming what they show, for scripts and tests."""
from __future__ import annotations

from . import changes as ch
from .gather import ModelFacts
from .html import MAX_ROWS, attrs_text, esc, kind_badge, rows_shown, signed_size, size, table

COUNTS = (("total", "operators"), ("builtin", "builtin"), ("flex", "Flex"), ("custom", "custom"))


def _tensor(sg: dict, i: int) -> str:
    if i < 0:
        return "-"
    t = sg["tensors"][i]
    dims = t["shape_signature"] or t["shape"]
    return f"{t['name'] or '#' + str(i)} {t['dtype']}[{','.join(map(str, dims))}]"


def _counts(m: ModelFacts) -> dict:
    c = m.inspect["op_counts"]
    return {**{k: c[k] for k, _ in COUNTS}, "islands": m.flex["summary"]["islands"],
            "partitions": m.flex["summary"]["partitions"]}


def _facts(m: ModelFacts) -> str:
    doc = m.inspect
    f, b = doc["file"], doc["buffers"]
    rows = [("File", f["path"]),
            ("Size", f"{size(f['size'])} ({f['size']} bytes): weights {size(b['inline_bytes'] + b['external_bytes'])}, "
                     f"graph {size(b['graph_bytes'])}, {b['count']} buffers"),
            ("Schema", f"v{doc['schema_version']}" + (f", {doc['description']!r}" if doc["description"] else "")),
            ("Min runtime", (f"{doc['min_runtime_version']} declared" if doc["min_runtime_version"]
                             else "none declared") + f"; its builtin ops need {m.required_runtime or 'any'}")]
    conv = doc["conversion"] or {}
    if "environment" in conv:
        env, opts = conv["environment"], conv.get("options", {})
        flags = [k for k in ("allow_custom_ops", "enable_select_tf_ops", "force_select_tf_ops") if opts.get(k)]
        rows.append(("Converted by", f"TensorFlow {env.get('tensorflow_version', '?')} from "
                                     f"{env.get('model_type', '?')}" + (f", {', '.join(flags)}" if flags else "")))
    rows.append(("Subgraphs", "; ".join(f"{sg['index']} {sg['name']!r}: {len(sg['operators'])} ops"
                                        for sg in doc["subgraphs"])))
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows) + "</dl>"


def _signatures(m: ModelFacts) -> str:
    doc = m.inspect
    if not doc["signatures"]:
        return '<p class="muted">No signatures.</p>'
    rows = []
    for sig in doc["signatures"]:
        sg = doc["subgraphs"][sig["subgraph"]]
        ins, outs = ("<br>".join(f"{esc(x['name'])}: {esc(_tensor(sg, x['tensor']))}" for x in sig[side])
                     for side in ("inputs", "outputs"))
        rows.append(f'<tr data-signature="{esc(sig["key"])}"><td>{esc(sig["key"])}</td><td>{sig["subgraph"]}</td>'
                    f"<td>{ins}</td><td>{outs}</td></tr>")
    return table(["signature", "subgraph", "inputs", "outputs"], rows, "signatures")


def _runtime_notes(m: ModelFacts) -> str:
    c = m.inspect["op_counts"]
    notes = []
    if c["flex"]:
        notes.append('<p class="notice flex">Needs the Flex delegate (TF Select ops): no Python runtime has it after '
                     "TensorFlow 2.18 (TensorFlow &ge; 2.19, ai-edge-litert).</p>")
    if c["custom"]:
        names = sorted({h["opcode"] for h in m.inspect["op_histogram"] if h["kind"] == "custom"})
        notes.append(f'<p class="notice custom">Needs custom kernels registered for: {esc(", ".join(names))}.</p>')
    return "".join(notes)


def summary(m: ModelFacts) -> str:
    tiles = "".join(
        f'<div class="tile kind-{esc(key)}{" some" if n else ""}">'
        f'<b data-count="{esc(key)}" data-model="original">{n}</b>'
        f"<span>{esc(label)}</span></div>"
        for key, label, n in [(k, lbl, _counts(m)[k]) for k, lbl in
                              (*COUNTS, ("islands", "Flex islands"), ("partitions", "Flex partitions"))])
    return (f'<section id="summary"><h2>Summary</h2><div class="tiles">{tiles}</div>{_runtime_notes(m)}'
            f"{_facts(m)}<h3>Signatures</h3>{_signatures(m)}</section>")


def compare_summary(a: ModelFacts, b: ModelFacts) -> str:
    ca, cb = _counts(a), _counts(b)
    sa, sb = a.inspect["file"]["size"], b.inspect["file"]["size"]
    rows = [f'<tr><th>file size</th><td data-count="size" data-model="original">{sa}</td>'
            f'<td data-count="size" data-model="patched">{sb}</td><td>{esc(signed_size(sb - sa, sa))}</td></tr>']
    for key, label in (*COUNTS, ("islands", "Flex islands"), ("partitions", "Flex delegate partitions")):
        delta = cb[key] - ca[key]
        rows.append(f'<tr class="kind-{esc(key)}"><th>{esc(label)}</th>'
                    f'<td data-count="{esc(key)}" data-model="original">{ca[key]}</td>'
                    f'<td data-count="{esc(key)}" data-model="patched">{cb[key]}</td>'
                    f"<td>{'' if not delta else f'{delta:+d}'}</td></tr>")
    for label, va, vb in (("declared min runtime", a.inspect["min_runtime_version"], b.inspect["min_runtime_version"]),
                          ("runtime its builtin ops need", a.required_runtime, b.required_runtime)):
        rows.append(f"<tr><th>{esc(label)}</th><td>{esc(va or '-')}</td><td>{esc(vb or '-')}</td>"
                    f"<td>{'changed' if va != vb else ''}</td></tr>")
    head = ["", a.name + " (original)", b.name + " (patched)", "change"]
    return (f'<section id="summary"><h2>Summary: before and after</h2>{table(head, rows, "compare")}'
            f"{_runtime_notes(b)}<h3>Original</h3>{_facts(a)}<h3>Patched</h3>{_facts(b)}"
            f"<h3>Signatures</h3>{_signatures(b)}</section>")


def _histogram_table(m: ModelFacts, side: str) -> str:
    hist = m.inspect["op_histogram"]
    top = max((h["count"] for h in hist), default=1)
    rows = [f'<tr data-opcode="{esc(h["opcode"])}" data-kind="{esc(h["kind"])}" data-model="{side}">'
            f'<td class="num">{h["count"]}</td><td class="bar"><span class="kind-{esc(h["kind"])}" '
            f'style="width:{h["count"] / top * 100:.1f}%"></span></td><td>{esc(h["opcode"])}</td>'
            f"<td>v{h['version']}</td><td>{kind_badge(h['kind'])}</td></tr>" for h in hist]
    return table(["count", "", "op type", "version", "kind"], rows, "histogram")


def histogram(a: ModelFacts, b: ModelFacts | None = None) -> str:
    if b is None:
        return f'<section id="histogram"><h2>Op types</h2>{_histogram_table(a, "original")}</section>'
    return (f'<section id="histogram"><h2>Op types</h2><div class="pair"><div><h3>Original</h3>'
            f'{_histogram_table(a, "original")}</div><div><h3>Patched</h3>{_histogram_table(b, "patched")}</div>'
            "</div></section>")


def _verdict(op: dict) -> str:
    if op["rewritable"] and op["builtin"] is None:
        return f'<span class="ok">{esc(op["reason"])}</span>'
    if op["rewritable"]:
        runtime = f" (runtime &ge; {esc(op['min_runtime'])})" if op["min_runtime"] else ""
        return (f'<span class="ok">&rarr; {esc(op["builtin"])} v{esc(op["version"])}</span>{runtime}: '
                f'{esc(op["reason"])}')
    return f'<span class="bad">must stay</span>: {esc(op["reason"])}'


def _op_cells(op: dict | None) -> str:
    if op is None:
        return "<td></td><td></td><td></td><td></td>"
    island = "" if op["island"] is None else str(op["island"])
    return (f"<td>{esc(op['tf_op'])}</td><td><code>{esc(attrs_text(op['attrs']))}</code></td>"
            f"<td>{esc(op['layer'] or '')}</td><td>{esc(island)}</td>")


def flex_ops(m: ModelFacts) -> str:
    ops = m.flex["ops"]
    if not ops:
        return ('<section id="flex-ops"><h2>Flex &amp; custom ops</h2><p class="ok">Nothing needs the Flex '
                "delegate or a custom kernel.</p></section>")
    shown, more = rows_shown(ops)
    rows = [f'<tr class="flex-op kind-{esc(o["kind"])}" data-subgraph="{o["subgraph"]}" data-index="{o["index"]}" '
            f'data-kind="{esc(o["kind"])}" data-tf-op="{esc(o["tf_op"])}" data-node="o{o["subgraph"]}-op{o["index"]}">'
            f'<td class="num">{o["subgraph"]}:{o["index"]}</td><td>{esc(o["custom_code"])} {kind_badge(o["kind"])}</td>'
            f"{_op_cells(o)}<td>{_verdict(o)}</td></tr>" for o in shown]
    s = m.flex["summary"]
    lead = (f"<p>{s['flex_ops']} Flex and {s['custom_ops']} custom ops: {s['rewritable']} could become TFLite "
            f"builtins, {s['must_stay']} must stay; {s['islands']} Flex islands, {s['partitions']} Flex delegate "
            "partitions. Click a row to find the op in the graph.</p>")
    head = ["sg:op", "op", "TF op", "attributes", "layer", "island", "rewrite"]
    body = table(head, rows, "ops", "flex-table", more)
    return f'<section id="flex-ops"><h2>Flex &amp; custom ops</h2>{lead}{body}</section>'


def _result(r: dict) -> str:
    a = r["after"]
    group = f" · ops {', '.join(map(str, r['group']))} became this one op" if r["group"] else ""
    if r["status"] == ch.REWRITTEN:
        return f'<span class="ok">rewritten &rarr; {esc(a["opcode"])} v{a["version"]}</span>{esc(group)}'
    if r["status"] == ch.CHANGED:
        return f'<span class="ok">now {esc(a["opcode"])} v{a["version"]}</span>{esc(group)}'
    if r["status"] == ch.FOLDED:
        return (f'<span class="ok">folded into patched op {a["index"]}: {esc(a["opcode"])} v{a["version"]}</span>'
                f"{esc(group)}")
    if r["status"] == ch.REMOVED:
        return '<span class="ok">removed</span>'
    return f'<span class="bad">{esc(r["status"])}</span>' + (f": {esc(r['reason'])}" if r["reason"] else "")


def changes(a: ModelFacts, b: ModelFacts, diff: dict) -> str:
    shown, more = rows_shown([r for r in diff["rows"] if r["status"] != ch.UNCHANGED])
    rows = []
    for r in shown:
        before, after = r["before"], r["after"]
        rows.append(
            f'<tr class="change status-{esc(r["status"].replace(" ", "-"))}" data-status="{esc(r["status"])}" '
            f'data-subgraph="{r["subgraph"]}" data-index="{r["index"]}" data-node="o{r["subgraph"]}-op{r["index"]}" '
            f'data-after="{"" if after is None else after["index"]}">'
            f'<td class="num">{r["subgraph"]}:{r["index"]}</td>'
            f'<td>{esc(before["opcode"])} {kind_badge(before["kind"])}</td>'
            f"{_op_cells(a.flex_op(r['subgraph'], r['index']))}<td>{_result(r)}</td>"
            f'<td class="num">{"" if after is None else after["index"]}</td></tr>')
    for op in diff["added"][:MAX_ROWS]:
        rows.append(f'<tr class="change status-added" data-status="added" data-subgraph="{op["subgraph"]}">'
                    f'<td></td><td></td><td></td><td></td><td></td><td></td>'
                    f'<td><span class="ok">added: {esc(op["opcode"])} v{op["version"]}</span></td>'
                    f'<td class="num">{op["index"]}</td></tr>')
    counts = diff["counts"]
    parts = [f"{counts.get(k, 0)} {k}" for k in (ch.REWRITTEN, ch.FOLDED, ch.REMOVED, ch.CHANGED, ch.STILL_FLEX,
                                                 ch.STILL_CUSTOM) if counts.get(k)]
    lead = (f"<p>Ops matched by the tensors they produce (fbtool patch never renumbers tensors): "
            f"{esc(', '.join(parts) or 'nothing changed')}"
            + (f", {len(diff['added'])} added" if diff["added"] else "") + ".</p>")
    if diff["subgraphs"][0] != diff["subgraphs"][1]:
        lead += f'<p class="notice">The models have {diff["subgraphs"][0]} and {diff["subgraphs"][1]} subgraphs.</p>'
    head = ["sg:op", "original op", "TF op", "attributes", "layer", "island", "in the patched model", "patched op"]
    more += max(0, len(diff["added"]) - MAX_ROWS)
    body = table(head, rows, "ops", "changes-table", more) if rows else '<p class="muted">No operator changed.</p>'
    return f'<section id="changes"><h2>Changes</h2>{lead}{body}</section>'


def verification(report: dict | None) -> str:
    if report is None:
        body = ('<p class="muted" data-verification="not-run">Not run: pass <code>--verify</code> to run both '
                "models on the same seeded random inputs and compare their outputs.</p>")
    elif "error" in report:
        body = f'<p class="notice bad" data-verification="error">Could not compare: {esc(report["error"])}</p>'
    else:
        rows = [f'<tr data-output="{esc(name)}" data-ok="{str(o["ok"]).lower()}"><td>{esc(name)}</td>'
                f'<td class="num">{o["max_abs"]:.3g}</td><td class="num">{o["max_rel"]:.3g}</td>'
                f'<td>{"<span class=ok>ok</span>" if o["ok"] else "<span class=bad>differs</span>"}</td></tr>'
                for name, o in report["outputs"].items()]
        verdict = "the same outputs" if report["ok"] else "DIFFERENT outputs"
        body = (f'<p data-verification="{"ok" if report["ok"] else "differs"}">{esc(verdict)} on '
                f'{esc(report.get("runs", "?"))} seeded random input sets (seed {esc(report.get("seed", "?"))}, '
                f'rtol {esc(report.get("rtol", "?"))}, atol {esc(report.get("atol", "?"))}; '
                f'{esc(" vs ".join(report.get("runtimes", [])))}). Latency was not measured.</p>'
                + table(["output", "max abs error", "max rel error", ""], rows, "verify"))
    return f'<section id="verification"><h2>Verification</h2>{body}</section>'
