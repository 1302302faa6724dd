"""Versioned knowledge files; each JSON file names its upstream source in a ``source`` key."""
import json
import pathlib

_HERE = pathlib.Path(__file__).parent


def load(name: str) -> dict:
    """Parse ``fbtool/data/<name>.json``."""
    return json.loads((_HERE / f"{name}.json").read_text(encoding="utf-8"))
