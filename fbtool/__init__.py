"""fbtool: inspect and patch TensorFlow Lite flatbuffers without TensorFlow."""
__version__ = "0.1.0"

from .errors import ModelError  # noqa: E402
from .reader.model import Model, open_model  # noqa: E402
from .inspect import inspect_model  # noqa: E402

__all__ = ["ModelError", "Model", "open_model", "inspect_model", "__version__"]
