"""The one exception type fbtool raises for bad input."""
from __future__ import annotations


class ModelError(Exception):
    """A model (or other input) is malformed or unusable.

    ``str(err)`` is one line: ``where: what`` (``where`` may be empty).
    """

    def __init__(self, what: str, where: str = "", path: str | None = None):
        super().__init__(f"{where}: {what}" if where else what)
        self.what = what
        self.where = where
        self.path = path  # the file it is about, once known


class UsageError(Exception):
    """A command line that cannot be carried out (bad option values)."""
