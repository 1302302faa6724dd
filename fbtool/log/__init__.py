"""Converter and runtime logs turned into the ops at fault, where they come from and what to do."""
from .parser import LogOp, LogReport, parse_lines, parse_log

__all__ = ["LogOp", "LogReport", "parse_lines", "parse_log"]
