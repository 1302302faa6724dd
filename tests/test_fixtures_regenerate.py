"""With TensorFlow installed (the `fixtures` extra: tensorflow-cpu 2.18.1), rebuild every fixture
through the real converter and check it still converts to the same operators as the committed file."""
import importlib.util
import sys

import pytest

from conftest import FIXTURES
from fbtool import inspect_model

pytest.importorskip("tensorflow", reason="needs TensorFlow: pip install -e '.[fixtures]'")
sys.path.insert(0, str(FIXTURES))
generate = importlib.util.module_from_spec(importlib.util.spec_from_file_location("generate", FIXTURES / "generate.py"))
generate.__loader__.exec_module(generate)


def _ops(doc):
    return sorted((h["opcode"], h["version"], h["count"]) for h in doc["op_histogram"])


KERAS2 = {"lstm.tflite"}   # built with tf-keras, which pulls the full tensorflow wheel: not in the test extra


@pytest.mark.parametrize("name", sorted(generate.FIXTURES))
def test_fixture_still_converts(name, tmp_path):
    if name in KERAS2 and importlib.util.find_spec("tf_keras") is None:
        pytest.skip("needs tf-keras (pip install --no-deps tf-keras==2.18.0)")
    out = tmp_path / name
    out.write_bytes(generate.FIXTURES[name]())
    assert _ops(inspect_model(out)) == _ops(inspect_model(FIXTURES / name))
