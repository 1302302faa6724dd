"""A small FlatBuffers schema (.fbs) parser, used at development time.

It turns a schema such as TFLite's ``schema.fbs`` into the JSON description in
``fbtool/data/`` that the verifier and reader are driven by, so a newer schema
is picked up by re-running::

    python -m fbtool.reader.fbs schema.fbs --source "repo path@commit" > out.json

Only what TFLite's schemas use is supported: namespaces, enums, unions,
tables, attributes, defaults, ``file_identifier`` and ``root_type``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

_TOKEN = re.compile(r'\s*(?:(//[^\n]*)|("(?:[^"\\]|\\.)*")|([A-Za-z_][\w.]*)|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(.))', re.S)
SCALARS = {
    "bool": "?", "byte": "b", "ubyte": "B", "int8": "b", "uint8": "B",
    "short": "h", "ushort": "H", "int16": "h", "uint16": "H",
    "int": "i", "uint": "I", "int32": "i", "uint32": "I",
    "long": "q", "ulong": "Q", "int64": "q", "uint64": "Q",
    "float": "f", "double": "d", "float32": "f", "float64": "d",
}


def _tokens(text: str) -> list[str]:
    out = []
    for comment, string, ident, number, other in _TOKEN.findall(text):
        if comment:
            continue
        tok = string or ident or number or other
        if tok.strip():
            out.append(tok)
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise SyntaxError(f"expected {expected!r}, got {tok!r} at token {self.i}")
        self.i += 1
        return tok

    def attributes(self) -> dict:
        attrs = {}
        if self.peek() == "(":
            self.take("(")
            while self.peek() != ")":
                key = self.take()
                attrs[key] = True
                if self.peek() == ":":
                    self.take(":")
                    attrs[key] = self.take().strip('"')
                if self.peek() == ",":
                    self.take(",")
            self.take(")")
        return attrs

    def parse(self) -> dict:
        schema = {"enums": {}, "unions": {}, "tables": {}, "root_type": None, "file_identifier": None}
        while (tok := self.peek()) is not None:
            if tok in ("namespace", "include", "attribute", "file_extension"):
                while self.take() != ";":
                    pass
            elif tok == "file_identifier":
                self.take()
                schema["file_identifier"] = self.take().strip('"')
                self.take(";")
            elif tok == "root_type":
                self.take()
                schema["root_type"] = self.take()
                self.take(";")
            elif tok == "enum":
                self.enum(schema)
            elif tok == "union":
                self.union(schema)
            elif tok == "table":
                self.table(schema)
            elif tok == "struct":
                raise SyntaxError("structs are not supported (TFLite's schemas have none)")
            else:
                raise SyntaxError(f"unexpected {tok!r}")
        return schema

    def enum(self, schema: dict) -> None:
        self.take("enum")
        name = self.take()
        self.take(":")
        base = self.take()
        self.attributes()
        self.take("{")
        values, nxt = {}, 0
        while self.peek() != "}":
            member = self.take()
            if self.peek() == "=":
                self.take("=")
                nxt = int(self.take())
            values[member] = nxt
            nxt += 1
            self.attributes()
            if self.peek() == ",":
                self.take(",")
        self.take("}")
        schema["enums"][name] = {"base": base, "values": values}

    def union(self, schema: dict) -> None:
        self.take("union")
        name = self.take()
        self.attributes()
        self.take("{")
        members, nxt = {"NONE": 0}, 1
        while self.peek() != "}":
            member = self.take()
            if self.peek() == "=":
                self.take("=")
                nxt = int(self.take())
            members[member] = nxt
            nxt += 1
            self.attributes()
            if self.peek() == ",":
                self.take(",")
        self.take("}")
        schema["unions"][name] = members

    def table(self, schema: dict) -> None:
        self.take("table")
        name = self.take()
        self.attributes()
        self.take("{")
        fields = []
        while self.peek() != "}":
            fname = self.take()
            self.take(":")
            if self.peek() == "[":
                self.take("[")
                ftype = "[" + self.take() + "]"
                self.take("]")
            else:
                ftype = self.take()
            default = None
            if self.peek() == "=":
                self.take("=")
                default = self.take()
            attrs = self.attributes()
            self.take(";")
            field = {"name": fname, "type": ftype}
            if default is not None:
                field["default"] = default
            if "deprecated" in attrs:
                field["deprecated"] = True
            fields.append(field)
        self.take("}")
        schema["tables"][name] = fields


def parse_fbs(text: str) -> dict:
    """Parse .fbs text into {enums, unions, tables, root_type, file_identifier}."""
    return _Parser(text).parse()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fbs")
    ap.add_argument("--source", required=True, help="where the .fbs came from (repository, path, commit)")
    args = ap.parse_args(argv)
    with open(args.fbs, encoding="utf-8") as f:
        schema = parse_fbs(f.read())
    json.dump({"source": args.source, **schema}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
