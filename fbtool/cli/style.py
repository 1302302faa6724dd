"""Terminal colour: only on a TTY, never with a non-empty NO_COLOR (https://no-color.org)."""
from __future__ import annotations

import os
import sys

from ..untrusted import for_terminal

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def error(message: str) -> None:
    """The one line every fbtool error is: ``fbtool: error: WHAT``, names in it made terminal-safe."""
    print(f"fbtool: error: {for_terminal(message)}", file=sys.stderr)


def note(message: str) -> None:
    """A line for stderr that is not an error (``wrote PATH``)."""
    print(for_terminal(message), file=sys.stderr)


class Style:
    def __init__(self, stream=None):
        stream = stream or sys.stdout
        self.enabled = stream.isatty() and not os.environ.get("NO_COLOR")

    def __call__(self, text: str, *styles: str) -> str:
        styles = [st for st in styles if st]
        if not self.enabled or not styles:
            return text
        return f"\033[{';'.join(_CODES[s] for s in styles)}m{text}\033[0m"

    def kind(self, text: str, kind: str) -> str:
        colour = {"flex": "yellow", "custom": "red"}.get(kind)
        return self(text, colour) if colour else text
