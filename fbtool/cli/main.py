"""The ``fbtool`` command: a thin layer over the library."""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import ModelError, UsageError
from .style import error
from . import audit_cmd, diff_cmd, flex_cmd, graph_cmd, inspect_cmd, log_cmd, ops_cmd, patch_cmd, report_cmd

EXIT_OK, EXIT_FINDING, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other fbtool error
        self.exit(EXIT_ERROR, f"fbtool: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="fbtool", description="Inspect and patch TensorFlow Lite flatbuffers.")
    ap.add_argument("--version", action="version", version=f"fbtool {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (inspect_cmd, flex_cmd, graph_cmd, ops_cmd, log_cmd, audit_cmd, diff_cmd, patch_cmd, report_cmd):
        command.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    target = getattr(args, "model", None) or getattr(args, "log", None) or " ".join(getattr(args, "models", []))
    try:
        return args.run(args, sys.stdout)
    except ModelError as e:
        return _error(f"{e.path or target}: {e}")
    except UsageError as e:
        return _error(str(e))
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): not an error worth a word
        return EXIT_OK
    except (MemoryError, RecursionError) as e:
        return _error(f"{target}: out of resources reading the model ({type(e).__name__})")
    except Exception as e:  # a bug in fbtool: still one line, clearly marked
        return _error(f"{target}: internal error: {type(e).__name__}: {e} (please report this)")


def _error(msg: str) -> int:
    error(msg)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
