"""The report page: one self-contained HTML file, its CSS and JS inline.

Every string from a model (op names, tensor names, attributes, descriptions) is untrusted:
it goes through :func:`esc` and nowhere else. The Content-Security-Policy allows no network
access at all and only the one script whose hash it names, so that even a slip in escaping
could neither run injected script nor load anything.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
from importlib import resources

from .. import __version__


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def signed_size(n: int, base: int) -> str:
    sign = "+" if n > 0 else "-" if n < 0 else "±"
    pct = f" ({n / base * 100:+.2f}%)" if base else ""
    return f"{sign}{size(abs(n))} ({n:+d} bytes){pct}"


def attrs_text(attrs: dict, limit: int = 240) -> str:
    """Decoded attributes as compact JSON, shortened: a tensor attribute can hold thousands of values."""
    parts = [f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in attrs.items()]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[:limit] + "…"


def kind_badge(kind: str) -> str:
    return f'<span class="badge kind-{esc(kind)}">{esc(kind)}</span>'


MAX_ROWS = 2000    # per table: a page stays readable (and small) for a model of any size


def rows_shown(items: list) -> tuple[list, int]:
    """The first MAX_ROWS items, and how many more there are."""
    return items[:MAX_ROWS], max(0, len(items) - MAX_ROWS)


def table(head: list[str], rows: list[str], cls: str = "", ident: str = "", more: int = 0) -> str:
    """``rows`` are ready ``<tr>`` strings (their cells escaped by the caller); ``more``: rows left
    out (see :func:`rows_shown`), said in a last row."""
    attrs = (f' class="{esc(cls)}"' if cls else "") + (f' id="{esc(ident)}"' if ident else "")
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    tail = (f'<tr class="more"><td colspan="{len(head)}">&hellip; and {more} more rows: the --json output of '
            f"fbtool inspect, flex or patch lists them all</td></tr>") if more else ""
    return f"<table{attrs}><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}{tail}</tbody></table>"


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def page(title: str, subtitle: str, sections: list[str]) -> str:
    css, js = _asset("report.css"), _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"
    body = "".join(sections)
    nav = "".join(f'<a href="#{ident}">{esc(label)}</a>' for ident, label in NAV if f'<section id="{ident}"' in body)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{css}</style></head>\n<body>\n"
        f'<header><h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p><nav>{nav}</nav></header>\n<main>\n'
        + "\n".join(sections)
        + f'\n</main>\n<footer>made by fbtool {esc(__version__)} · works offline: no network, no external files'
          f"</footer>\n<script>{js}</script>\n</body></html>\n"
    )


NAV = (("summary", "Summary"), ("changes", "Changes"), ("verification", "Verification"), ("histogram", "Op types"),
       ("flex-ops", "Flex & custom ops"), ("graph", "Graph"))
