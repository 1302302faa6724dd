"""``fbtool report``: one self-contained HTML page about a model, or about a model and its patched copy.

``gather`` reads (inspect and flex documents, op graphs), ``changes`` matches ops before and after
a patch, ``drawing`` lays the op graph out with Graphviz, ``sections``/``graphs``/``html`` render,
``build`` puts it together.
"""
from .build import build_report, write_report

__all__ = ["build_report", "write_report"]
