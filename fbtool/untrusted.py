"""Text from a model, an archive or a log made safe for where it is shown.

Names inside a model (tensors, ops, signatures, metadata, custom codes), archive member names and
log lines are chosen by whoever made the file. Shown raw, an ESC sequence retitles or clears the
terminal, CR or a newline forges lines in a CI log, BEL rings, NUL cuts a DOT file, a C0
character makes GraphML invalid XML, and a bidi override (RLO) shows text reversed.

- :func:`for_terminal` escapes every control character (C0 with tab and newline, DEL, C1) and
  every bidi embedding, override and isolate as ``\\xNN`` / ``\\uNNNN``; :func:`deep` does it to
  every string of a document, which the text renderers apply once before formatting;
- :func:`for_xml` does the same for the characters XML 1.0 cannot hold, plus bidi controls.

JSON output needs none of this: the encoder escapes control characters itself.
"""
from __future__ import annotations

import re

# C0 (all of it: tab and newline too, a name has no business laying out lines), DEL and C1; the
# bidi marks, embeddings, overrides and isolates (Unicode TR9) and the line/paragraph separators
_TERMINAL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# what XML 1.0 forbids (C0 but tab, LF, CR; surrogates; U+FFFE/FFFF), plus the same bidi controls
_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff"
                  "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    c = ord(match.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def for_terminal(text: str) -> str:
    return _TERMINAL.sub(_escape, text)


def for_xml(text: str) -> str:
    return _XML.sub(_escape, text)


def deep(value, escape=for_terminal):
    """``value`` with every string in it (keys too) escaped; other values as they are."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {deep(k, escape): deep(v, escape) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(deep(v, escape) for v in value)
    return value
